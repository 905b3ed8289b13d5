"""Applying plans to a host: the executor, its report and progress, the lock and the
audit log.

A task reads the host's facts (one probe, files/sh/facts.sh) and decides a plan from
them; one executor here applies it, step by step, or shows it with `ppc --dry` (the
reason, a unified diff of every file with secrets redacted, the exact commands),
changing nothing, here or there. A mutating task holds the host's lock for its whole
run, gathers its facts under it in the same round trip, and leaves a line in the host's
audit log.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import getpass
import hashlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict

import paramiko
from fabric import Connection

from . import facts as facts_module
from . import state
from .archives import HashingReader
from .errors import TaskError, program
from .facts import Facts
from .plan import (
    Change,
    Command,
    HealthGate,
    LocalFile,
    LocalMove,
    Plan,
    describe,
    resolved,
)
from .render import script, script_argv
from .settings import Settings
from .ssh import Remote, Result, failure, last_lines, shown

LOCK_PATH = "/run/lock/ppc-tasks.lock"
# Held by each command of a run that holds LOCK_PATH: a command can outlive the SSH
# connection that started it (a killed ppc), and the next run waits for it to end.
WORK_LOCK_PATH = LOCK_PATH + ".work"
AUDIT_LOG = "/var/log/ppc-tasks/audit.log"
SLOW_STEP = 2.0  # seconds after which a step says it is still running, and how long it took


# -- deciding ------------------------------------------------------------------------------
def report_line(where: str, step: str, changed: bool, detail: str, dry: bool = False) -> str:
    """One step's line in a task's output: where, which step, changed or not, and what."""
    state = ("would change" if dry else "changed") if changed else "unchanged"
    return f"[{where}] {step:<18} {state:<{12 if dry else 9}}  {detail}"


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


# -- doing ---------------------------------------------------------------------------------
def do_here(local: Sequence[LocalFile | LocalMove]) -> None:
    """What a step keeps on this machine: files written, folders set aside."""
    for item in local:
        if isinstance(item, LocalFile):
            state.write(item.path, item.content, item.mode)
        else:
            item.source.rename(item.target)


class Host(Remote):
    """A connected host, with the validated settings and a record of what changed."""

    def __init__(self, connection: Connection | None, settings: Settings, dry: bool = False,
                 name: str = ""):
        super().__init__(connection, name)
        self.settings = settings
        self.dry = dry
        self.changed_steps: list[str] = []
        self.unchanged_steps: list[str] = []
        self.started = time.monotonic()
        self.task_name = ""
        self.lock_wait: int | None = None  # None: a run that takes no lock (read-only, --dry)
        self.verbose = False  # stream the output of commands worth watching (builds)
        self._lock: paramiko.Channel | None = None

    def connect(self, require_sudo: bool = True) -> None:  # type: ignore[override]
        """As Remote.connect; a run that takes the lock learns how to become root on the
        lock's own channel (one round trip less)."""
        super().connect(require_sudo, ask_sudo=self.lock_wait is None)

    # -- facts, the lock and the audit log ------------------------------------------------
    def read_facts(self, queries: Sequence[str]) -> Facts:
        """The facts this task decides from; a mutating run takes the lock with them."""
        queries = list(dict.fromkeys(queries))  # each answered once: docker calls are slow
        if self.lock_wait is None:
            return self.gather(queries)
        return self.lock_and_gather(self.task_name, queries, self.lock_wait)

    def gather(self, queries: Sequence[str], *, root: bool = True) -> Facts:
        """Read the facts a task decides from, in one round trip."""
        return facts_module.parse(self.run(facts_module.probe_argv(queries), root=root).stdout)

    def lock_and_gather(self, task_name: str, queries: Sequence[str], wait: int) -> Facts:
        """Take the host's lock for this run and read the facts under it, in one round
        trip. The lock lasts as long as the connection: a killed ppc never leaves one."""
        holder = (f"{getpass.getuser()}@{socket.gethostname()} running {task_name} since "
                  f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M:%S} UTC")
        argv = script_argv("hold-lock", LOCK_PATH, AUDIT_LOG, str(wait), holder,
                           script("facts"), *facts_module.probe_args(queries))
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
        self.work_lock = WORK_LOCK_PATH
        return facts_module.parse("\n".join(lines))

    def release(self, audit: str | None) -> None:
        """Write the run's audit line (if any) and let go of the lock."""
        channel, self._lock = self._lock, None
        self.work_lock = None
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
        for step in resolved(plan.steps):
            if not isinstance(step, Change):
                self.report(step.step, False, step.detail)
                continue
            with self.progress(step.step, watched=self.verbose and any(
                    command.shows_output for command in step.commands)) as elapsed:
                self.apply_change(step)
            took = elapsed()
            self.report(step.step, True, step.done + (f" in {took:.1f} s" if took >= SLOW_STEP
                                                      else ""))

    def apply_change(self, change: Change) -> None:
        """Its local writes, its commands, its gate; on a failure, its undo first."""
        do_here(change.local)
        try:
            for command in change.commands:
                self.run_command(command)
            if change.gate is not None:
                self.pass_gate(change.gate)
        except TaskError:
            for command in change.undo:
                self.run(command.argv, root=command.root, stdin=command.stdin, check=False)
            raise

    def run_command(self, command: Command) -> None:
        """One command of a step; a failure is one line saying what it means."""
        stream = (HashingReader(command.stdin_file.open("rb"))
                  if command.stdin_file is not None else None)
        try:
            result = self.run(command.argv, root=command.root,
                              stdin=stream if stream is not None else command.stdin,
                              check=not command.failure,
                              echo=self.verbose and command.shows_output)
        finally:
            if stream is not None:
                stream.close()
        if not result.ok:
            raise TaskError(command.failed(last_lines(result.stdout + result.stderr, 4)))
        if command.stdin_sha256 and stream.sha256.hexdigest() != command.stdin_sha256:
            raise TaskError(command.failed(f"{command.stdin_file} changed after it was checked "
                                           f"(the bytes sent are not those verified)"))

    def pass_gate(self, gate: HealthGate) -> None:
        """Wait until the server answers (files/sh/wait-healthy.sh), or fail saying why."""
        command = gate.command
        result = self.run(command.argv, root=True, stdin=command.stdin, check=False)
        if not result.ok:
            reason, _, logs = result.stdout.partition("\n")
            why = f"{reason or 'did not start'}; its last log lines: {last_lines(logs, 5) or '(none)'}"
            raise TaskError(gate.failure.replace("{why}", why))

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
        trips = self.round_trips
        self.note(f"done: {changed} changed, {unchanged} unchanged in "
                  f"{time.monotonic() - self.started:.1f} s" + (
                      f" ({trips} SSH round trip{'' if trips == 1 else 's'})" if trips else ""))

    def require_docker(self, facts: Facts) -> None:
        if facts.docker == "missing":
            raise TaskError(f"Docker is not installed on {self.name}: {program()} -H {self.name} "
                            f"host.bootstrap installs it (or deploy --bootstrap)")
        if facts.docker != "running":
            raise TaskError(f"dockerd is not running on {self.name}: start it "
                            f"(systemctl start docker) and run again")


class ThisMachine(Host):
    """The machine ppc runs on, as the user running it (never root): the same facts,
    plans and report as a host over SSH, for a user who sets up their own machine."""

    def __init__(self, settings: Settings, dry: bool = False):
        super().__init__(None, settings, dry, name=socket.gethostname())
        self.sudo = "none"

    def run(self, argv, *, root: bool = False, stdin=b"", check: bool = True,
            echo: bool = False) -> Result:
        if root:
            raise TaskError(f"{shown(argv)} would need root, which {self.name} is not asked for")
        done = subprocess.run(list(argv), input=stdin if isinstance(stdin, bytes) else stdin.read(),
                              capture_output=True, check=False)
        result = Result(done.returncode, done.stdout.decode(errors="replace"),
                        done.stderr.decode(errors="replace"))
        if check and not result.ok:
            raise failure(argv, result)
        return result
