"""`server`: config.ini and the pypicloud container (manual steps 3 and 4).

A deploy never takes a working index down: everything that can be checked is checked
before the live container is touched. A replacement (new image, config or options)
starts as `<name>-next` beside the live one, on the other of the two loopback ports,
and must answer /health and an authenticated /simple/ request; only then does nginx
switch to it (a graceful reload), and the old container is removed once nginx's old
workers have finished their requests. A replacement that fails is removed, config.ini
is put back, and the live container never stopped serving.

What config.ini says is config_ini.py's; this module runs the container with it.
"""

from __future__ import annotations

from . import credentials, index, local
from .facts import (
    CONTAINER,
    DOCKER,
    PLATFORM,
)
from .plan import (
    Change,
    Command,
    Plan,
    Unchanged,
)
from .plans import nginx
from .plans.server import NEXT_SUFFIX, plan_records, plan_server, queries
from .settings import Settings
from .wiring import host_task


# -- tasks ---------------------------------------------------------------------------------
@host_task
def deploy(host):
    """Write config.ini and run the pypicloud container; restarts only when something changed.

    config.ini (mode 0600) holds the admins' password hashes and the session keys,
    which are generated once and kept on this machine in <state_dir>/<index>/.
    The container is replaced when its image, config.ini or run options change,
    without downtime: the new one starts beside it and must answer (an admin's login
    too) before nginx switches to it; one that does not is removed, and the running
    one never stopped. The packages stay in the data volume.
    """
    def asked(settings: Settings) -> list[str]:
        return [PLATFORM.query(), DOCKER.query(), *index.queries(settings), *queries(settings)]

    facts = host.read_facts(asked(host.settings))
    host.require_docker(facts)
    facts = index.settle(host, facts, asked)
    plan = Plan()
    here = local.read(host.settings)
    creds, secrets = credentials.prepare(host.settings, kept=here.credentials)
    plan.add(secrets, index.identity_step(host.settings, facts, here.record))
    serving = plan_server(host.settings, facts, creds, host.name)
    plan.add(*serving.in_order(nginx.plan_switch(host.settings, facts, serving.port),
                               plan_records(host.settings, facts)))
    host.carry_out(plan)


@host_task
def remove(host):
    """Stop and remove the server container; packages stay in the data volume.

    A replacement a stopped deploy left beside it (pypicloud-next) is removed too.
    """
    names = [host.settings.server_container + suffix for suffix in ("", NEXT_SUFFIX)]
    facts = host.read_facts([PLATFORM.query(), DOCKER.query(), *(CONTAINER.query(name) for name in names)])
    host.require_docker(facts)
    plan = Plan()
    present = [name for name in names if facts.containers[name] is not None]
    if not present:
        plan.add(Unchanged("server.container", f"{names[0]} does not exist"))
    else:
        plan.add(Change("server.container", done=f"removed {', '.join(present)}",
                        would=f"remove {', '.join(present)}",
                        commands=[Command.of("docker", "rm", "--force", *present)]))
    host.carry_out(plan)
