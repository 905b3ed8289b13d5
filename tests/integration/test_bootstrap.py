"""host.bootstrap and deploy --bootstrap on a bare Debian host that boots systemd and has
no Docker: the engine comes from Debian's packages, starts at boot, and the index deploys."""

from __future__ import annotations

from pathlib import Path

import pytest

from . import harness, web
from .conftest import SYSTEM_CA_BUNDLE, steps


@pytest.fixture(scope="module")
def index_home(tmp_path_factory) -> Path:
    """This module's index keeps its state (CA, secrets) in state/ here, apart from every
    other module's: a host of another index may get an address this one named."""
    return tmp_path_factory.mktemp("index-home")


def settings(index_home) -> dict:
    return {"server_names": ["pypi-bare.test"], "users": ["dev"],
            "build_ca_bundle": SYSTEM_CA_BUNDLE, "state_dir": str(index_home / "state")}


def test_a_bare_host_gets_docker_from_its_packages_then_the_index(fab, start_host, index_home,
                                                                  host_images):
    host = start_host("bare", kind="nodocker")
    refused = fab("deploy", host=host, settings=settings(index_home))
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"Error on 127.0.0.1:{host.port}: Docker is not installed on 127.0.0.1:{host.port}: "
        f"fab -H 127.0.0.1:{host.port} host.bootstrap installs it (or deploy --bootstrap)")

    preview = fab("--dry", "deploy", "--bootstrap", host=host, settings=settings(index_home))
    assert preview.returncode == 0, preview.stdout + preview.stderr
    assert "host.docker        would change  install the Docker engine (debian packages)" \
        in preview.stdout
    assert host.exec("command -v docker", check=False).returncode != 0  # --dry changed nothing

    bootstrapped = fab("host.bootstrap", host=host, settings=settings(index_home))
    assert bootstrapped.returncode == 0, bootstrapped.stdout + bootstrapped.stderr
    assert steps(bootstrapped.stdout) == {"host.docker": "changed", "docker.boot": "changed"}
    assert host.out("dpkg-query -W -f '${Status}' docker.io") == "install ok installed"
    assert host.out("systemctl is-enabled docker") == "enabled"
    again = fab("host.bootstrap", host=host, settings=settings(index_home))
    assert "done: 0 changed," in again.stdout, again.stdout

    # No registry here: the base image comes from the test machine, as for every host
    # (with the server's images, built once in the run).
    harness.load_archive(host, host_images["server"])
    deployed = fab("deploy", "--bootstrap", host=host, settings=settings(index_home))
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert "host.docker" not in deployed.stdout  # running: nothing to bootstrap
    ca = index_home / "state" / "pypi-bare.test" / "ca.crt"
    answer = web.request(host.address, "/simple/", ca=ca, sni="pypi-bare.test",
                         host="pypi-bare.test")
    assert answer.status == 401  # the index answers over verified TLS, and wants a login
