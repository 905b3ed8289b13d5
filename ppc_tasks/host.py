"""The one thin layer that talks to a host: run, gather facts, apply or show a plan.

Tasks decide *what* to do with pure planners (argv lists and file contents built from
the settings and the facts); this module is the only place that does it. A command is
always an argv list, joined with shell quoting here, so no setting ever reaches a shell
unquoted; shell logic lives in fixed scripts (files/sh/) that take their values as
arguments. File contents travel on the command's stdin: nothing is staged on the host.

A mutating task holds the host's lock for its whole run (and gathers its facts under
it, in the same round trip); each run leaves a line in the host's audit log. With
`fab --dry` a task shows its plan and changes nothing, here or there.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime
import functools
import getpass
import hashlib
import inspect
import json
import logging
import os
import re
import shlex
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import BinaryIO

import paramiko
from fabric import Connection, task
from invoke.exceptions import Exit

from . import facts as facts_module
from . import index, known_hosts
from .errors import ConnectionLost, TaskError
from .facts import Facts
from .plan import Change, Plan, describe
from .render import script, script_argv, script_name
from .settings import Settings, SettingsError

Argv = Sequence[str]
# Paramiko's transport thread logs a traceback for every failed handshake (a port that is
# not SSH, a dropped banner); the one-line error says it all, so keep its log out of
# the terminal (Python would print it through its last-resort handler).
logging.getLogger("paramiko").addHandler(logging.NullHandler())

LOCK_PATH = "/run/lock/ppc-tasks.lock"
# Held by each command of a run that holds LOCK_PATH: a command can outlive the SSH
# connection that started it (a killed fab), and the next run waits for it to end.
WORK_LOCK_PATH = LOCK_PATH + ".work"
AUDIT_LOG = "/var/log/ppc-tasks/audit.log"


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


def report_line(where: str, step: str, changed: bool, detail: str, dry: bool = False) -> str:
    """One step's line in a task's output: where, which step, changed or not, and what."""
    state = ("would change" if dry else "changed") if changed else "unchanged"
    return f"[{where}] {step:<18} {state:<{12 if dry else 9}}  {detail}"


SLOW_STEP = 2.0  # seconds after which a step says it is still running, and how long it took
COLOURS = re.compile(r"\x1b\[[0-9;]*m")
# docker build's echo of a failed RUN line: it says nothing the lines before do not.
FAILED_RUN_LINE = re.compile(r"^The command '.*' returned a non-zero code: \d+$", re.MULTILINE)


def last_lines(text: str, count: int = 3) -> str:
    text = FAILED_RUN_LINE.sub("", COLOURS.sub("", text))
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:])


def display_name(connection: Connection) -> str:
    """The host as the operator named it: an ssh_config alias as typed, else host[:port]."""
    if connection.original_host != connection.host:
        return connection.original_host
    return connection.host if connection.port == 22 else f"{connection.host}:{connection.port}"


def settings_fingerprint(settings: Settings) -> str:
    """Names the settings a run used, for the audit log (settings hold no secrets)."""
    data = json.dumps(asdict(settings), sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(data.encode()).hexdigest()[:16]


def audit_line(when: datetime.datetime, operator: str, task_name: str, fingerprint: str,
               result: str, changed: list[str]) -> str:
    """One line of the host's audit log: never a secret, never a newline."""
    fields = [when.strftime("%Y-%m-%dT%H:%M:%SZ"), f"operator={operator}", f"task={task_name}",
              f"settings={fingerprint}", f"result={result}",
              f"changed={','.join(changed) or '-'}"]
    return " ".join(field.replace("\n", " ") for field in fields)


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

    def __init__(self, connection: Connection, settings: Settings, dry: bool = False):
        self.connection = connection
        self.settings = settings
        self.dry = dry
        self.name = display_name(connection)
        self.changed_steps: list[str] = []
        self.unchanged_steps: list[str] = []
        # How this account becomes root: root | nopasswd | password | none; "" until asked
        # (a run that takes the lock asks on the lock's own channel: one round trip less).
        self.sudo = ""
        self.require_sudo = True
        self.round_trips = 0
        self.started = time.monotonic()
        self.task_name = ""
        self.lock_wait: int | None = None  # None: a run that takes no lock (read-only, --dry)
        self.verbose = False  # stream the output of commands worth watching (builds)
        self._lock: paramiko.Channel | None = None

    @property
    def can_sudo(self) -> bool:
        return self.sudo != "none"

    # -- commands -------------------------------------------------------------------------
    def run(self, argv: Argv, *, root: bool = False, stdin: bytes | BinaryIO = b"",
            check: bool = True, echo: bool = False) -> Result:
        """Run argv, as root with root=True; output is captured, and echoed only with
        echo (a build under --verbose: output that holds no secret). stdin (bytes, or a
        file streamed in chunks) is sent, then closed."""
        channel = self._open(argv, root, stdin)
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
            raise TaskError(f"`{shown(argv)}` failed (exit {result.exited}): "
                            f"{last_lines(result.stderr or result.stdout)}")
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
        if root and self._lock is not None:
            argv = ["flock", WORK_LOCK_PATH, *argv]
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

    # -- facts, the lock and the audit log ------------------------------------------------
    def read_facts(self, queries: Sequence[str]) -> Facts:
        """The facts this task decides from; a mutating run takes the lock with them."""
        queries = list(dict.fromkeys(queries))  # each answered once: docker calls are slow
        if self.lock_wait is None:
            return self.gather(queries)
        return self.lock_and_gather(self.task_name, queries, self.lock_wait)

    def gather(self, queries: Sequence[str], *, root: bool = True) -> Facts:
        """Read the facts a task decides from, in one round trip."""
        return facts_module.parse(self.run(script_argv("facts", *queries), root=root).stdout)

    def lock_and_gather(self, task_name: str, queries: Sequence[str], wait: int) -> Facts:
        """Take the host's lock for this run and read the facts under it, in one round
        trip. The lock lasts as long as the connection: a killed fab never leaves one."""
        holder = (f"{getpass.getuser()}@{socket.gethostname()} running {task_name} since "
                  f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M:%S} UTC")
        argv = script_argv("hold-lock", LOCK_PATH, AUDIT_LOG, str(wait), holder,
                           script("facts"), *queries)
        if self.sudo:
            channel = self._open(argv, root=True, stdin=b"", keep_open=True)
            reader = channel.makefile("r")
        else:  # how to become root is learned on the way
            channel = self._open(script_argv("as-root", *argv), root=False, stdin=b"",
                                 keep_open=True)
            reader = channel.makefile("r")
            try:
                self._settle_sudo(reader.readline())
            except TaskError:
                self._exit_status(channel, argv)
                raise
        first = reader.readline().strip()
        if first != "locked":
            self._exit_status(channel, argv)
            if first.startswith("busy"):
                holder = first[5:] or "another run"
                raise TaskError(f"{self.name} is busy: {holder}; try again when it is done, "
                                f"or wait for it with --lock-wait=SECONDS")
            raise TaskError(f"cannot take the lock on {self.name}: {first or 'no answer'}")
        lines = []
        for line in reader:
            if line.strip() == "end-of-facts":
                break
            lines.append(line.rstrip("\n"))
        else:
            raise self._lost(argv)
        self._lock = channel
        return facts_module.parse("\n".join(lines))

    def release(self, audit: str | None) -> None:
        """Write the run's audit line (if any) and let go of the lock."""
        channel, self._lock = self._lock, None
        if channel is None:
            return
        with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
            if audit:
                channel.sendall(audit.encode() + b"\n")
            channel.shutdown_write()
            channel.recv_exit_status()
            channel.close()

    # -- plans ----------------------------------------------------------------------------
    def carry_out(self, plan: Plan) -> None:
        """Apply the plan, or show it with --dry."""
        if self.dry:
            for step, changes, line, details in describe(plan, functools.partial(shown, limit=None)):
                (self.changed_steps if changes else self.unchanged_steps).append(step)
                print(report_line(self.name, step, changes, line, dry=True), flush=True)
                for detail in details:
                    print(f"        {detail}", flush=True)
            return
        for step in plan.steps:
            if not isinstance(step, Change):
                self.report(step.step, False, step.detail)
                continue
            with self.progress(step.step, watched=self.verbose and any(
                    command.shows_output for command in step.commands)) as elapsed:
                if step.local is not None:
                    step.local()
                for command in step.commands:
                    result = self.run(command.argv, root=command.root, stdin=command.stdin,
                                      check=not command.failure,
                                      echo=self.verbose and command.shows_output)
                    if not result.ok:
                        raise TaskError(f"{command.failure}: "
                                        f"{last_lines(result.stdout + result.stderr, 4)}")
                if step.run is not None:
                    step.run(self)
            took = elapsed()
            self.report(step.step, True, step.done + (f" in {took:.1f} s" if took >= SLOW_STEP
                                                      else ""))

    @contextlib.contextmanager
    def progress(self, step: str, watched: bool = False):
        """A step that runs for SLOW_STEP seconds says so: on a terminal, a live line
        with the seconds so far (cleared when the step reports); in a log, or from
        several hosts at once, one line. Not while its own output streams (watched).
        Yields the step's clock: the seconds since it started."""
        finished = threading.Event()
        live = sys.stdout.isatty() and threading.current_thread() is threading.main_thread()
        started = time.monotonic()

        def tell() -> None:
            if finished.wait(SLOW_STEP) or watched:
                return
            if not live:
                print(f"[{self.name}] {step:<18} running   (a step that takes a while)",
                      flush=True)
                return
            while not finished.is_set():
                sys.stdout.write(f"\r[{self.name}] {step:<18} running   "
                                 f"{time.monotonic() - started:.0f} s\x1b[K")
                sys.stdout.flush()
                finished.wait(1)
            sys.stdout.write("\r\x1b[K")
            sys.stdout.flush()

        teller = threading.Thread(target=tell, daemon=True)
        teller.start()
        try:
            yield lambda: time.monotonic() - started
        finally:
            finished.set()
            teller.join()

    # -- reporting ------------------------------------------------------------------------
    def report(self, step: str, changed: bool, detail: str) -> None:
        (self.changed_steps if changed else self.unchanged_steps).append(step)
        print(report_line(self.name, step, changed, detail), flush=True)

    def note(self, message: str) -> None:
        print(f"[{self.name}] {message}", flush=True)

    def summary(self) -> None:
        changed, unchanged = len(self.changed_steps), len(self.unchanged_steps)
        if self.dry:
            self.note(f"dry run: {changed} would change, {unchanged} unchanged; nothing was changed")
            return
        self.note(f"done: {changed} changed, {unchanged} unchanged in "
                  f"{time.monotonic() - self.started:.1f} s ({self.round_trips} SSH round "
                  f"trip{'' if self.round_trips == 1 else 's'})")

    # -- preflight ------------------------------------------------------------------------
    def connect(self, require_sudo: bool = True) -> None:
        """Open the SSH connection and find out how to become root: now, or (a run that
        takes the lock) on the lock's channel. Errors become one clear line."""
        where = f"{self.connection.user}@{self.name}"
        try:
            known_hosts.prepare(self.connection, self.name)
            self._dial()
            self.connection.open()
            known_hosts.check_revoked(self.connection, self.name)
        except paramiko.AuthenticationException:
            raise TaskError(f"SSH login as {where} was refused: check the user and key "
                            f"(-i KEYFILE, ssh-agent, ~/.ssh/config)") from None
        except paramiko.BadHostKeyException as error:
            raise known_hosts.changed_key_error(self.connection, self.name, error) from None
        except known_hosts.UnknownHostKey as error:
            raise TaskError(str(error)) from None
        except (socket.gaierror, socket.timeout, TimeoutError, OSError,
                paramiko.SSHException) as error:
            reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
            raise TaskError(f"cannot reach {self.name} over SSH: {reason}") from None
        # A dead peer is noticed within a minute instead of hanging a command forever.
        self.connection.transport.set_keepalive(15)
        self.require_sudo = require_sudo
        if self.lock_wait is None or self.connection.config.sudo.password:
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
                            f"password: allow it (NOPASSWD) or run fab with "
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

    def require_docker(self, facts: Facts) -> None:
        if facts.docker == "missing":
            raise TaskError(f"Docker is not installed on {self.name}: fab -H {self.name} "
                            f"host.bootstrap installs it (or deploy --bootstrap)")
        if facts.docker != "running":
            raise TaskError(f"dockerd is not running on {self.name}: start it "
                            f"(systemctl start docker) and run again")


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


# -- tasks ---------------------------------------------------------------------------------
def settings_of(c, *, for_server: bool, index_option: str = "") -> Settings:
    """The validated settings of this fab run, for the index it works on.

    For a server, the -H name (an ssh_config alias as typed) names the index when
    server_names is not set; client tasks find the index deployed from this machine
    (or the one --index names)."""
    host = getattr(c, "original_host", None) if for_server else None
    settings = Settings.from_config(dict(c.config.ppc), host=host, environ=dict(os.environ),
                                    require_names=for_server)
    return index.for_servers(settings) if for_server else index.for_clients(settings, index_option)


# `fab --help TASK` lines for the tasks' options, by name (one meaning per name).
OPTION_HELP = {
    "index": "the index to work with, when several were deployed from this machine",
    "lock_wait": "wait up to this many seconds for another run's lock on the host "
                 "(default: stop at once, naming who holds it)",
    "all_tools": "configure uv, Poetry and PDM even where they are not installed",
    "bootstrap": "first install the Docker engine where it is missing (as host.bootstrap)",
    "confirm": "the name the task asks for, to let it delete or replace packages",
    "file": "a backup archive (made by backup.create)",
    "files": "the distributions, as a quoted pattern: 'dist/*'",
    "force": "rebuild from scratch, without the layer cache",
    "from_other_index": "restore an archive another index made (or one not signed): its "
                        "packages replace this index's",
    "keep": "then delete all but this many newest archives (0: keep all)",
    "lines": "how many of the last lines to show",
    "new_identity": "make a new CA and passwords for an index whose own are not on "
                    "this machine (every client must be configured again)",
    "rebuild": "rebuild the images from scratch",
    "skip_build": "use the images already on the host",
    "verbose": "show the image builds' own output",
}


def with_options(wrapper, body, **options):
    """Give the task `wrapper` the options of `body` plus these (name=default), which the
    wrapper takes for itself: `fab --help TASK` lists them all."""
    signature = inspect.signature(body)
    parameters = list(signature.parameters.values()) + [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
        for name, default in options.items()]
    wrapper.__signature__ = signature.replace(parameters=parameters)
    return task(wrapper, auto_shortflags=False,  # -i, -H and friends belong to fab
                help={parameter.name: OPTION_HELP[parameter.name] for parameter in parameters
                      if parameter.name in OPTION_HELP})


def host_task(body=None, *, docker: bool = True, for_server: bool = True, mutating: bool = True,
              name: str = ""):
    """Make a Fabric task of `body(host, ...)` for one host: settings validated first,
    then connected, sudo checked (and Docker, with docker=True, once the body has its
    facts: host.require_docker).

    For a server, the -H name names the index unless server_names says otherwise; a
    task for any other host (for_server=False) works with the index deployed from this
    machine, or the one --index names. A mutating task takes the host's lock (see
    Host.lock_and_gather, --lock-wait) and leaves a line in its audit log, unless --dry;
    `name` is the task's name there and in the lock when it is not "module.function".

    Expected failures (bad settings, unreachable host, a failing command) end the run
    with one line on stderr and exit code 1, never a traceback.
    """
    if body is None:
        return functools.partial(host_task, docker=docker, for_server=for_server,
                                 mutating=mutating, name=name)

    @functools.wraps(body)
    def wrapper(c, *args, **kwargs):
        index_option = kwargs.pop("index", "")
        lock_wait = kwargs.pop("lock_wait", 0)
        where = display_name(c) if isinstance(c, Connection) else "the host"
        with expected_failures(where):
            settings = settings_of(c, for_server=for_server, index_option=index_option)
            if not isinstance(c, Connection):
                raise TaskError("name the server to work on: fab -H HOST " + body.__name__)
            host = Host(c, settings, dry=bool(c.config.run.dry))
            host.lock_wait = int(lock_wait) if mutating and not host.dry else None
            collection = body.__module__.rsplit(".", 1)[-1]
            host.task_name = name or (body.__name__ if collection == body.__name__ else
                                      f"{collection}.{body.__name__}")
            host.connect()
            result = "failed"
            try:
                body(host, *args, **kwargs)
                result = "ok"
            except TaskError as error:
                result = f"failed: {error}"[:200]
                raise
            finally:
                host.release(audit_line(datetime.datetime.now(datetime.timezone.utc),
                                        f"{getpass.getuser()}@{socket.gethostname()}",
                                        host.task_name, settings_fingerprint(host.settings),
                                        result, host.changed_steps))
            if mutating:
                host.summary()

    options = {"lock_wait": 0} if mutating else {}
    if not for_server:
        options["index"] = ""
    return with_options(wrapper, body, **options)


# Tasks already run on every host of this `fab` run (see many_hosts_task).
_finished: set[str] = set()
PARALLEL_HOSTS = 16


def cli_hosts(c) -> list[str]:
    """Every host given with -H to the running `fab` or `ppc`, or just this connection's."""
    from fabric.main import program as fab  # the running program parsed -H

    from .cli import program as ppc

    cores = [program.core for program in (ppc, fab) if getattr(program, "core", None)]
    hosts = cores[0][0].args.hosts.value if cores else None
    return [h for h in hosts.split(",") if h] if hosts else [c.original_host]


@dataclass
class HostOutcome:
    target: str  # the -H entry
    host: Host | None
    error: str | None = None


def on_each_host(c, work, settings_for, require_sudo: bool = False) -> list[HostOutcome]:
    """Run work(host) on every -H host in parallel (16 at a time); one failing or
    unreachable host never stops the others. settings_for(connection) gives a host its
    settings."""
    dry = bool(c.config.run.dry)

    def run_one(target: str) -> HostOutcome:
        connection = Connection(target, config=c.config)
        host = None
        try:
            host = Host(connection, settings_for(connection), dry=dry)
            host.connect(require_sudo=require_sudo)
            work(host)
        except (TaskError, SettingsError) as error:
            return HostOutcome(target, host, str(error))
        except Exception as error:  # an unexpected one still must not stop the others
            return HostOutcome(target, host, f"{type(error).__name__}: {error}")
        finally:
            connection.close()
        return HostOutcome(target, host)

    hosts = cli_hosts(c)
    with concurrent.futures.ThreadPoolExecutor(min(PARALLEL_HOSTS, len(hosts))) as pool:
        return list(pool.map(run_one, hosts))


def print_table(rows: list[tuple[str, str, str]]) -> None:
    width = max(len(name) for name, _, _ in rows)
    print(f"\n{'host':<{width}}  {'result':<8}  detail", flush=True)
    for name, outcome, detail in rows:
        print(f"{name:<{width}}  {outcome:<8}  {detail}", flush=True)


def first_call(c, name: str) -> bool:
    """Fabric calls a task once per -H host; a task that runs them all at once works
    on the first call only."""
    if name in _finished:
        return False
    if not isinstance(c, Connection):
        raise Exit("Error: name the hosts to work on: fab -H HOST1,HOST2 ...", code=2)
    _finished.add(name)
    return True


def many_hosts_task(body=None, *, preflight=None):
    """Make a Fabric task of `body(host, ...)` for many hosts at once (`fab -H a,b,c`).

    The first call Fabric makes runs `body` on every -H host in parallel (see
    on_each_host); the others find the work done. A table ends the run, one line per
    host; the exit code is non-zero if any host failed. Sudo is optional:
    `host.can_sudo` says whether there is any. The index is the one deployed from this
    machine (--index picks one). preflight(settings) may refuse the run before any host
    is touched (a SettingsError or TaskError: one line).
    """
    if body is None:
        return functools.partial(many_hosts_task, preflight=preflight)

    @functools.wraps(body)
    def wrapper(c, *args, **kwargs):
        index_option = kwargs.pop("index", "")
        with expected_failures():
            settings = settings_of(c, for_server=False, index_option=index_option)
            if preflight is not None:
                preflight(settings)
        if not first_call(c, body.__name__):
            return
        outcomes = on_each_host(c, lambda host: body(host, *args, **kwargs),
                                lambda connection: settings)
        verb = "would change" if c.config.run.dry else "changed"
        rows = []
        for outcome in outcomes:
            if outcome.error is not None:
                rows.append((outcome.target, "failed", outcome.error))
                continue
            changed, unchanged = len(outcome.host.changed_steps), len(outcome.host.unchanged_steps)
            rows.append((outcome.target, verb if changed else "ok",
                         f"{changed} {verb}, {unchanged} unchanged"))
        print_table(rows)
        failed = [target for target, result, _ in rows if result == "failed"]
        if failed:
            raise Exit(f"Error: {len(failed)} of {len(rows)} hosts failed: {', '.join(failed)}",
                       code=1)

    return with_options(wrapper, body, index="")
