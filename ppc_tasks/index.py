"""Which index a run works on.

An index's identity is its folder in state_dir on the operator's machine (passwords,
session keys, the CA): named once, after the first server name of its first deploy, and
kept when names are added or reordered. Each folder records the index's server names
(index.json), so client tasks find the index by themselves, and each host that serves
it records the folder's name (/etc/ppc-tasks/index), so a deploy never makes a second
identity (a new CA, new passwords) for a host that has one: it refuses and says how to
proceed.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from pathlib import Path

from .errors import TaskError, program
from .facts import DATA_CONTAINER, FILE, TEXT, VOLUME, Facts
from .local import RECORD
from .plan import Change, LocalFile, LocalMove, Step, Unchanged, file_step
from .settings import DATA_DIR, Settings

HOST_MARKER = "/etc/ppc-tasks/index"


# -- deciding ------------------------------------------------------------------------------
def known_indexes(state_dir: Path) -> dict[str, tuple[str, ...]]:
    """Every index deployed from this machine: folder name -> its server names. A folder
    from before index.json (it has secrets.json only) was named after its first name."""
    indexes = {}
    for folder in sorted(state_dir.glob("*/")) if state_dir.is_dir() else ():
        if ".replaced-" in folder.name:  # set aside by --new-identity: no longer an index
            continue
        record = folder / RECORD
        if record.is_file():
            try:
                names = tuple(json.loads(record.read_text())["server_names"])
            except (ValueError, KeyError, TypeError):
                raise TaskError(f"{record} is damaged: restore it, or delete it and deploy "
                                f"again with the index's server names") from None
            indexes[folder.name] = names
        elif (folder / "secrets.json").is_file():
            indexes[folder.name] = (folder.name,)
    return indexes


def index_for_names(indexes: dict[str, tuple[str, ...]], names: tuple[str, ...]) -> str | None:
    """The index that has any of these names (its folder's name counts as one)."""
    matches = [index for index, recorded in indexes.items()
               if index in names or set(recorded) & set(names)]
    if len(matches) > 1:
        raise TaskError(f"the names {', '.join(names)} belong to several indexes here "
                        f"({', '.join(matches)}): set ppc.server_names to one index's names")
    return matches[0] if matches else None


def choose_for_clients(indexes: dict[str, tuple[str, ...]], names: tuple[str, ...],
                       option: str, state_dir: Path) -> str:
    """The index client tasks work with: --index, else the one with these names, else
    the only one deployed from this machine."""
    known = ", ".join(indexes) or "none"
    if option:
        if option not in indexes:
            raise TaskError(f"--index {option}: no such index in {state_dir} (known: {known})")
        return option
    if names:
        chosen = index_for_names(indexes, names)
        if chosen is None:
            raise TaskError(f"no index in {state_dir} has the name {names[0]}: deploy it from "
                            f"this machine first, or copy its folder here (known: {known})")
        return chosen
    if len(indexes) == 1:
        return next(iter(indexes))
    if not indexes:
        raise TaskError(f"no index has been deployed from this machine ({state_dir} is "
                        f"empty): run {program()} -H SERVER deploy first, or set ppc.server_names")
    raise TaskError(f"several indexes were deployed from this machine ({known}): "
                    f"choose one with --index NAME")


def identity_problem(index: str, marker: str | None, host_has_index: bool,
                     indexes: dict[str, tuple[str, ...]], state_dir: Path, host_name: str) -> str | None:
    """Why deploying `index` to this host would make a second identity, or None."""
    if marker and marker not in indexes:
        return (f"{host_name} serves the index {marker!r}, whose CA and passwords are not in "
                f"{state_dir / marker}: copy that folder here from the machine that deployed "
                f"it, or deploy with --new-identity to make new ones (every client must then "
                f"be configured again)")
    if not marker and host_has_index and index not in indexes:
        return (f"{host_name} already serves an index whose CA and passwords are not in "
                f"{state_dir}: copy its folder here from the machine that deployed it, or "
                f"deploy with --new-identity to make new ones (every client must then be "
                f"configured again)")
    return None


# -- doing ---------------------------------------------------------------------------------
def with_index(settings: Settings, index: str, names: tuple[str, ...]) -> Settings:
    return dataclasses.replace(settings, index_name=index, server_names=settings.server_names or names)


def for_clients(settings: Settings, option: str = "") -> Settings:
    indexes = known_indexes(settings.state_dir)
    index = choose_for_clients(indexes, settings.server_names, option, settings.state_dir)
    return with_index(settings, index, indexes[index])


def for_servers(settings: Settings) -> Settings:
    """The index these server names belong to, or a new one named after the first."""
    indexes = known_indexes(settings.state_dir)
    index = index_for_names(indexes, settings.server_names) or settings.primary_name
    return with_index(settings, index, ())


def queries(settings: Settings) -> list[str]:
    """What tells whether a host serves an index, and which one."""
    return [TEXT.query(HOST_MARKER), FILE.query(settings.config_path), VOLUME.query(settings.data_volume),
            DATA_CONTAINER.query(f"{settings.data_container}:{DATA_DIR}")]


def host_has_index(settings: Settings, facts: Facts) -> bool:
    config = facts.file(settings.config_path)
    data_container = facts.data_containers[f"{settings.data_container}:{DATA_DIR}"][0]
    # An empty volume is no index: an operator may make it beforehand (on a disk of its own).
    return (config.state is not None or config.is_directory
            or facts.volumes[settings.data_volume] == "data" or data_container != "missing")


def marker_of(facts: Facts) -> str | None:
    content = facts.file(HOST_MARKER).content
    return (content.decode(errors="replace").strip() or None) if content else None


def serving(settings: Settings, marker: str | None, indexes: dict[str, tuple[str, ...]]) -> str:
    """The index a run works on: the one the host serves, when this machine has it and
    the names no longer lead to it (they were replaced); else the one the names lead to."""
    if marker and marker != settings.index_name and marker in indexes:
        return marker
    return settings.index_name


def settle(host, facts: Facts, queries_of, new_identity: bool = False) -> Facts:
    """The facts of the index the host serves. When the host serves this machine's index
    under names that changed, the run works on that index (its folder, CA and
    passwords), and its facts are asked again, as queries_of(settings) asks them for it.
    Refuses a run that would give the host's index a second identity (a new CA, new
    passwords). Touches nothing."""
    indexes = known_indexes(host.settings.state_dir)
    marker = marker_of(facts)
    index = serving(host.settings, marker, indexes)
    if index != host.settings.index_name:
        # The one place a run's settings are replaced: by those of the index it serves.
        host.settings = dataclasses.replace(host.settings, index_name=index)
        facts = host.gather(queries_of(host.settings))
    if not new_identity:
        problem = identity_problem(index, marker, host_has_index(host.settings, facts),
                                   indexes, host.settings.state_dir, host.name)
        if problem:
            raise TaskError(problem)
    return facts


def identity_step(settings: Settings, facts: Facts, recorded: dict | None) -> Step:
    """The index's names in its folder here (recorded: its index.json as read), and on
    the host which index it serves."""
    record = settings.server_state_dir / RECORD
    wanted = {"server_names": list(settings.server_names)}
    record_is_current = recorded == wanted
    folder = f"{settings.index_name} ({settings.server_state_dir})"
    marker = file_step("index.identity", HOST_MARKER, f"{settings.index_name}\n".encode(),
                       facts.file(HOST_MARKER), mode="644", owner="0:0", done=folder)
    if record_is_current:
        return marker
    commands = marker.commands if isinstance(marker, Change) else []
    return Change("index.identity", done=folder,
                  would=f"record the index {settings.index_name}: its names in {record}"
                        + (", its name on the host" if commands else ""),
                  commands=commands, diffs=marker.diffs if isinstance(marker, Change) else (),
                  local=[LocalFile(record, (json.dumps(wanted, indent=2) + "\n").encode(), 0o644)])


def set_aside(settings: Settings, now: datetime.datetime) -> Step:
    """--new-identity: the index's folder (CA, passwords) is moved aside, never deleted,
    so that new ones are made (in memory first: --dry creates nothing)."""
    folder = settings.server_state_dir
    if not folder.exists():
        return Unchanged("index.new-identity", f"there is no {folder} to set aside")
    aside = folder.with_name(f"{folder.name}.replaced-{now:%Y%m%d%H%M%S}")
    return Change("index.new-identity",
                  done=f"the previous CA and passwords are kept in {aside}",
                  would=f"set {folder} aside as {aside}, then make a new CA and passwords",
                  local=[LocalMove(folder, aside)])
