"""Where an index keeps its packages, and moving them from its file store into S3: what
a deploy checks (no packages left behind) and what storage.migrate copies first (its
task: ppc_tasks/deploy.py)."""

from __future__ import annotations

import re

from ..errors import TaskError, program
from ..facts import Facts
from ..plan import Change, Command, Step, Unchanged
from ..render import script
from ..settings import DATA_DIR, PYPICLOUD_UID, Settings
from . import image, server

CONFIGURED_STORAGE = re.compile(rb"^pypi\.storage\s*=\s*(\S+)", re.MULTILINE)


def configured_storage(settings: Settings, facts: Facts) -> str | None:
    """The store the config.ini on the host names, if there is one."""
    found = CONFIGURED_STORAGE.search(facts.file(settings.config_path).content or b"")
    return found[1].decode() if found else None


def needs_migration(settings: Settings, facts: Facts) -> bool:
    return settings.storage == "s3" and configured_storage(settings, facts) == "file"


def refuse_to_leave_packages_behind(settings: Settings, facts: Facts, host_name: str) -> None:
    """A deploy that switched a file-store index to S3 would serve an empty bucket."""
    if needs_migration(settings, facts):
        raise TaskError(f"the index on {host_name} keeps its packages in its file store: "
                        f"{program()} -H {host_name} storage.migrate moves them into S3 (bucket "
                        f"{settings.s3_bucket}) and switches the server to it")


def migrate_argv(settings: Settings, image_ref: str) -> list[str]:
    """A throwaway server-image container with the data volume and the running config."""
    return ["docker", "run", "--rm", "-i", "--user", str(PYPICLOUD_UID),
            "--volume", f"{settings.config_dir}:{server.CONTAINER_CONFIG_DIR}:ro",
            "--volume", f"{settings.data_volume}:{DATA_DIR}",
            "--entrypoint", "sh", image_ref, "-c", script("migrate-storage"), "migrate-storage",
            f"{server.CONTAINER_CONFIG_DIR}/config.ini"]


def plan_migration(settings: Settings, facts: Facts, config: bytes,
                   server_image_built: bool = False) -> Step:
    """Copy the file store into S3, before the server is replaced by one on S3: with the
    image that server will run (built earlier in the plan, when server_image_built)."""
    if not needs_migration(settings, facts):
        now = configured_storage(settings, facts)
        return Unchanged("storage.migrate", f"the index keeps its packages in S3 (bucket "
                                            f"{settings.s3_bucket})" if now == "s3" else
                         "there is no file store to move")
    server_image, _ = image.server_image(settings, facts, building=server_image_built)
    where = f"S3 bucket {settings.s3_bucket}"
    return Change("storage.migrate",
                  done=f"copied every package of the file store into the {where} (the file "
                       f"store stays in {settings.data_volume})",
                  would=f"copy every package of the file store into the {where} (ppc-migrate)",
                  commands=[Command.of(*migrate_argv(settings, server_image), stdin=config,
                                       failure="ppc-migrate could not copy the packages; the "
                                               "server still runs on its file store")])
