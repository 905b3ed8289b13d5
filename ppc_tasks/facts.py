"""Facts: what a host is like now, read by one probe (files/sh/facts.sh) in one round trip.

Each planner module says which facts it reads (its `queries`); a task asks for those of
the planners it composes; the probe answers each with a line; this module turns the lines
into plain data. Planners decide from Facts alone, so they are pure functions, tested
with facts answered from a task's own queries (`answered`): reading a fact no one asked
for is a NotAsked, in a unit test as in a run. A new kind of fact is a case in facts.sh,
a `Kind` here (its token, reader, absent answer and the field it fills) and that field.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from .docker import CONTEXT_LABEL, SPEC_LABEL
from .errors import TaskError
from .render import script_argv
from .system import Platform, parse_platform


@dataclass(frozen=True)
class FileState:
    sha256: str
    mode: str  # octal, as stat prints it: "600"
    owner: str  # numeric "uid:gid"


@dataclass(frozen=True)
class FileFacts:
    state: FileState | None  # None: no such file
    is_directory: bool = False  # a directory stands where the file belongs
    content: bytes | None = None  # asked for with a text query

    def holds(self, content: bytes) -> bool:
        """Whether the file is there with exactly `content`."""
        return self.state is not None and self.state.sha256 == hashlib.sha256(content).hexdigest()


@dataclass(frozen=True)
class ImageFacts:
    id: str
    context: str  # the context-hash label ppc-tasks built it with ("" for another image)


@dataclass(frozen=True)
class ContainerFacts:
    spec: str  # the spec-hash label ppc-tasks created it with ("" for another container)
    running: bool
    port: int | None  # the host port it publishes
    restarts: int = 0
    health: str = ""  # healthy | unhealthy | starting | "" (no health check)
    started_at: str = ""
    image_id: str = ""
    mounts: dict[str, str] = field(default_factory=dict)  # destination -> volume name
    image: str = ""  # the image as it was named to run it


@dataclass(frozen=True)
class VolumeUsage:
    bytes: int
    files: int
    projects: int
    free_bytes: int
    size_bytes: int = 0  # of the file system it lives on (0: not told)


@dataclass(frozen=True)
class Release:
    held: bool
    version: str = ""  # as the index stores it (1.0 when asked for 1.0.0)
    yanked: str | None = None  # the reason ("" for none given); None: not yanked


class NotAsked(TaskError):
    """A planner read a fact that its task did not ask for: a fault of ppc-tasks, named."""


class Answers(dict):
    """The answers of one kind of fact, by what was asked; reading one that was not asked
    for is a NotAsked naming the query, never a KeyError."""

    def __init__(self, tokens: str, answers=()):
        super().__init__(answers)
        self.tokens = tokens

    def __missing__(self, value):
        raise NotAsked(f"a step read the fact {self.tokens}={value}, which its task did not "
                       f"ask for: please report this fault of ppc-tasks")


@dataclass
class Facts:
    platform: Platform | None = None
    user_ids: str = ""  # "uid:gid" of whoever ran the probe
    home: str = ""
    docker: str = "unknown"  # missing | running | stopped
    commands: dict[str, bool] = field(default_factory=dict)
    pip: tuple[tuple[int, ...], tuple[int, ...]] | None = None  # (pip, its Python) versions
    # developer tools of the connecting user: name -> (path, version) when installed
    tools: dict[str, tuple[str, tuple[int, ...]] | None] = field(default_factory=dict)
    units: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (enabled, active)
    images: dict[str, ImageFacts | None] = field(default_factory=dict)
    containers: dict[str, ContainerFacts | None] = field(default_factory=dict)
    volumes: dict[str, str] = field(default_factory=dict)  # name -> missing | empty | data
    volume_usage: dict[str, VolumeUsage] = field(default_factory=dict)
    # "container:data dir" -> (the volume it mounts there, or missing | none; data | empty)
    data_containers: dict[str, tuple[str, str]] = field(default_factory=dict)
    dangling: list[str] = field(default_factory=list)
    nginx: tuple[bool, bool] | None = None  # (installed, running)
    files: dict[str, FileFacts] = field(default_factory=dict)
    ports: set[int] = field(default_factory=set)
    nginx_test: tuple[bool, str] | None = None
    uid_accounts: dict[int, tuple[str, ...]] = field(default_factory=dict)  # uid -> account names
    health: dict[str, bool] = field(default_factory=dict)
    # pypicloud's /health per part (access, cache, storage): "" when healthy, else what is
    # wrong; empty when the server does not answer at all
    health_report: dict[str, dict[str, str]] = field(default_factory=dict)
    # the server's answers and server errors (5xx) of the last hour (or since it started),
    # as its guard adds them to that report; None: it does not say
    last_hour: dict[str, LastHour | None] = field(default_factory=dict)
    # "container/name/version" -> the release as the index holds it; None: cannot say
    releases: dict[str, Release | None] = field(default_factory=dict)
    # container -> its API tokens, as ppc-guard lists them (no secret); None: cannot say
    api_tokens: dict[str, tuple[dict, ...] | None] = field(default_factory=dict)

    def __setattr__(self, name, value) -> None:
        # Whoever fills a field (the parser, or a test by hand) gets answers that name
        # the query a planner forgot.
        tokens = answered_fields().get(name)
        if tokens and not isinstance(value, Answers):
            value = Answers(tokens, value)
        super().__setattr__(name, value)

    def file(self, path: str) -> FileFacts:
        return self.files[path]

    def unit_enabled(self, unit: str) -> bool:
        return self.units.get(unit, ("", ""))[0] == "enabled"

    def unit_active(self, unit: str) -> bool:
        return self.units.get(unit, ("", ""))[1] == "active"


def probe_args(queries) -> list[str]:
    """The arguments of the probe (files/sh/facts.sh): the labels it reads, the queries."""
    return [CONTEXT_LABEL, SPEC_LABEL, *queries]


def probe_argv(queries) -> list[str]:
    return script_argv("facts", *probe_args(queries))


# -- parsing -------------------------------------------------------------------------------
@dataclass(frozen=True)
class LastHour:
    answers: int
    server_errors: int


LAST_HOUR = "ppc_last_hour"  # what the guard adds to pypicloud's report (ppc_guard/hooks.py)


def parse_health_report(encoded: str) -> tuple[dict[str, str], LastHour | None]:
    """/health's JSON, as pypicloud-health --report printed it: its parts ({} when there is
    none) and the guard's figures of the last hour."""
    try:
        report = json.loads(base64.b64decode(encoded) or b"{}")
    except (ValueError, binascii.Error):
        return {}, None
    if not isinstance(report, dict):
        return {}, None
    figures = report.pop(LAST_HOUR, None)
    try:
        last_hour = LastHour(int(figures["answers"]), int(figures["server_errors"]))
    except (TypeError, KeyError, ValueError):
        last_hour = None
    return {str(part): str(message) for part, message in report.items()}, last_hour


def parse_version(text: str) -> tuple[int, ...]:
    """(0, 13, 9) from "0.13.9"; () when there is none."""
    try:
        return tuple(map(int, text.split(".")))
    except ValueError:
        return ()


def parse_pip_versions(text: str) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """From "24.2 3.11" (pip, Python); None when there is no pip."""
    words = text.split()
    if len(words) != 2:
        return None
    pip, python = map(parse_version, words)
    return (pip, python) if pip and python else None


def parse_file_state(text: str) -> FileFacts:
    words = text.split()
    if not words or words[0] == "missing":
        return FileFacts(None)
    if words[0] == "directory":
        return FileFacts(None, is_directory=True)
    mode, owner, sha256 = words[:3]
    return FileFacts(FileState(sha256=sha256, mode=mode, owner=owner))


def parse_container(text: str) -> ContainerFacts | None:
    if text == "missing":
        return None
    fields = (text.split("|") + [""] * 9)[:9]
    spec, running, port, restarts, health, started_at, image_id, mounts, image = fields
    return ContainerFacts(
        spec=spec, running=running == "true", port=int(port) if port.isdigit() else None,
        restarts=int(restarts) if restarts.isdigit() else 0, health=health,
        started_at=started_at, image_id=image_id,
        mounts=dict(item.split("=", 1) for item in mounts.split(",") if "=" in item),
        image=image)


# -- the kinds of fact: each one's query token, its reader, and the answer a test writes --
KINDS: dict[str, Kind] = {}  # every kind of fact by its token, as each is defined below


@functools.cache
def answered_fields() -> dict[str, str]:
    """The fields of Facts that hold answers by what was asked, and the tokens that fill
    them ("file|text": either asks for a file's state)."""
    tokens: dict[str, list[str]] = {}
    for kind in KINDS.values():
        for name in kind.fields:
            tokens.setdefault(name, []).append(kind.token)
    return {name: "|".join(found) for name, found in tokens.items()}


@dataclass(frozen=True)
class Kind:
    """One kind of fact: the token that asks files/sh/facts.sh for it (KIND or KIND=VALUE),
    and how its answer (a tab-separated line: KIND VALUE FIELD...) goes into Facts.
    Planners ask through `query`; unit tests write answers through `answer` and read
    them with `parse`, as a run does."""

    token: str
    read: Callable[[Facts, str, list[str]], None]
    absent: tuple[str, ...] = ()  # the answer's fields for a thing that is not there
    fields: tuple[str, ...] = ()  # the fields of Facts it fills, by what was asked

    def __post_init__(self) -> None:
        KINDS[self.token] = self

    def query(self, value: object = "") -> str:
        return f"{self.token}={value}" if value != "" else self.token

    def answer(self, value: object = "", *fields: str) -> str:
        return "\t".join([self.token, str(value), *fields])


def _field(answer: list[str], number: int) -> str:
    return answer[number] if len(answer) > number else ""


def _platform(facts: Facts, _: str, answer: list[str]) -> None:
    os_words, systemd, user_ids, home = (answer + [""] * 4)[:4]
    facts.platform = parse_platform(f"os={os_words}\nsystemd={systemd}\n")
    facts.user_ids, facts.home = user_ids, home


def _tool(facts: Facts, value: str, answer: list[str]) -> None:
    path, version = _field(answer, 0), _field(answer, 1)
    facts.tools[value] = (path, parse_version(version)) if path else None


def _image(facts: Facts, value: str, answer: list[str]) -> None:
    image_id, _, context = answer[0].partition("|")
    facts.images[value] = None if answer[0] == "missing" else ImageFacts(image_id, context)


def _volume_usage(facts: Facts, value: str, answer: list[str]) -> None:
    numbers = [int(word) if word.isdigit() else 0 for word in (answer + ["0"] * 5)[:5]]
    facts.volume_usage[value] = VolumeUsage(*numbers)


def _file(facts: Facts, value: str, answer: list[str]) -> None:
    facts.files[value] = parse_file_state(answer[0])


def _text(facts: Facts, value: str, answer: list[str]) -> None:
    state = parse_file_state(answer[0])
    if state.state is not None:
        content = base64.b64decode(answer[1]) if len(answer) > 1 else b""
        state = FileFacts(state.state, content=content)
    facts.files[value] = state


def _health(facts: Facts, value: str, answer: list[str]) -> None:
    facts.health[value] = answer[0] == "ok"
    facts.health_report[value], facts.last_hour[value] = parse_health_report(_field(answer, 1))


def _json_answer(answer: list[str]):
    """What ppc-guard answered, as JSON: "ok" and its output in base64; else None."""
    if answer[0] != "ok":
        return None
    try:
        return json.loads(base64.b64decode(_field(answer, 1)))
    except (ValueError, binascii.Error):
        return None


def _release(facts: Facts, value: str, answer: list[str]) -> None:
    state = _json_answer(answer)
    try:
        facts.releases[value] = Release(bool(state["held"]), str(state.get("version", "")),
                                        state.get("yanked"))
    except (KeyError, TypeError, AttributeError):  # no answer, or not a release's
        facts.releases[value] = None


def _api_tokens(facts: Facts, value: str, answer: list[str]) -> None:
    listed = _json_answer(answer)
    well_formed = isinstance(listed, list) and all(isinstance(token, dict) for token in listed)
    facts.api_tokens[value] = tuple(listed) if well_formed else None


def _command(facts: Facts, value: str, answer: list[str]) -> None:
    facts.commands[value] = answer[0] == "yes"


def _pip(facts: Facts, _: str, answer: list[str]) -> None:
    facts.pip = parse_pip_versions(answer[0])


def _docker(facts: Facts, _: str, answer: list[str]) -> None:
    facts.docker = answer[0]


def _unit(facts: Facts, value: str, answer: list[str]) -> None:
    facts.units[value] = (answer[0], _field(answer, 1))


def _container(facts: Facts, value: str, answer: list[str]) -> None:
    facts.containers[value] = parse_container(answer[0])


def _volume(facts: Facts, value: str, answer: list[str]) -> None:
    facts.volumes[value] = answer[0]


def _data_container(facts: Facts, value: str, answer: list[str]) -> None:
    facts.data_containers[value] = (answer[0], _field(answer, 1))


def _nginx(facts: Facts, _: str, answer: list[str]) -> None:
    facts.nginx = (answer[0] == "yes", _field(answer, 1) == "yes")


def _dangling(facts: Facts, value: str, _: list[str]) -> None:
    facts.dangling.append(value)


def _uid(facts: Facts, value: str, answer: list[str]) -> None:
    facts.uid_accounts[int(value)] = tuple(name for name in answer[0].split(",") if name)


def _ports(facts: Facts, _: str, answer: list[str]) -> None:
    facts.ports = {int(word, 16) for word in answer[0].split()}


def _nginx_test(facts: Facts, _: str, answer: list[str]) -> None:
    facts.nginx_test = (answer[0] == "ok", _field(answer, 1))


PLATFORM = Kind("platform", _platform)  # os-release IDs, systemd?, the user's ids and home
COMMAND = Kind("command", _command, ("no",), ("commands",))  # is it on PATH?
TOOL = Kind("tool", _tool, ("", ""), ("tools",))  # a tool of the connecting user: path, version
PIP = Kind("pip", _pip, ("",))  # the versions of `python3 -m pip` and its Python
DOCKER = Kind("docker", _docker, ("missing",))  # missing | running | stopped
UNIT = Kind("unit", _unit, ("none", "none"), ("units",))  # a systemd unit: enabled? active?
IMAGE = Kind("image", _image, ("missing",), ("images",))  # its ID and context-hash label
CONTAINER = Kind("container", _container, ("missing",),  # spec label, state, port, health...
                 ("containers",))
VOLUME = Kind("volume", _volume, ("missing",), ("volumes",))  # missing | empty | data
VOLUME_USAGE = Kind("volume-usage", _volume_usage,  # bytes, files, projects, free bytes
                    ("0", "0", "0", "0"), ("volume_usage",))
DATA_CONTAINER = Kind("data-container", _data_container,  # the volume it holds; an index?
                      ("missing", ""), ("data_containers",))
NGINX = Kind("nginx", _nginx, ("no", "no"))  # installed? running?
DANGLING = Kind("dangling", _dangling)  # unattached volumes that hold an index (a line each)
FILE = Kind("file", _file, ("missing",), ("files",))  # a file's mode, owner and sha256
TEXT = Kind("text", _text, ("missing", ""), ("files",))  # ... and its content
UID = Kind("uid", _uid, ("",), ("uid_accounts",))  # the accounts with this numeric uid
PORTS = Kind("ports", _ports, ("",))  # listening TCP ports
NGINX_TEST = Kind("nginx-test", _nginx_test, ("ok", ""))  # does `nginx -t` pass? else its error
HEALTH = Kind("health", _health, ("no", ""),  # pypicloud's own /health, inside its container
              ("health", "health_report", "last_hour"))
RELEASE = Kind("release", _release, ("unknown", ""),  # CONTAINER/NAME/VERSION: held? its yank
               ("releases",))
API_TOKENS = Kind("api-tokens", _api_tokens, ("unknown", ""),  # CONTAINER: its API tokens
                  ("api_tokens",))


def answered(queries, answers: dict[str, tuple[str, ...]] | None = None) -> Facts:
    """Facts as a host answers `queries`: with answers[query] (the fields after the
    value) where given, else as for a thing that is not there. Unit tests build facts so,
    from a task's own queries: a planner that reads what was not asked for fails there."""
    lines = []
    for query in dict.fromkeys(queries):
        token, _, value = query.partition("=")
        kind = KINDS[token]
        fields = (answers or {}).get(query, kind.absent)
        if fields or kind is not DANGLING:  # DANGLING answers nothing for no volume
            lines.append(kind.answer(value, *fields))
    return parse("\n".join(lines))


def parse(output: str) -> Facts:
    """Facts from facts.sh's output (one tab-separated line per answer)."""
    facts = Facts()
    for line in output.splitlines():
        token, value, *answer = line.split("\t") + [""]
        if token in KINDS:
            KINDS[token].read(facts, value, answer)
    return facts
