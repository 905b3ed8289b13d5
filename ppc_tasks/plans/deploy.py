"""What a deploy decides: every step of the whole server, in the order of the manual
procedure, from the settings, the host's facts and what this machine holds; and the facts
it asks for, composed from the planners it composes (its tasks: ppc_tasks/deploy.py)."""

from __future__ import annotations

import datetime

from .. import config_ini, credentials, index, local
from ..errors import TaskError
from ..facts import DOCKER, PLATFORM, UNIT, Facts
from ..local import LocalFacts
from ..plan import Change, Plan, boot_step
from ..settings import Settings
from . import balancer, certs, data, image, nginx, server, storage


def queries(settings) -> list[str]:
    return [PLATFORM.query(), DOCKER.query(), UNIT.query("docker"), *index.queries(settings),
            *image.queries(settings), *data.queries(settings), *server.queries(settings),
            *certs.install_queries(settings), *certs.trust_queries(settings), *nginx.queries(settings)]


def plan_deploy(settings: Settings, facts: Facts, now: datetime.datetime, host_name: str, *,
                here: LocalFacts | None = None, skip_build: bool = False, rebuild: bool = False,
                new_identity: bool = False, migrate_storage: bool = False) -> Plan:
    """Every step of a deploy, decided from the settings, the host's facts and what this
    machine holds (here: the CA, the secrets, the index's record; made in memory when
    missing). With migrate_storage, the file store is copied into S3 before the server
    is replaced."""
    if balancer.is_balancer(facts):
        raise TaskError(f"{host_name} is the index's balancer (balancer.deploy): an index "
                        f"host needs a host of its own")
    if not migrate_storage:
        storage.refuse_to_leave_packages_behind(settings, facts, host_name)
    here = here or local.read(settings)
    plan = Plan()
    if new_identity:
        plan.add(index.set_aside(settings, now))
    tls = certs.prepare(settings, now, fresh=new_identity, here=here)
    creds, secrets = credentials.prepare(settings, fresh=new_identity, kept=here.credentials)
    images = image.plan_images(settings, facts, force=rebuild, skip=skip_build)
    built = image.rebuilt(images)
    data_step = data.plan_data_step(
        settings, facts, facts.images[settings.data_image] is not None or "data" in built, now)
    plan.add(*tls.steps, secrets, index.identity_step(settings, facts, here.record),
             boot_step("docker.boot", "docker", facts), *images, data_step)
    if migrate_storage:
        plan.add(storage.plan_migration(settings, facts, config_ini.render_config(settings, creds),
                                        server_image_built="server" in built))
    serving = server.plan_server(settings, facts, creds, host_name,
                                 image_built="server" in built,
                                 data_made=isinstance(data_step, Change))
    plan.add(*serving.in_order(
        [certs.plan_install(settings, tls, facts), certs.plan_metrics_copies(settings, tls, facts),
         certs.plan_trust(settings, facts, tls.ca, host_name),
         *nginx.plan_nginx(settings, facts, host_name, nginx.render_site(settings, serving.port))],
        server.plan_records(settings, facts, isinstance(data_step, Change))))
    return plan
