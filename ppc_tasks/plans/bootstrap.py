"""What `bootstrap` decides, from the settings and a host's facts alone: the facts it
asks for, its steps and what they render (its tasks: ppc_tasks/bootstrap.py)."""

from __future__ import annotations

from ..errors import TaskError
from ..facts import DOCKER, PLATFORM, UNIT, Facts
from ..plan import Change, Command, Step, Unchanged

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
