"""What `data` decides, from the settings and a host's facts alone: the facts it
asks for, its steps and what they render (its tasks: ppc_tasks/data.py)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from ..errors import TaskError
from ..facts import (
    CONTAINER,
    DANGLING,
    DATA_CONTAINER,
    IMAGE,
    VOLUME,
    Facts,
)
from ..plan import Change, Command, Step, Unchanged
from ..render import script
from ..settings import DATA_DIR, Settings


@dataclass(frozen=True)
class DataState:
    """Where the index's data is on the host."""

    volume: str  # the named volume: missing | empty | data
    container_mount: str | None  # the volume the data container mounts; None: no container
    container_data: bool  # that volume holds an index
    dangling: tuple[str, ...] = field(default=())  # unattached volumes holding an index


@dataclass(frozen=True)
class DataPlan:
    """(Re)create the data container on the named volume, after copying an index into it."""

    copy_from: str | None  # a volume whose index moves into the named volume first
    keep_old_container: bool  # rename the old container instead of removing it: it holds data
    done: str  # what the report says afterwards
    would: str  # what --dry says


# -- deciding ------------------------------------------------------------------------------
def queries(settings: Settings) -> list[str]:
    return [VOLUME.query(settings.data_volume),
            DATA_CONTAINER.query(f"{settings.data_container}:{DATA_DIR}"),
            DANGLING.query(settings.data_volume), IMAGE.query(settings.data_image),
            CONTAINER.query(settings.server_container)]


def data_state(settings: Settings, facts: Facts) -> DataState:
    mount, holds = facts.data_containers.get(f"{settings.data_container}:{DATA_DIR}",
                                             ("missing", ""))
    return DataState(volume=facts.volumes[settings.data_volume],
                     container_mount=None if mount == "missing" else mount,
                     container_data=holds == "data", dangling=tuple(facts.dangling))


def plan_data(settings: Settings, state: DataState) -> DataPlan | None:
    """What to do so the data container holds the named volume with the index in it;
    None when it does already. Refuses (TaskError) rather than guess between indexes."""
    volume, container = settings.data_volume, settings.data_container
    ours = state.container_mount == volume
    if state.volume == "data" or ours:
        if ours:
            return None
        if state.container_mount is None:
            return DataPlan(None, False,
                            f"created {container} for the volume {volume} (the data container "
                            f"was missing)", f"create {container} for the volume {volume}: "
                                             f"the data container is missing")
        return DataPlan(None, state.container_data, f"{container} now holds the volume {volume}",
                        f"make {container} hold the volume {volume}")
    if state.container_mount and state.container_data:
        return DataPlan(state.container_mount, True,
                        f"moved the index from {container}'s unnamed volume into {volume}",
                        f"move the index from {container}'s unnamed volume into {volume}")
    if state.container_mount is None and len(state.dangling) == 1:
        return DataPlan(state.dangling[0], False,
                        f"reattached the index left in the volume {state.dangling[0]} "
                        f"(copied into {volume})",
                        f"reattach the index left in the volume {state.dangling[0]} "
                        f"(copy it into {volume})")
    if state.container_mount is None and state.dangling:
        raise TaskError(f"the volume {volume} is missing and several unattached volumes hold "
                        f"an index ({', '.join(state.dangling)}): copy the right one into a "
                        f"volume named {volume}, or set ppc.data_volume to it")
    return DataPlan(None, False, f"created {container} with the new volume {volume}",
                    f"create {container} with a new volume {volume}")


def create_argv(settings: Settings) -> list[str]:
    return ["docker", "create", "--name", settings.data_container,
            "--volume", f"{settings.data_volume}:{DATA_DIR}", settings.data_image]


def copy_argv(settings: Settings, source: str) -> list[str]:
    """Copy a volume into the named one in a throwaway container, and compare."""
    return ["docker", "run", "--rm", "--user", "0",
            "--volume", f"{source}:/from:ro", "--volume", f"{settings.data_volume}:/to",
            "--entrypoint", "sh", settings.data_image, "-c", script("copy-volume")]


def kept_name(container: str, now: datetime.datetime) -> str:
    return f"{container}-before-{now:%Y%m%d%H%M%S}"


def plan_data_step(settings: Settings, facts: Facts, image_ready: bool,
                   now: datetime.datetime) -> Step:
    """The data.container step: its commands, in order, or Unchanged."""
    plan = plan_data(settings, data_state(settings, facts))
    if plan is None:
        return Unchanged("data.container",
                         f"{settings.data_container} holds the volume {settings.data_volume}")
    if not image_ready:
        raise TaskError(f"image {settings.data_image} is missing: run image.build first")
    commands = []
    if plan.copy_from:
        server = facts.containers[settings.server_container]
        if server is not None and server.running:
            # A consistent copy of the database needs the server stopped; it is
            # replaced on the new volume right after this.
            commands.append(Command.of("docker", "stop", settings.server_container))
        commands += [Command.of("docker", "volume", "create", settings.data_volume),
                     Command.of(*copy_argv(settings, plan.copy_from))]
    done, would = plan.done, plan.would
    if plan.keep_old_container:
        kept = kept_name(settings.data_container, now)
        commands.append(Command.of("docker", "rename", settings.data_container, kept))
        done += f"; the old container is kept as {kept} (remove it when satisfied)"
        would += f"; keep the old container as {kept}"
    elif data_state(settings, facts).container_mount is not None:
        commands.append(Command.of("docker", "rm", settings.data_container))
    commands.append(Command.of(*create_argv(settings)))
    return Change("data.container", done=done, would=would, commands=commands)


def destroy_queries(settings: Settings) -> list[str]:
    """What plan_destroy reads: the volume, and the containers that use it."""
    return [VOLUME.query(settings.data_volume), CONTAINER.query(settings.server_container),
            CONTAINER.query(settings.data_container)]


def plan_destroy(settings: Settings, facts: Facts, confirm: str) -> list[Step]:
    if confirm != settings.data_volume:
        raise TaskError(f"this deletes every package on the index: repeat the volume "
                        f"name to confirm: --confirm={settings.data_volume}")
    if facts.containers[settings.server_container] is not None:
        raise TaskError(f"server container {settings.server_container} still uses the data: "
                        f"run server.remove first")
    commands, removed = [], []
    if facts.containers[settings.data_container] is not None:
        commands.append(Command.of("docker", "rm", settings.data_container))
        removed.append(f"the container {settings.data_container}")
    if facts.volumes[settings.data_volume] != "missing":
        commands.append(Command.of("docker", "volume", "rm", settings.data_volume))
        removed.append(f"the volume {settings.data_volume} and its packages")
    if not commands:
        return [Unchanged("data.container", "there is no data to delete")]
    what = " and ".join(removed)
    return [Change("data.container", done=f"deleted {what}", would=f"delete {what}",
                   commands=commands)]
