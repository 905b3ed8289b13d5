"""Tasks as Fabric sees them: the decorators that make a task of a body (settings
validated, host connected, lock and audit, one-line errors), the help of their options,
and the one runner of many hosts at once.

`host_task` runs a body on the one host Fabric gives it; `many_hosts_task` runs a body
on every -H host in parallel and ends with a table. Expected failures end a run with
one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime
import functools
import getpass
import inspect
import os
import socket
from dataclasses import dataclass

import paramiko
from fabric import Connection, task
from invoke.exceptions import Exit

from . import index
from .apply import Host, audit_line, settings_fingerprint
from .errors import TaskError, program
from .settings import Settings, SettingsError
from .ssh import display_name


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


def settings_of(c, *, for_server: bool, index_option: str = "") -> Settings:
    """The validated settings of this run, for the index it works on.

    For a server, the -H name (an ssh_config alias as typed) names the index when
    server_names is not set; client tasks find the index deployed from this machine
    (or the one --index names)."""
    host = getattr(c, "original_host", None) if for_server else None
    settings = Settings.from_config(dict(c.config.ppc), host=host, environ=dict(os.environ),
                                    require_names=for_server)
    return index.for_servers(settings) if for_server else index.for_clients(settings, index_option)


# `ppc --help TASK` lines for the tasks' options, by name (one meaning per name).
OPTION_HELP = {
    "index": "the index to work with, when several were deployed from this machine",
    "lock_wait": "wait up to this many seconds for another run's lock on the host "
                 "(default: stop at once, naming who holds it)",
    "all_tools": "configure uv, Poetry and PDM even where they are not installed",
    "bootstrap": "first install the Docker engine where it is missing (as host.bootstrap)",
    "file": "a backup archive (made by backup.create)",
    "files": "the distributions, as a quoted pattern: 'dist/*'",
    "follow": "then go on showing new lines as they come, until Ctrl-C",
    "from_other_index": "restore an archive another index made (or one not signed): its "
                        "packages replace this index's",
    "kit": "the client kit file (made by clients.export; it holds a password)",
    "keep": "then delete all but this many newest archives (0: keep all)",
    "key_file": "the secrets.json (or the backup_key alone, hex) of the index that made "
                "the archive, when this machine no longer has its key",
    "lines": "how many of the last lines to show",
    "name_from_host": "on a first deploy without server_names, name the index after the "
                      "-H host, for good",
    "new_identity": "make a new CA and passwords for an index whose own are not on "
                    "this machine (every client must be configured again)",
    "rebuild": "rebuild the images from scratch, without Docker's layer cache",
    "reason": "why the release is yanked (one line; pip and uv show it)",
    "release": "the release, as NAME==VERSION",
    "since": "only the server's lines since then: 10m, 2h, 2026-12-01T09:00",
    "skip_build": "use the images already on the host",
    "verbose": "show the image builds' own output",
}


def with_options(wrapper, body, task_name=None, option_help=None, **options):
    """Give the task `wrapper` the options of `body` plus these (name=default), which the
    wrapper takes for itself: `ppc --help TASK` lists them all, each with its OPTION_HELP
    line or the task's own (option_help). task_name: the name it is listed by, when not
    the function's."""
    helps = {**OPTION_HELP, **(option_help or {})}
    signature = inspect.signature(body)
    parameters = list(signature.parameters.values()) + [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
        for name, default in options.items()]
    wrapper.__signature__ = signature.replace(parameters=parameters)
    return task(wrapper, name=task_name, auto_shortflags=False,  # -i, -H and friends: fab's
                help={parameter.name: helps[parameter.name] for parameter in parameters
                      if parameter.name in helps})


def host_task(body=None, *, for_server: bool = True, mutating: bool = True, name: str = "",
              preflight=None, option_help=None):
    """Make a Fabric task of `body(host, ...)` for one host: settings validated first,
    then connected, sudo checked. preflight(settings, **options) may refuse the run
    before the host is touched (a SettingsError or TaskError: one line).

    For a server, the -H name names the index unless server_names says otherwise; a
    task for any other host (for_server=False) works with the index deployed from this
    machine, or the one --index names. A mutating task takes the host's lock (see
    Host.lock_and_gather, --lock-wait) and leaves a line in its audit log, unless --dry;
    `name` is the task's name there and in the lock when it is not "module.function".

    Expected failures (bad settings, unreachable host, a failing command) end the run
    with one line on stderr and exit code 1, never a traceback.
    """
    if body is None:
        return functools.partial(host_task, for_server=for_server, mutating=mutating, name=name,
                                 preflight=preflight, option_help=option_help)

    @functools.wraps(body)
    def wrapper(c, *args, **kwargs):
        index_option = kwargs.pop("index", "")
        lock_wait = kwargs.pop("lock_wait", 0)
        where = display_name(c) if isinstance(c, Connection) else "the host"
        with expected_failures(where):
            settings = settings_of(c, for_server=for_server, index_option=index_option)
            if preflight is not None:
                preflight(settings, *args, **kwargs)
            if not isinstance(c, Connection):
                raise TaskError(f"name the server to work on: {program()} -H HOST {body.__name__}")
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
    return with_options(wrapper, body, task_name=name.rsplit(".", 1)[-1] if name else None,
                        option_help=option_help, **options)


# Tasks already run on every host of this run (see many_hosts_task).
_finished: set[str] = set()
PARALLEL_HOSTS = 16


# Where the -H list of the running `fab` or `ppc` comes from: cli.py, which knows the
# programs, hands it down (nothing here imports cli.py).
given_hosts = lambda: None  # noqa: E731  (cli.py replaces it)


def cli_hosts(c) -> list[str]:
    """Every host given with -H to the running `fab` or `ppc`, or just this connection's."""
    hosts = given_hosts()
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
    hosts = cli_hosts(c)
    # Each with a config of its own, made here: Fabric resolves a connection's keys into
    # the config it is given, and 16 threads doing that to one config lost a host's -i
    # key now and then ("No authentication methods available").
    connections = {target: Connection(target, config=c.config.clone()) for target in hosts}

    def run_one(target: str) -> HostOutcome:
        connection = connections[target]
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
        raise Exit(f"Error: name the hosts to work on: {program()} -H HOST1,HOST2 ...", code=2)
    _finished.add(name)
    return True


def many_hosts_task(body=None, *, preflight=None):
    """Make a Fabric task of `body(host, ...)` for many hosts at once (`ppc -H a,b,c`).

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
