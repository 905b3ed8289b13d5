"""host.bootstrap: the Docker engine from the distribution's packages, decided from facts."""

from __future__ import annotations

import pytest

from ppc_tasks.errors import TaskError
from ppc_tasks.facts import Facts
from ppc_tasks.plan import Change
from ppc_tasks.plans.bootstrap import plan_docker
from ppc_tasks.system import parse_platform

APT = ("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
       "-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold docker.io")


def facts(os_words: str, docker: str, systemd: bool = True) -> Facts:
    return Facts(platform=parse_platform(f"os={os_words}\nsystemd={int(systemd)}"), docker=docker)


@pytest.mark.parametrize(("os_words", "install"), [
    ("debian", APT),
    ("ubuntu debian", APT),
    ("fedora", ("if command -v dnf >/dev/null; then dnf install -y moby-engine; "
                "else yum install -y moby-engine; fi")),
])
def test_a_host_without_docker_gets_the_distributions_engine(os_words, install):
    step = plan_docker(facts(os_words, "missing"), "pypi1")
    assert isinstance(step, Change)
    assert [command.argv for command in step.commands] == [
        ("sh", "-c", install), ("docker", "info", "--format", "{{.ServerVersion}}")]
    assert not any("curl" in " ".join(command.argv) for command in step.commands)


def test_an_engine_that_is_there_is_started_or_left_alone():
    stopped = plan_docker(facts("debian", "stopped"), "pypi1")
    assert stopped.commands[0].argv == ("systemctl", "start", "docker")
    assert not isinstance(plan_docker(facts("debian", "running"), "pypi1"), Change)


def test_a_system_without_a_docker_package_is_named():
    with pytest.raises(TaskError, match=r"^ppc-tasks cannot install Docker on box \(arch\): "
                                        r"install the engine by hand"):
        plan_docker(facts("arch", "missing"), "box")
