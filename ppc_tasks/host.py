"""The one thin layer that talks to a host: run, sudo, put-if-changed, report.

Tasks decide *what* to do with pure functions (commands and file contents built from
the settings); this module is the only place that does it. Every step reports whether
it changed something, and each task ends with a count, so a second run can say
"0 changed".
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import hashlib
import io
import shlex
import socket
from dataclasses import dataclass

import paramiko
from fabric import Connection, task
from invoke.exceptions import Exit

from .settings import Settings, SettingsError


class TaskError(Exception):
    """An expected failure: its message is the one line the operator sees."""


@dataclass(frozen=True)
class FileState:
    sha256: str
    mode: str  # octal, as stat prints it: "600"
    owner: str  # numeric "uid:gid"


def file_state_command(path: str) -> str:
    """Prints nothing for a missing file, else '<mode> <uid>:<gid>' and a sha256sum line."""
    quoted = shlex.quote(path)
    return f"if [ -f {quoted} ]; then stat -c '%a %u:%g' {quoted} && sha256sum {quoted}; fi"


def parse_file_state(output: str) -> FileState | None:
    words = output.split()
    if not words:
        return None
    mode, owner, sha256 = words[:3]
    return FileState(sha256=sha256, mode=mode, owner=owner)


def install_command(source: str, path: str, mode: str, owner: str | None) -> str:
    """Put a file in place atomically, with its mode (and owner) set before it appears.
    Without an owner the file belongs to whoever runs the command."""
    ownership = "-o {} -g {} ".format(*owner.split(":")) if owner else ""
    staged = f"{path}.ppc-new"
    directory = path.rsplit("/", 1)[0] or "/"
    return (f"mkdir -p {shlex.quote(directory)} && "
            f"install -m {mode} {ownership}{shlex.quote(source)} {shlex.quote(staged)} && "
            f"mv -f {shlex.quote(staged)} {shlex.quote(path)}")


def report_line(where: str, step: str, changed: bool, detail: str) -> str:
    """One step's line in a task's output: where, which step, changed or not, and what."""
    return f"[{where}] {step:<18} {'changed' if changed else 'unchanged':<9}  {detail}"


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


def last_lines(text: str, count: int = 3) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:])


class Host:
    """A connected host, with the validated settings and a record of what changed."""

    def __init__(self, connection: Connection, settings: Settings):
        self.connection = connection
        self.settings = settings
        self.name = connection.host if connection.port == 22 else f"{connection.host}:{connection.port}"
        self.changed_steps: list[str] = []
        self.unchanged_steps: list[str] = []
        self.is_root = False
        self.can_sudo = False
        self.user_ids = ""  # numeric "uid:gid" of the connecting user

    # -- commands -------------------------------------------------------------------------
    def run(self, command: str, *, check: bool = True):
        """Run as the connecting user. Output is captured, never echoed (it may hold secrets)."""
        result = self.connection.run(command, hide=True, warn=True, in_stream=False, pty=False)
        return self._checked(command, result, check)

    def sudo(self, command: str, *, check: bool = True):
        """Run as root: directly when connected as root, else through sudo."""
        if self.is_root:
            return self.run(command, check=check)
        wrapped = f"sh -c {shlex.quote(command)}"
        if self.connection.config.sudo.password:
            result = self.connection.sudo(wrapped, hide=True, warn=True, in_stream=False, pty=False)
        else:
            result = self.connection.run(f"sudo -n {wrapped}", hide=True, warn=True,
                                         in_stream=False, pty=False)
        return self._checked(command, result, check)

    def _checked(self, command: str, result, check: bool):
        if check and not result.ok:
            shown = command if len(command) < 120 else command[:117] + "..."
            raise TaskError(f"`{shown}` failed (exit {result.exited}): "
                            f"{last_lines(result.stderr or result.stdout)}")
        return result

    # -- files ----------------------------------------------------------------------------
    def put(self, path: str, content: bytes, *, mode: str, owner: str | None = "0:0") -> bool:
        """Make the file at `path` hold `content` with mode and owner; True if it changed.

        owner is numeric "uid:gid" for a system file (written as root), or None for a
        file of the connecting user (written without sudo).
        """
        execute = self.sudo if owner else self.run
        desired = FileState(hashlib.sha256(content).hexdigest(), mode, owner or self.user_ids)
        current = parse_file_state(execute(file_state_command(path)).stdout)
        if current == desired:
            return False
        if current and current.sha256 == desired.sha256:
            execute(f"chmod {mode} {shlex.quote(path)} && chown {desired.owner} {shlex.quote(path)}")
            return True
        with self.staging() as staging:
            self.connection.put(io.BytesIO(content), f"{staging}/upload")
            execute(install_command(f"{staging}/upload", path, mode, owner))
        return True

    def read(self, path: str, *, as_root: bool = False) -> str | None:
        """The text of a file on the host, or None when there is none."""
        result = (self.sudo if as_root else self.run)(
            f"if [ -f {shlex.quote(path)} ]; then cat {shlex.quote(path)}; else exit 3; fi",
            check=False)
        if result.exited == 3:
            return None
        return self._checked(f"cat {path}", result, check=True).stdout

    @contextlib.contextmanager
    def staging(self):
        """A fresh 0700 folder on the host for uploads, removed afterwards."""
        staging = self.run("mktemp -d").stdout.strip()
        try:
            yield staging
        finally:
            self.run(f"rm -rf {shlex.quote(staging)}", check=False)

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
        """Open the SSH connection and check root access; errors become one clear line."""
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
        uid, gid = self.run("id -u && id -g").stdout.split()
        self.user_ids = f"{uid}:{gid}"
        self.is_root = uid == "0"
        self.can_sudo = (self.is_root or bool(self.connection.config.sudo.password)
                         or self.run("sudo -n true", check=False).ok)
        if require_sudo and not self.can_sudo:
            raise TaskError(f"{where} cannot use sudo without a password: allow it "
                            f"(NOPASSWD) or run fab with --prompt-for-sudo-password")

    def require_docker(self) -> None:
        if not self.run("command -v docker", check=False).ok:
            raise TaskError(f"Docker is not installed on {self.name}: install it "
                            f"(Debian/Ubuntu: apt-get install docker.io) and run again")
        info = self.sudo("docker info --format '{{.ServerVersion}}'", check=False)
        if not info.ok:
            raise TaskError(f"Docker on {self.name} does not answer: "
                            f"{last_lines(info.stderr, 1)} (is dockerd running?)")


def _settings(c, host_fallback: bool) -> Settings:
    ppc = dict(c.config.ppc)
    return Settings.from_config(ppc, host=getattr(c, "host", None) if host_fallback else None)


def host_task(body=None, *, docker: bool = True):
    """Make a Fabric task of `body(host, ...)` for a server: settings validated first,
    then connected, sudo checked (and Docker, with docker=True).

    Expected failures (bad settings, unreachable host, a failing command) end the run
    with one line on stderr and exit code 1, never a traceback.
    """
    if body is None:
        return functools.partial(host_task, docker=docker)

    @functools.wraps(body)
    def wrapper(c, *args, **kwargs):
        with expected_failures(getattr(c, "host", None) or "the host"):
            settings = _settings(c, host_fallback=True)
            if not isinstance(c, Connection):
                raise TaskError("name the server to work on: fab -H HOST " + body.__name__)
            host = Host(c, settings)
            host.connect()
            if docker:
                host.require_docker()
            body(host, *args, **kwargs)
            host.summary()

    return task(wrapper)


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
            settings = _settings(c, host_fallback=False)
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

    return task(wrapper)
