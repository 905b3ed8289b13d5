"""The SSH layer: one connection to a host, and commands on it.

A command is always an argv list, joined with shell quoting here, so no setting ever
reaches a shell unquoted; shell logic lives in fixed scripts (files/sh/) that take their
values as arguments. File contents travel on the command's stdin: nothing is staged on
the host. The host's key is checked before anything is sent (known_hosts.py), and how
the account becomes root (root, sudo with or without a password) is learned once.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shlex
import socket
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

import paramiko
from fabric import Connection

from . import known_hosts
from .errors import ConnectionLost, TaskError, program
from .render import script_argv, script_name

Argv = Sequence[str]
# Paramiko's transport thread logs a traceback for every failed handshake (a port that is
# not SSH, a dropped banner); the one-line error says it all, so keep its log out of
# the terminal (Python would print it through its last-resort handler).
logging.getLogger("paramiko").addHandler(logging.NullHandler())


@dataclass(frozen=True)
class Result:
    exited: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exited == 0


# -- deciding ------------------------------------------------------------------------------
def command_line(argv: Argv, *, as_root: bool, sudo: str) -> str:
    """The line the remote login shell runs: argv quoted, through sudo when needed.

    sudo is "root" (connected as root), "nopasswd" or "password" (sudo reads the
    password from stdin, never from the command line)."""
    line = shlex.join(argv)
    if not as_root or sudo == "root":
        return line
    if sudo == "password":
        return f"sudo -S -k -p '' -- {line}"
    return f"sudo -n -- {line}"


def shown(argv: Argv, limit: int | None = 120) -> str:
    """A command as messages show it: a script by its name (files/sh/NAME.sh), long ones
    cut to `limit` characters."""
    if list(argv[:2]) == ["sh", "-c"]:
        argv = argv[3:]
    text = shlex.join(script_name(arg) or arg for arg in argv)
    return text if limit is None or len(text) <= limit else text[:limit - 3] + "..."


COLOURS = re.compile(r"\x1b\[[0-9;]*m")
# docker build's echo of a failed RUN line: it says nothing the lines before do not.
FAILED_RUN_LINE = re.compile(r"^The command '.*' returned a non-zero code: \d+$", re.MULTILINE)


def last_lines(text: str, count: int = 3) -> str:
    text = FAILED_RUN_LINE.sub("", COLOURS.sub("", text))
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:])


def failure(argv: Argv, result: Result) -> TaskError:
    """A command that failed, in one line: which, its exit status, its last words."""
    return TaskError(f"`{shown(argv)}` failed (exit {result.exited}): "
                     f"{last_lines(result.stderr or result.stdout)}")


def display_name(connection: Connection) -> str:
    """The host as the operator named it: an ssh_config alias as typed, else host[:port]."""
    if connection.original_host != connection.host:
        return connection.original_host
    return connection.host if connection.port == 22 else f"{connection.host}:{connection.port}"


# -- doing ---------------------------------------------------------------------------------
class Remote:
    """A host over SSH: commands, as root when asked, and how the account gets there."""

    def __init__(self, connection: Connection | None, name: str = ""):
        self.connection = connection
        self.name = name or display_name(connection)
        # How this account becomes root: root | nopasswd | password | none; "" until asked
        # (a run that takes the lock asks on the lock's own channel: one round trip less).
        self.sudo = ""
        self.require_sudo = True
        self.round_trips = 0
        # While a run holds the host's lock, each root command holds this one too: a
        # command can outlive the connection that started it (a killed ppc).
        self.work_lock: str | None = None

    @property
    def can_sudo(self) -> bool:
        return self.sudo != "none"

    # -- commands -------------------------------------------------------------------------
    def run(self, argv: Argv, *, root: bool = False, stdin: bytes | BinaryIO = b"",
            check: bool = True, echo: bool = False, hold_stdin: bool = False) -> Result:
        """Run argv, as root with root=True; output is captured, and echoed only with
        echo (a build under --verbose: output that holds no secret). stdin (bytes, or a
        file streamed in chunks) is sent, then closed; with hold_stdin it stays open
        until the connection goes: the command's way to notice that its caller did."""
        channel = self._open(argv, root, stdin, keep_open=hold_stdin)
        stdout: list[bytes] = []
        stderr: list[bytes] = []
        shown_to = sys.stdout.buffer if echo else None
        errors = threading.Thread(target=_drain, args=(channel.recv_stderr, stderr, shown_to),
                                  daemon=True)
        errors.start()
        _drain(channel.recv, stdout, shown_to)
        errors.join()
        result = Result(self._exit_status(channel, argv), b"".join(stdout).decode(errors="replace"),
                        b"".join(stderr).decode(errors="replace"))
        if check and not result.ok:
            raise failure(argv, result)
        return result

    @contextlib.contextmanager
    def streaming(self, argv: Argv, *, root: bool = False, stdin: bytes = b""):
        """Run argv and read its stdout as it comes (a file object), for output too big to
        hold: a backup. A failure of the command is raised when the reading is done."""
        channel = self._open(argv, root, stdin)
        stderr: list[bytes] = []
        errors = threading.Thread(target=_drain, args=(channel.recv_stderr, stderr), daemon=True)
        errors.start()
        stdout = channel.makefile("rb")
        try:
            yield stdout
            _drain(stdout.read, [])  # the rest, so that the exit status arrives
        except BaseException:
            channel.close()
            raise
        errors.join()
        status = self._exit_status(channel, argv)
        if status != 0:
            raise TaskError(f"`{shown(argv)}` failed (exit {status}): "
                            f"{last_lines(b''.join(stderr).decode(errors='replace'))}")

    def _open(self, argv: Argv, root: bool, stdin: bytes | BinaryIO,
              keep_open: bool = False) -> paramiko.Channel:
        """Start argv on a new channel and send stdin (after the sudo password, if sudo
        needs one); then close stdin, unless keep_open (the caller writes more later)."""
        if root and not self.sudo:
            self._ask_sudo()
        if root and not self.can_sudo:
            raise TaskError(f"{shown(argv)} needs root on {self.name}, and there is no sudo")
        if root and self.work_lock:
            argv = ["flock", self.work_lock, *argv]
        line = command_line(argv, as_root=root, sudo=self.sudo)
        if root and self.sudo == "password":
            password = self.connection.config.sudo.password.encode() + b"\n"
            stdin = password + stdin if isinstance(stdin, bytes) else _Prefixed(password, stdin)
        self.round_trips += 1
        try:
            channel = self.connection.transport.open_session()
            channel.exec_command(line)
        except (paramiko.SSHException, EOFError, OSError, AttributeError):
            raise self._lost(argv) from None
        threading.Thread(target=_feed, args=(channel, stdin, not keep_open), daemon=True).start()
        return channel

    def _exit_status(self, channel: paramiko.Channel, argv: Argv) -> int:
        status = channel.recv_exit_status()
        channel.close()
        if status == -1 or not self.connection.transport.is_active():
            raise self._lost(argv)
        return status

    def _lost(self, argv: Argv) -> ConnectionLost:
        return ConnectionLost(f"lost the SSH connection to {self.name} during "
                              f"`{shown(argv)}`: check the network and run again")

    # -- connecting -----------------------------------------------------------------------
    def connect(self, require_sudo: bool = True, ask_sudo: bool = True) -> None:
        """Open the SSH connection, the host key checked (known_hosts.py), and find out how
        to become root now (ask_sudo), or later on the first root command's channel.
        Errors become one clear line."""
        where = f"{self.connection.user}@{self.name}"
        try:
            known_hosts.prepare(self.connection, self.name)
            self._dial()
            self.connection.open()
        except paramiko.AuthenticationException:
            raise TaskError(f"SSH login as {where} was refused: check the user and key "
                            f"(-i KEYFILE, ssh-agent, ~/.ssh/config)") from None
        except paramiko.BadHostKeyException as error:
            raise known_hosts.changed_key_error(self.connection, self.name, error) from None
        except known_hosts.RefusedHostKey as error:
            raise TaskError(str(error)) from None
        except (socket.gaierror, socket.timeout, TimeoutError, OSError,
                paramiko.SSHException) as error:
            reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
            raise (known_hosts.no_certificate_error(self.connection, self.name, reason)
                   or TaskError(f"cannot reach {self.name} over SSH: {reason}")) from None
        # A dead peer is noticed within a minute instead of hanging a command forever.
        self.connection.transport.set_keepalive(15)
        self.require_sudo = require_sudo
        if ask_sudo or self.connection.config.sudo.password:
            self._ask_sudo()

    def _ask_sudo(self) -> None:
        self._settle_sudo(self.run(script_argv("as-root")).stdout)

    def _settle_sudo(self, answer: str) -> None:
        """Take as-root.sh's answer; a sudo password (--prompt-for-sudo-password) is
        tried once. Without a way to root, a task that needs one stops here."""
        self.sudo = (answer.split() + ["none", "none"])[1]
        if self.sudo == "none" and self.connection.config.sudo.password:
            self.sudo = "password"
            if not self.run(["true"], root=True, check=False).ok:
                raise TaskError(f"sudo on {self.name} refused the password given")
        if self.require_sudo and not self.can_sudo:
            raise TaskError(f"{self.connection.user}@{self.name} cannot use sudo without a "
                            f"password: allow it (NOPASSWD) or run {program()} with "
                            f"--prompt-for-sudo-password")

    def _dial(self) -> None:
        """Open the TCP connection here, with Nagle's algorithm off, as OpenSSH does: with
        it, each small SSH message written right after another waits for the peer's
        delayed ACK (40 ms on Linux), several times per run. A gateway or ProxyCommand
        (ssh_config) makes its own connection."""
        connection = self.connection
        if connection.gateway or "sock" in connection.connect_kwargs:
            return
        sock = socket.create_connection((connection.host, connection.port),
                                        timeout=connection.connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection.connect_kwargs = {**connection.connect_kwargs, "sock": sock}


class _Prefixed:
    """A file to stream, with a few bytes (the sudo password line) before it."""

    def __init__(self, prefix: bytes, rest: BinaryIO):
        self.prefix, self.rest = prefix, rest

    def read(self, size: int) -> bytes:
        if self.prefix:
            head, self.prefix = self.prefix, b""
            return head
        return self.rest.read(size)


def _feed(channel: paramiko.Channel, data: bytes | BinaryIO, close: bool) -> None:
    """Send stdin (a file in chunks); close it (so the command sees its end) unless it
    stays open."""
    with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
        if isinstance(data, bytes):
            if data:
                channel.sendall(data)
        else:
            while chunk := data.read(65536):
                channel.sendall(chunk)
        if close:
            channel.shutdown_write()


def _drain(receive, chunks: list[bytes], echo: BinaryIO | None = None) -> None:
    while True:
        data = receive(65536)
        if not data:
            return
        chunks.append(data)
        if echo is not None:
            echo.write(data)
            echo.flush()
