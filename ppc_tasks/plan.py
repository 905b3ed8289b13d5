"""Plans: what a task would change, as data; one executor applies a plan or shows it.

Planners (in each collection's module) are pure functions of the settings and the
facts: for every step they return a Change (what to do and why) or Unchanged. A Change
is data all through, so that `ppc --dry` shows it and a unit test asserts it:

- `local`: files this machine keeps for the index (LocalFile) and folders it sets aside
  (LocalMove), done first;
- `commands`: on the host, in order (Command: an argv list, its stdin given or streamed
  from a file here, and what its failure means);
- `gate`: a server that must answer before the step counts as done (HealthGate);
- `undo`: what puts the host back when any of that fails, before the run stops.

apply.py runs the changes in order and reports each step; `describe` gives what --dry
prints: the reason, a unified diff of every file (secrets redacted), the exact commands,
changing nothing anywhere.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from .facts import Facts, FileFacts, FileState
from .render import script_argv

REDACTED = "<redacted>"
# Credential-shaped values in any file a preview shows: key = value (INI, TOML, YAML,
# inline tables), netrc's `password WORD` anywhere in a line, the user info of a URL
# (user:password@, :token@, token@), and every value in a section named for tokens or
# passwords (Poetry's [pypi-token]).
_SECRET_KEY = r"[\w.-]*(?:password|passwd|token|secret|api[-_]?key|credential)[\w.-]*"
_KEY_VALUE = re.compile(rf"(?i)((?<![\w.-]){_SECRET_KEY}[\"']?\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,}}]+)")
_NETRC_WORD = re.compile(r"(?i)(\b(?:password|account)\s+)(?![=:])(\S+)")
_URL_USERINFO = re.compile(r"(://)(?:([^/@\s:]*):)?[^/@\s:]+@")
_SECRET_SECTION = re.compile(r"(?i)^\s*\[[^\]]*(?:token|password|secret|credential)[^\]]*\]\s*$")
_SECTION = re.compile(r"^\s*\[")
_ANY_VALUE = re.compile(r"^(\s*[^=\s#;][^=]*?\s*=\s*).+$")
KEEP_PREVIOUS = "keep"  # put-file.sh keeps the file it replaces as PATH.ppc-previous


@dataclass(frozen=True)
class Command:
    """One command on the host: an argv list (quoted by the host layer), never a string."""

    argv: tuple[str, ...]
    root: bool = True
    stdin: bytes = b""
    stdin_shown: str = ""  # what --dry says arrives on stdin ("2.1 kB")
    # If set, a failure reads "<failure>: <the output's last lines>", or the failure with
    # the output in its place where it says {output}.
    failure: str = ""
    shows_output: bool = False  # its output is worth watching (a build): --verbose streams it
    stdin_file: Path | None = None  # a file here streamed to its stdin (an archive)
    stdin_sha256: str = ""  # the stdin_file's bytes as checked: others streamed fail the step

    @staticmethod
    def of(*argv: str, root: bool = True, stdin: bytes = b"", failure: str = "") -> Command:
        return Command(tuple(argv), root, stdin, size(stdin) if stdin else "", failure)

    def failed(self, output: str) -> str:
        if "{output}" in self.failure:
            return self.failure.replace("{output}", output)
        return f"{self.failure}: {output}"


@dataclass(frozen=True)
class LocalFile:
    """A file this machine keeps for the index (the CA, its secrets, its record):
    written atomically, with its mode from the start, in a 0700 folder."""

    path: Path
    content: bytes
    mode: int = 0o600


@dataclass(frozen=True)
class LocalMove:
    """Something of this machine set aside under another name, never deleted."""

    source: Path
    target: Path


@dataclass(frozen=True)
class HealthGate:
    """A server container that must answer (files/sh/wait-healthy.sh): /health, and with
    a login an authenticated /simple/ request. If it does not, the step fails with
    `failure`, where {why} stands for the reason and its last log lines."""

    container: str
    seconds: int
    failure: str
    login: bytes = b""  # an admin's "user:password" line, sent on stdin

    @property
    def command(self) -> Command:
        return Command(tuple(script_argv("wait-healthy", self.container, str(self.seconds))),
                       stdin=self.login, stdin_shown="an admin's login" if self.login else "")


@dataclass(frozen=True)
class FileDiff:
    """A file that changes, for --dry: old and new text, with secrets redacted."""

    path: str
    old: bytes | None  # None: there is no such file yet
    new: bytes
    redact: Callable[[str], str] = lambda text: text
    private: bool = False  # a private key: never shown, not even redacted


@dataclass
class Change:
    step: str
    done: str  # the report line after it ran: "recreated pypicloud (config.ini changed)"
    would: str  # the --dry line: "recreate pypicloud: config.ini changes"
    commands: Sequence[Command] = ()
    diffs: Sequence[FileDiff] = ()
    notifies: tuple[str, ...] = ()  # handlers later steps run because of this one
    local: Sequence[LocalFile | LocalMove] = ()  # done here, before the commands
    gate: HealthGate | None = None  # must pass after the commands
    undo: Sequence[Command] = ()  # run (each may fail) when the step fails, before the error


@dataclass
class Unchanged:
    step: str
    detail: str


@dataclass
class Handler:
    """A step that a change earlier in the plan asks for (its `notifies`), as Ansible's
    handlers are: the executor decides from what it ran, --dry from what would run. Asked
    for, it is `change`; else `otherwise` (Unchanged, or a change of its own reason)."""

    step: str
    listens: str
    change: Change
    otherwise: Change | Unchanged

    def chosen(self, notified: set[str]) -> Change | Unchanged:
        return self.change if self.listens in notified else self.otherwise


Step = Union[Change, Unchanged, Handler]  # (not `|` at run time: Python 3.9)


def resolved(steps: Sequence[Step]):
    """The steps as they run: each handler as the changes before it decide."""
    notified: set[str] = set()
    for step in steps:
        if isinstance(step, Handler):
            step = step.chosen(notified)
        if isinstance(step, Change):
            notified.update(step.notifies)
        yield step


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)

    def add(self, *steps: Step | None) -> None:
        self.steps.extend(step for step in steps if step is not None)

    def changes(self, step_prefix: str = "") -> list[Change]:
        """The changes the plan makes (handlers as the changes before them decide)."""
        return [step for step in resolved(self.steps)
                if isinstance(step, Change) and step.step.startswith(step_prefix)]


# -- showing -------------------------------------------------------------------------------
def redact_secrets(text: str) -> str:
    """A file as --dry shows it: no credential-shaped value of any service."""
    lines, in_secret_section = [], False
    for line in text.splitlines(keepends=True):
        if _SECTION.match(line):
            in_secret_section = bool(_SECRET_SECTION.match(line))
        elif in_secret_section:
            line = _ANY_VALUE.sub(rf"\g<1>{REDACTED}", line)
        line = _KEY_VALUE.sub(rf"\g<1>{REDACTED}", line)
        line = _NETRC_WORD.sub(rf"\g<1>{REDACTED}", line)
        line = _URL_USERINFO.sub(lambda match: f"{match[1]}{'' if match[2] is None else match[2] + ':'}"
                                               f"{REDACTED}@", line)
        lines.append(line)
    return "".join(lines)


def unified_diff(diff: FileDiff) -> list[str]:
    if diff.private:
        return [f"{diff.path}: a private key (not shown)"]
    old = redact_secrets(diff.redact(diff.old.decode(errors="replace"))) if diff.old is not None else ""
    new = redact_secrets(diff.redact(diff.new.decode(errors="replace")))
    lines = list(difflib.unified_diff(old.splitlines(), new.splitlines(),
                                      f"{diff.path} (now)" if diff.old is not None else "/dev/null",
                                      f"{diff.path} (after)", lineterm=""))
    return lines or [f"{diff.path}: only its mode or owner changes"]


def shown_local(change: Change) -> list[str]:
    lines = []
    for local in change.local:
        if isinstance(local, LocalFile):
            lines.append(f"here: write {local.path} (mode {local.mode:o})")
        else:
            lines.append(f"here: move {local.source} to {local.target}")
    return lines


def shown_commands(change: Change, shown: Callable[[Sequence[str]], str]) -> list[str]:
    lines = []
    for command in [*change.commands, *([change.gate.command] if change.gate else [])]:
        line = ("sudo " if command.root else "") + shown(command.argv)
        if command.stdin_shown:
            line += f" < {command.stdin_shown}"
        elif command.stdin_file is not None:
            line += f" < {command.stdin_file}"
        lines.append(f"$ {line}")
    return lines


def describe(plan: Plan, shown: Callable[[Sequence[str]], str]) -> list[tuple[str, bool, str, list[str]]]:
    """(step, would change, line, details) for each step: what --dry prints."""
    rows = []
    for step in resolved(plan.steps):
        if isinstance(step, Unchanged):
            rows.append((step.step, False, step.detail, []))
            continue
        details = [line for diff in step.diffs for line in unified_diff(diff)]
        rows.append((step.step, True, step.would,
                     details + shown_local(step) + shown_commands(step, shown)))
    return rows


def size(data: bytes) -> str:
    return f"{len(data)} bytes" if len(data) < 10_000 else f"{len(data) / 1000:.0f} kB"


def counted(number: int, noun: str) -> str:
    """"1 project", "3 projects": report words."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


# -- the most common step: a file with this content, mode and owner ------------------------
def file_step(step: str, path: str, content: bytes, current: FileFacts, *, mode: str,
              owner: str | None, user_ids: str = "", keep_previous: bool = False,
              redact: Callable[[str], str] = lambda text: text, private: bool = False,
              notifies: tuple[str, ...] = (), done: str | None = None) -> Step:
    """Change when the file differs from `content`, mode or owner; else Unchanged.

    owner is numeric "uid:gid" for a system file (written as root), or None for a file
    of the connecting user (written without sudo; user_ids are theirs)."""
    desired = FileState(hashlib.sha256(content).hexdigest(), mode, owner or user_ids)
    if current.state == desired:
        return Unchanged(step, done or path)
    if current.is_directory:
        reason = "a directory stands where it belongs"
    elif current.state is None:
        reason = "it is missing"
    elif current.state.sha256 != desired.sha256:
        reason = "its content differs"
    else:
        reason = f"its mode or owner differs ({current.state.mode} {current.state.owner})"
    command = Command.of(*script_argv("put-file", path, mode, owner or "",
                                      KEEP_PREVIOUS if keep_previous else ""),
                         root=owner is not None, stdin=content)
    return Change(step, done=done or path, would=f"write {path}: {reason}", commands=[command],
                  diffs=[FileDiff(path, current.content if current.state else None, content,
                                  redact, private)],
                  notifies=notifies)


def one_step(step: str, done: str, would: str, parts: Sequence[Step],
             extra: Sequence[Command] = ()) -> Step:
    """Several files (and commands after them) as one step: unchanged when all are."""
    changes = [part for part in parts if isinstance(part, Change)]
    if not changes:
        return Unchanged(step, done)
    return Change(step, done=done, would=would,
                  commands=[command for change in changes for command in change.commands] + list(extra),
                  diffs=[diff for change in changes for diff in change.diffs],
                  notifies=tuple(name for change in changes for name in change.notifies),
                  local=[local for change in changes for local in change.local],
                  undo=[command for change in changes for command in change.undo])


def boot_step(step: str, unit: str, facts: Facts) -> Step:
    """Enable a systemd unit, so the index comes back after a reboot by itself."""
    if not facts.platform.systemd:
        return Unchanged(step, f"no systemd: start {unit} at boot yourself")
    if facts.unit_enabled(unit):
        return Unchanged(step, f"{unit} starts at boot")
    return Change(step, done=f"{unit} now starts at boot", would=f"enable {unit} at boot",
                  commands=[Command.of("systemctl", "enable", unit)])
