"""`host.bootstrap`: the Docker engine on a bare Debian/Ubuntu (or Fedora) host, from
the distribution's own packages (never a script piped from curl), enabled at boot and
checked with `docker info`. `deploy --bootstrap` does the same first."""

from __future__ import annotations

from .errors import TaskError
from .facts import DOCKER, PLATFORM, UNIT, Facts
from .plan import Change, Command, Plan, Step, Unchanged, boot_step
from .wiring import host_task

QUERIES = [PLATFORM.query(), DOCKER.query(), UNIT.query("docker")]
ANSWERS = Command.of(DOCKER.query(), "info", "--format", "{{.ServerVersion}}",
                     failure="Docker is installed but dockerd does not answer")


def plan_docker(facts: Facts, host_name: str) -> Step:
    """host.docker: the engine installed (and so started) or started, then asked."""
    family = facts.platform.family
    if facts.docker == "running":
        docker: Step = Unchanged("host.docker", "the Docker engine is running")
    elif facts.docker == "stopped":
        start = (Command.of("systemctl", "start", "docker") if facts.platform.systemd
                 else Command.of("service", "docker", "start"))
        docker = Change("host.docker", done="started the Docker engine",
                        would="start the Docker engine", commands=[start, ANSWERS])
    elif family is None or family.install_docker is None:
        raise TaskError(f"ppc-tasks cannot install Docker on {host_name} "
                        f"({facts.platform.os}): install the engine by hand and run again")
    else:
        docker = Change("host.docker", done=f"installed the Docker engine ({family.name} "
                                            f"packages)",
                        would=f"install the Docker engine ({family.name} packages)",
                        commands=[Command.of(*family.install_docker,
                                             failure=f"installing Docker ({family.name} "
                                                     f"packages) failed"), ANSWERS])
    return docker


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
