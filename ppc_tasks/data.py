"""`data`: the data container that holds the packages and the database (manual step 2).

It is created once and outlives every server container: no task replaces it, and
only `data.destroy` with an explicit confirmation removes it.
"""

from __future__ import annotations

import shlex

from . import docker
from .host import Host, TaskError, host_task


def create_command(container: str, image: str) -> str:
    return shlex.join(["docker", "create", "--name", container, image])


def destroy_command(container: str) -> str:
    # -v: the data container owns the package volume; removing it is the point.
    return shlex.join(["docker", "rm", "-v", container])


def ensure_data_container(host: Host) -> None:
    settings = host.settings
    image = docker.inspect(host, "container", settings.data_container, "{{.Config.Image}}")
    if image is not None:
        host.report("data.container", False, f"{settings.data_container} exists (from {image})")
        return
    if docker.inspect(host, "image", settings.data_image, "{{.Id}}") is None:
        raise TaskError(f"image {settings.data_image} is missing: run image.build first")
    host.sudo(create_command(settings.data_container, settings.data_image))
    host.report("data.container", True, f"created {settings.data_container}")


@host_task
def create(host):
    """Create the data container holding packages and database; never replaces one."""
    ensure_data_container(host)


@host_task
def destroy(host, confirm=""):
    """Delete the data container and ALL uploaded packages; needs --confirm=CONTAINER.

    The server container must be removed first (server.remove), so nothing is
    serving from the volume while it disappears.
    """
    settings = host.settings
    if confirm != settings.data_container:
        raise TaskError(f"this deletes every package on the index: repeat the container "
                        f"name to confirm: --confirm={settings.data_container}")
    if docker.inspect(host, "container", settings.server_container, "{{.Id}}") is not None:
        raise TaskError(f"server container {settings.server_container} still uses the data: "
                        f"run server.remove first")
    if docker.inspect(host, "container", settings.data_container, "{{.Id}}") is None:
        host.report("data.container", False, f"{settings.data_container} does not exist")
        return
    host.sudo(destroy_command(settings.data_container))
    host.report("data.container", True, f"deleted {settings.data_container} and its packages")
