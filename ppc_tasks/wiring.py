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

import fabric
import paramiko
from fabric import Connection, task
from fabric.main import program as fabric_program
from fabric.tasks import ConnectionCall
from invoke import Call
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


# `ppc --help TASK` lines of the options the task decorators add, and of those that tasks
# of two collections share (deploy and image.build); a task's own are beside it.
OPTION_HELP = {
    "index": "the index to work with, when several were deployed from this machine",
    "lock_wait": "wait up to this many seconds for another run's lock on the host "
                 "(default: stop at once, naming who holds it)",
    "rebuild": "rebuild the images from scratch, without Docker's layer cache",
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


PARALLEL_HOSTS = 16


class Executor(fabric.Executor):
    """Fabric's executor, except that a task for many hosts at once (marked many_hosts:
    many_hosts_task, status) is called once, with every -H host as `hosts`, where Fabric
    calls a task once per host. `ppc` runs with it."""

    def expand_calls(self, calls, apply_hosts=True):
        expanded = []
        for call in super().expand_calls(calls, apply_hosts):
            if isinstance(call, ConnectionCall) and getattr(call.task, "many_hosts", False):
                target, last = call.init_kwargs["host"], expanded[-1] if expanded else None
                if (type(last) is Call and last.task is call.task
                        and target not in last.kwargs["hosts"]):
                    last.kwargs["hosts"].append(target)
                    continue
                call = Call(call.task, called_as=call.called_as, args=call.args,
                            kwargs={**call.kwargs, "hosts": [target]})
            expanded.append(call)
        return expanded


def hosts_to_work_on(c, hosts: list[str] | None) -> list[str]:
    """The -H hosts a task for many hosts works on in this call: all of them, from `ppc`
    (Executor). Fabric's own `fab` calls it once per host: the first host's call works
    on them all, and the others on none."""
    if hosts:
        return list(hosts)
    if not isinstance(c, Connection):
        raise Exit(f"Error: name the hosts to work on: {program()} -H HOST1,HOST2 ...", code=2)
    core = getattr(fabric_program, "core", None)
    typed = [h for h in (core[0].args.hosts.value or "").split(",") if h] if core else []
    if not typed:
        return [c.original_host]
    first = c.derive_shorthand(typed[0])
    is_first = (first["host"] == c.original_host and first["port"] in (None, c.port)
                and first["user"] in (None, c.user))
    return typed if is_first else []


def many_hosts(run=None, *, help=None):
    """Make a Fabric task of `run(c, targets, ...)`, a task for many hosts at once: it is
    called with the -H hosts it works on (hosts_to_work_on), once. help: its options'."""
    if run is None:
        return functools.partial(many_hosts, help=help)

    context, _, *options = inspect.signature(run).parameters.values()
    called = called_with_hosts(run)
    called.__signature__ = inspect.signature(run).replace(parameters=[context, *options])
    return for_many_hosts(task(called, auto_shortflags=False, help=help or {}))


def for_many_hosts(made):
    """Mark a task as one for many hosts at once: the Executor calls it once."""
    made.many_hosts = True
    return made


def called_with_hosts(run):
    """run(c, targets, ...) as a task's body, which the executor gives `hosts`."""
    @functools.wraps(run)
    def called(c, *args, hosts=None, **kwargs):
        targets = hosts_to_work_on(c, hosts)
        if targets:
            run(c, targets, *args, **kwargs)

    return called


@dataclass
class HostOutcome:
    target: str  # the -H entry
    host: Host | None
    error: str | None = None


def on_each_host(c, hosts: list[str], work, settings_for,
                 require_sudo: bool = False) -> list[HostOutcome]:
    """Run work(host) on each of `hosts` in parallel (16 at a time); one failing or
    unreachable host never stops the others. settings_for(connection) gives a host its
    settings."""
    dry = bool(c.config.run.dry)
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


def many_hosts_task(body=None, *, preflight=None, option_help=None):
    """Make a Fabric task of `body(host, ...)` for many hosts at once (`ppc -H a,b,c`).

    `body` runs on every -H host in parallel (see on_each_host, hosts_to_work_on). A
    table ends the run, one line per host; the exit code is non-zero if any host failed.
    Sudo is optional: `host.can_sudo` says whether there is any. The index is the one
    deployed from this machine (--index picks one). preflight(settings) may refuse the
    run before any host is touched (a SettingsError or TaskError: one line).
    option_help: the help of body's options.
    """
    if body is None:
        return functools.partial(many_hosts_task, preflight=preflight, option_help=option_help)

    @functools.wraps(body)
    def wrapper(c, targets, *args, **kwargs):
        index_option = kwargs.pop("index", "")
        with expected_failures():
            settings = settings_of(c, for_server=False, index_option=index_option)
            if preflight is not None:
                preflight(settings)
        outcomes = on_each_host(c, targets, lambda host: body(host, *args, **kwargs),
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

    return for_many_hosts(with_options(called_with_hosts(wrapper), body,
                                       option_help=option_help, index=""))
