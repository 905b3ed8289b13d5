"""Expected failures: each message is the one line the operator sees."""


class TaskError(Exception):
    """A step cannot go on; the message says what to fix."""


class ConnectionLost(TaskError):
    """The SSH connection dropped while a command ran."""
