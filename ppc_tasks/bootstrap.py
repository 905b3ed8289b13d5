"""`host.bootstrap`: the Docker engine on a bare Debian/Ubuntu (or Fedora) host, from
the distribution's own packages (never a script piped from curl), enabled at boot and
checked with `docker info`. `deploy --bootstrap` does the same first."""

from __future__ import annotations

from .facts import DOCKER
from .plan import Plan, boot_step
from .plans.bootstrap import QUERIES, plan_docker
from .wiring import host_task


@host_task
def bootstrap(host):
    """Install the Docker engine from the distribution's packages, if missing.

    Debian/Ubuntu: docker.io; Fedora: moby-engine. It is enabled at boot and checked
    with `docker info`; a host that has it already is left alone. `deploy --bootstrap`
    does this first.
    """
    facts = host.read_facts(QUERIES)
    plan = Plan()
    plan.add(plan_docker(facts, host.name), boot_step("docker.boot", DOCKER.query(), facts))
    host.carry_out(plan)
