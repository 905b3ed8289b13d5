"""The one thin layer that talks to a host: run, put-if-changed, read, report.

Tasks decide *what* to do with pure functions (argv lists and file contents built from
the settings); this module is the only place that does it. A command is always an argv
list, joined with shell quoting here, so no setting ever reaches a shell unquoted; shell
logic lives in fixed scripts (files/sh/) that take their values as arguments. File
contents travel on the command's stdin: nothing is staged on the host.

Every step reports whether it changed something, and each task ends with a count, so a
second run can say "0 changed".
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import hashlib
import logging
import os
import shlex
import socket
import threading
from dataclasses import dataclass
from collections.abc import Sequence

import paramiko
from fabric import Connection, task
from invoke.exceptions import Exit

from . import index
from .errors import ConnectionLost, TaskError
from .render import script_argv
from .settings import Settings, SettingsError
from .system import Platform, boot_commands, parse_platform

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


@dataclass(frozen=True)
class FileState:
    sha256: str
    mode: str  # octal, as stat prints it: "600"
    owner: str  # numeric "uid:gid"


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


def shown(argv: Argv) -> str:
    """A command as error messages show it: a script by its name, long ones cut."""
    text = shlex.join(argv[3:]) if list(argv[:2]) == ["sh", "-c"] else shlex.join(argv)
    return text if len(text) < 120 else text[:117] + "..."


def parse_file_state(output: str) -> FileState | None | str:
    """FileState, None for a missing file, or "directory"."""
    words = output.split()
    if not words or words[0] == "missing":
        return None
    if words[0] == "directory":
        return "directory"
    mode, owner, sha256 = words[:3]
    return FileState(sha256=sha256, mode=mode, owner=owner)


def report_line(where: str, step: str, changed: bool, detail: str) -> str:
    """One step's line in a task's output: where, which step, changed or not, and what."""
    return f"[{where}] {step:<18} {'changed' if changed else 'unchanged':<9}  {detail}"


def last_lines(text: str, count: int = 3) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:])


def display_name(connection: Connection) -> str:
    """The host as the operator named it: an ssh_config alias as typed, else host[:port]."""
    if connection.original_host != connection.host:
        return connection.original_host
    return connection.host if connection.port == 22 else f"{connection.host}:{connection.port}"


@contextlib.contextmanager
def expected_failures(where: str | None = None):
    """Turn expected failures into one line on stderr and an exit code, never a traceback:
    2 for bad settings, 1 for a failing step, a dropped connection or a local file error."""
    try:
        yield
    except SettingsError as error:
        raise Exit(f"Error: {error}", code=2) from None
    except (TaskError, OSError, paramiko.SSHException) as error:
        raise Exit(f"Error{f' on {where}' if where else ''}: {error}", code=1) from None


# -- doing ---------------------------------------------------------------------------------
class Host:
    """A connected host, with the validated settings and a record of what changed."""

    def __init__(self, connection: Connection, settings: Settings):
        self.connection = connection
        self.settings = settings
        self.name = display_name(connection)
        self.changed_steps: list[str] = []
        self.unchanged_steps: list[str] = []
        self.sudo = "none"  # root | nopasswd | password | none
        self.user_ids = ""  # numeric "uid:gid" of the connecting user

    @property
    def can_sudo(self) -> bool:
        return self.sudo != "none"

    # -- commands -------------------------------------------------------------------------
    def run(self, argv: Argv, *, root: bool = False, stdin: bytes = b"",
            check: bool = True) -> Result:
        """Run argv, as root with root=True; output is captured, never echoed (it may
        hold secrets). stdin is sent to the command, then closed."""
        if root and not self.can_sudo:
            raise TaskError(f"{shown(argv)} needs root on {self.name}, and there is no sudo")
        line = command_line(argv, as_root=root, sudo=self.sudo)
        if root and self.sudo == "password":
            stdin = self.connection.config.sudo.password.encode() + b"\n" + stdin
        result = self._execute(line, stdin, argv)
        if check and not result.ok:
            raise TaskError(f"`{shown(argv)}` failed (exit {result.exited}): "
                            f"{last_lines(result.stderr or result.stdout)}")
        return result

    def _execute(self, line: str, stdin: bytes, argv: Argv) -> Result:
        transport = self.connection.transport
        lost = ConnectionLost(f"lost the SSH connection to {self.name} during "
                              f"`{shown(argv)}`: check the network and run again")
        try:
            channel = transport.open_session()
            channel.exec_command(line)
        except (paramiko.SSHException, EOFError, OSError, AttributeError):
            raise lost from None
        stdout: list[bytes] = []
        stderr: list[bytes] = []
        feeder = threading.Thread(target=_feed, args=(channel, stdin), daemon=True)
        errors = threading.Thread(target=_drain, args=(channel.recv_stderr, stderr), daemon=True)
        feeder.start()
        errors.start()
        _drain(channel.recv, stdout)
        errors.join()
        status = channel.recv_exit_status()
        channel.close()
        if status == -1 or not transport.is_active():
            raise lost
        return Result(status, b"".join(stdout).decode(errors="replace"),
                      b"".join(stderr).decode(errors="replace"))

    # -- files ----------------------------------------------------------------------------
    def put(self, path: str, content: bytes, *, mode: str, owner: str | None = "0:0",
            keep_previous: bool = False) -> bool:
        """Make the file at `path` hold `content` with mode and owner; True if it changed.

        owner is numeric "uid:gid" for a system file (written as root), or None for a
        file of the connecting user (written without sudo). keep_previous keeps the file
        it replaces as PATH.ppc-previous, for restore_previous.
        """
        root = owner is not None
        desired = FileState(hashlib.sha256(content).hexdigest(), mode, owner or self.user_ids)
        current = parse_file_state(self.run(script_argv("file-state", path), root=root).stdout)
        if current == desired:
            return False
        self.run(script_argv("put-file", path, mode, owner or "", "keep" if keep_previous else ""),
                 root=root, stdin=content)
        return True

    def restore_previous(self, path: str) -> None:
        """Put back the file put() replaced with keep_previous (if it did)."""
        self.run(script_argv("restore-previous", path), root=True)

    def forget_previous(self, path: str) -> None:
        self.run(["rm", "-f", "--", f"{path}.ppc-previous"], root=True)

    def read(self, path: str, *, root: bool = False) -> str | None:
        """The text of a file on the host, or None when there is none."""
        result = self.run(script_argv("read-file", path), root=root, check=False)
        if result.exited == 3:
            return None
        if not result.ok:
            raise TaskError(f"cannot read {path} on {self.name}: {last_lines(result.stderr, 1)}")
        return result.stdout

    # -- the system -----------------------------------------------------------------------
    @functools.cached_property
    def platform(self) -> Platform:
        """Init system, OS family and what follows from them; detected once."""
        return parse_platform(self.run(script_argv("platform")).stdout)

    def start_at_boot(self, unit: str, step: str) -> None:
        """Enable a systemd unit, so the index comes back after a reboot by itself."""
        commands = boot_commands(self.platform, unit)
        if commands is None:
            self.report(step, False, f"no systemd on {self.name}: start {unit} at boot yourself")
            return
        is_enabled, enable = commands
        if self.run(is_enabled, check=False).ok:
            self.report(step, False, f"{unit} starts at boot")
            return
        self.run(enable, root=True)
        self.report(step, True, f"{unit} now starts at boot")

    # -- reporting ------------------------------------------------------------------------
    def report(self, step: str, changed: bool, detail: str) -> None:
        (self.changed_steps if changed else self.unchanged_steps).append(step)
        print(report_line(self.name, step, changed, detail), flush=True)

    def note(self, message: str) -> None:
        print(f"[{self.name}] {message}", flush=True)

    def summary(self) -> None:
        self.note(f"done: {len(self.changed_steps)} changed, {len(self.unchanged_steps)} unchanged")

    # -- preflight ------------------------------------------------------------------------
    def connect(self, require_sudo: bool = True) -> None:
        """Open the SSH connection and find out about root; errors become one clear line."""
        where = f"{self.connection.user}@{self.name}"
        try:
            self.connection.open()
        except paramiko.AuthenticationException:
            raise TaskError(f"SSH login as {where} was refused: check the user and key "
                            f"(-i KEYFILE, ssh-agent, ~/.ssh/config)") from None
        except paramiko.BadHostKeyException:
            raise TaskError(f"the SSH host key of {self.name} does not match known_hosts: "
                            f"if the host was rebuilt, remove its old entry") from None
        except (socket.gaierror, socket.timeout, TimeoutError, OSError,
                paramiko.SSHException) as error:
            reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
            raise TaskError(f"cannot reach {self.name} over SSH: {reason}") from None
        # A dead peer is noticed within a minute instead of hanging a command forever.
        self.connection.transport.set_keepalive(15)
        uid, gid = self.run(["sh", "-c", "id -u && id -g"]).stdout.split()
        self.user_ids = f"{uid}:{gid}"
        self.sudo = self._sudo_mode(uid)
        if require_sudo and not self.can_sudo:
            raise TaskError(f"{where} cannot use sudo without a password: allow it "
                            f"(NOPASSWD) or run fab with --prompt-for-sudo-password")

    def _sudo_mode(self, uid: str) -> str:
        if uid == "0":
            return "root"
        if self.run(["sudo", "-n", "true"], check=False).ok:
            return "nopasswd"
        if self.connection.config.sudo.password:
            self.sudo = "password"
            if not self.run(["true"], root=True, check=False).ok:
                raise TaskError(f"sudo on {self.name} refused the password given")
            return "password"
        return "none"

    def require_docker(self) -> None:
        if not self.run(["sh", "-c", "command -v docker"], check=False).ok:
            raise TaskError(f"Docker is not installed on {self.name}: install it "
                            f"(Debian/Ubuntu: apt-get install docker.io) and run again")
        answer = self.run(["docker", "version", "--format", "{{.Server.Version}}"], root=True,
                          check=False)
        if not answer.ok or not answer.stdout.strip():
            output = answer.stderr + answer.stdout
            if any(sign in output for sign in ("Cannot connect", "daemon running",
                                               "connection refused", "no such file")):
                raise TaskError(f"dockerd is not running on {self.name}: start it "
                                f"(systemctl start docker) and run again")
            raise TaskError(f"Docker on {self.name} does not answer: {last_lines(output, 1)}")


def _feed(channel: paramiko.Channel, data: bytes) -> None:
    """Send stdin and close it, so the command sees its end."""
    with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
        if data:
            channel.sendall(data)
        channel.shutdown_write()


def _drain(receive, chunks: list[bytes]) -> None:
    while True:
        data = receive(65536)
        if not data:
            return
        chunks.append(data)


def settings_of(c, *, for_server: bool, index_option: str = "") -> Settings:
    """The validated settings of this fab run, for the index it works on.

    For a server, the -H name (an ssh_config alias as typed) names the index when
    server_names is not set; client tasks find the index deployed from this machine
    (or the one --index names)."""
    host = getattr(c, "original_host", None) if for_server else None
    settings = Settings.from_config(dict(c.config.ppc), host=host, environ=dict(os.environ),
                                    require_names=for_server)
    return index.for_servers(settings) if for_server else index.for_clients(settings, index_option)


def host_task(body=None, *, docker: bool = True, for_server: bool = True):
    """Make a Fabric task of `body(host, ...)` for one host: settings validated first,
    then connected, sudo checked (and Docker, with docker=True).

    For a server, the -H name names the index unless server_names says otherwise; a
    task for any other host (for_server=False) works with the index deployed from
    this machine, or the one its `index` option names.

    Expected failures (bad settings, unreachable host, a failing command) end the run
    with one line on stderr and exit code 1, never a traceback.
    """
    if body is None:
        return functools.partial(host_task, docker=docker, for_server=for_server)

    @functools.wraps(body)
    def wrapper(c, *args, **kwargs):
        where = display_name(c) if isinstance(c, Connection) else "the host"
        with expected_failures(where):
            settings = settings_of(c, for_server=for_server, index_option=kwargs.get("index", ""))
            if not isinstance(c, Connection):
                raise TaskError("name the server to work on: fab -H HOST " + body.__name__)
            host = Host(c, settings)
            host.connect()
            if docker:
                host.require_docker()
            body(host, *args, **kwargs)
            host.summary()

    return task(wrapper, auto_shortflags=False)  # -i, -H and friends belong to fab


# Tasks already run on every host of this `fab` run (see many_hosts_task).
_finished: set[str] = set()
PARALLEL_HOSTS = 16


def cli_hosts(c) -> list[str]:
    """Every host given with -H to the running `fab`, or just this connection's."""
    from fabric.main import program  # the running `fab` program: it parsed -H

    core = getattr(program, "core", None)
    hosts = core[0].args.hosts.value if core else None
    return [h for h in hosts.split(",") if h] if hosts else [c.original_host]


def many_hosts_task(body):
    """Make a Fabric task of `body(host, ...)` for many hosts at once (`fab -H a,b,c`).

    Fabric calls a task once per host, one after another. The first call here runs
    `body` on every -H host in parallel; one failing or unreachable host never stops
    the others. A table ends the run, one line per host; the exit code is non-zero if
    any host failed. The calls Fabric makes for the other hosts find the work done.
    Sudo is optional: `host.can_sudo` says whether there is any.
    """

    @functools.wraps(body)
    def wrapper(c, *args, **kwargs):
        if body.__name__ in _finished:
            return
        with expected_failures():
            settings = settings_of(c, for_server=False, index_option=kwargs.get("index", ""))
        if not isinstance(c, Connection):
            raise Exit("Error: name the hosts to work on: fab -H HOST1,HOST2 ...", code=2)
        _finished.add(body.__name__)
        hosts = cli_hosts(c)

        def run_one(target: str) -> tuple[str, str, str]:
            """(the -H entry, ok|changed|failed, detail)"""
            host = Host(Connection(target, config=c.config), settings)
            try:
                host.connect(require_sudo=False)
                body(host, *args, **kwargs)
            except TaskError as error:
                return target, "failed", str(error)
            except Exception as error:  # an unexpected one still must not stop the others
                return target, "failed", f"{type(error).__name__}: {error}"
            finally:
                host.connection.close()
            outcome = "changed" if host.changed_steps else "ok"
            return target, outcome, (f"{len(host.changed_steps)} changed, "
                                     f"{len(host.unchanged_steps)} unchanged")

        with concurrent.futures.ThreadPoolExecutor(min(PARALLEL_HOSTS, len(hosts))) as pool:
            results = list(pool.map(run_one, hosts))
        width = max(len(name) for name, _, _ in results)
        print(f"\n{'host':<{width}}  {'result':<8}  detail", flush=True)
        for name, outcome, detail in results:
            print(f"{name:<{width}}  {outcome:<8}  {detail}", flush=True)
        failed = [name for name, outcome, _ in results if outcome == "failed"]
        if failed:
            raise Exit(f"Error: {len(failed)} of {len(results)} hosts failed: {', '.join(failed)}",
                       code=1)

    return task(wrapper, auto_shortflags=False)  # -i, -H and friends belong to fab
