"""Expected failures: each message is the one line the operator sees, naming the
command they typed when it says what to run."""

import os
import sys


class TaskError(Exception):
    """A step cannot go on; the message says what to fix."""


class ConnectionLost(TaskError):
    """The SSH connection dropped while a command ran."""


def program() -> str:
    """The command running: `ppc`, or `fab` in a clone or beside an operator's fabfile."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return name if name in ("ppc", "fab") else "ppc"
