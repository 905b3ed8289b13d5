"""`deploy`: the whole server, in the order of the manual procedure."""

from __future__ import annotations

from . import data, image, server
from .host import host_task


@host_task
def deploy(host, skip_build=False, rebuild=False):
    """Turn the host into a package index: images, data container, config, server.

    Every step is skipped when already done; the recap counts what changed.
    --skip-build uses the images already on the host; --rebuild rebuilds them
    from scratch.
    """
    server.check_port_free(host)
    if not skip_build:
        image.build_images(host, force=rebuild)
    data.ensure_data_container(host)
    server.deploy_server(host)
