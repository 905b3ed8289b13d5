"""`data`: where the packages and the database live (manual step 2).

They live in a named Docker volume (setting data_volume) that outlives every container.
The data container of the manual procedure holds it (so `docker volume prune` never
takes it) and the server container mounts it. Nothing but `data.destroy`, with an
explicit confirmation, ever removes it. A deploy never points the server at an empty
store while an index exists elsewhere on the host: it moves the data of an index made
before named volumes (or left behind by a data container removed by hand) into the
named volume, or refuses.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from . import docker
from .errors import TaskError
from .host import Host, host_task
from .render import script, script_argv
from .settings import DATA_DIR, Settings


@dataclass(frozen=True)
class DataState:
    """What files/sh/data-state.sh found on the host."""

    volume: str  # missing | empty | data
    container_mount: str | None  # the volume the data container mounts; None: no container
    container_data: bool  # that volume holds an index
    dangling: tuple[str, ...] = field(default=())  # unattached volumes holding an index


@dataclass(frozen=True)
class DataPlan:
    """(Re)create the data container on the named volume, after copying an index into it."""

    copy_from: str | None  # a volume whose index moves into the named volume first
    keep_old_container: bool  # rename the old container instead of removing it: it holds data
    detail: str


# -- deciding ------------------------------------------------------------------------------
def parse_data_state(output: str) -> DataState:
    facts: dict[str, str] = {}
    dangling = []
    for line in output.splitlines():
        key, _, value = line.partition(" ")
        if key == "dangling":
            dangling.append(value)
        else:
            facts[key] = value
    mount = facts.get("container", "missing")
    return DataState(volume=facts.get("volume", "missing"),
                     container_mount=None if mount == "missing" else mount,
                     container_data=facts.get("container-data") == "data",
                     dangling=tuple(dangling))


def plan_data(settings: Settings, state: DataState) -> DataPlan | None:
    """What to do so the data container holds the named volume with the index in it;
    None when it does already. Refuses (TaskError) rather than guess between indexes."""
    volume, container = settings.data_volume, settings.data_container
    ours = state.container_mount == volume
    if state.volume == "data" or ours:
        if ours:
            return None
        if state.container_mount is None:
            return DataPlan(None, False, f"created {container} for the volume {volume} "
                                               f"(the data container was missing)")
        return DataPlan(None, state.container_data,
                        f"{container} now holds the volume {volume}")
    if state.container_mount and state.container_data:
        return DataPlan(state.container_mount, True,
                        f"moved the index from {container}'s unnamed volume into {volume}")
    if state.container_mount is None and len(state.dangling) == 1:
        return DataPlan(state.dangling[0], False,
                        f"reattached the index left in the volume {state.dangling[0]} "
                        f"(copied into {volume})")
    if state.container_mount is None and state.dangling:
        raise TaskError(f"the volume {volume} is missing and several unattached volumes hold "
                        f"an index ({', '.join(state.dangling)}): copy the right one into a "
                        f"volume named {volume}, or set ppc.data_volume to it")
    return DataPlan(None, False, f"created {container} with the new volume {volume}")


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


# -- doing ---------------------------------------------------------------------------------
def data_state(host: Host) -> DataState:
    settings = host.settings
    return parse_data_state(host.run(script_argv("data-state", settings.data_volume,
                                                 settings.data_container, DATA_DIR),
                                     root=True).stdout)


def ensure_data(host: Host) -> None:
    settings = host.settings
    plan = plan_data(settings, data_state(host))
    if plan is None:
        host.report("data.container", False,
                    f"{settings.data_container} holds the volume {settings.data_volume}")
        return
    if docker.inspect(host, "image", settings.data_image, "{{.Id}}") is None:
        raise TaskError(f"image {settings.data_image} is missing: run image.build first")
    if plan.copy_from:
        # A consistent copy of the database needs the server stopped; it is recreated on
        # the new volume right after this.
        host.run(["docker", "stop", settings.server_container], root=True, check=False)
        host.run(["docker", "volume", "create", settings.data_volume], root=True)
        host.run(copy_argv(settings, plan.copy_from), root=True)
    detail = plan.detail
    if plan.keep_old_container:
        kept = kept_name(settings.data_container,
                         datetime.datetime.now(datetime.timezone.utc))
        host.run(["docker", "rename", settings.data_container, kept], root=True)
        detail += f"; the old container is kept as {kept} (remove it when satisfied)"
    else:
        host.run(["docker", "rm", settings.data_container], root=True, check=False)
    host.run(create_argv(settings), root=True)
    host.report("data.container", True, detail)


@host_task
def create(host):
    """Create the data container and its named volume; never replaces an index.

    Also moves an index made before named volumes into one, keeping the old container.
    """
    ensure_data(host)


@host_task
def destroy(host, confirm=""):
    """Delete the data container, its volume and ALL uploaded packages; needs --confirm=VOLUME.

    The server container must be removed first (server.remove), so nothing is
    serving from the volume while it disappears.
    """
    settings = host.settings
    if confirm != settings.data_volume:
        raise TaskError(f"this deletes every package on the index: repeat the volume "
                        f"name to confirm: --confirm={settings.data_volume}")
    if docker.inspect(host, "container", settings.server_container, "{{.Id}}") is not None:
        raise TaskError(f"server container {settings.server_container} still uses the data: "
                        f"run server.remove first")
    removed = []
    if docker.inspect(host, "container", settings.data_container, "{{.Id}}") is not None:
        host.run(["docker", "rm", settings.data_container], root=True)
        removed.append(f"the container {settings.data_container}")
    if docker.inspect(host, "volume", settings.data_volume, "{{.Name}}") is not None:
        host.run(["docker", "volume", "rm", settings.data_volume], root=True)
        removed.append(f"the volume {settings.data_volume} and its packages")
    host.report("data.container", bool(removed),
                f"deleted {' and '.join(removed)}" if removed else "there is no data to delete")
