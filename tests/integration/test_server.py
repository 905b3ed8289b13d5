"""`fab deploy` on a bare Docker-in-Docker host: images, data, server, proven with twine and pip.

This module's host is bare as a new server comes, so its first deploy builds the images
(the other server hosts of a run start with them loaded: see conftest.start_host)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from base64 import b64encode
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import (
    SERVER_NAME,
    Deployed,
    container_started_at,
    password_of,
    server_port,
    steps,
    tunnel,
)


def get(url: str, auth: tuple[str, str] | None = None) -> int:
    return fetch(url, auth)[0]


def fetch(url: str, auth: tuple[str, str] | None = None) -> tuple[int, bytes]:
    """(status, body) of a GET."""
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def pip_install_from(index_url: str, tmp_path, requirement: str) -> subprocess.CompletedProcess:
    """pip in a fresh venv, reading no config and no index but this one."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    environment.update(PIP_CONFIG_FILE=os.devnull, PIP_INDEX_URL=index_url,
                       PIP_DISABLE_PIP_VERSION_CHECK="1")
    return subprocess.run([str(venv / "bin" / "pip"), "install", "--no-cache-dir", requirement],
                          capture_output=True, text=True, env=environment)


@pytest.fixture(scope="module")
def deployed(fab, start_host, tmp_path_factory) -> Deployed:
    """An index of this module's own, deployed once with `fab deploy` on a bare host."""
    deployed = Deployed(start_host("built", images="base"), tmp_path_factory.mktemp("built"))
    deployed.result = fab("deploy", host=deployed.host, settings=deployed.settings())
    return deployed


@pytest.fixture(scope="module")
def server(deployed):
    return deployed.host


@pytest.fixture(scope="module")
def index_home(deployed) -> Path:
    """Where this module's index keeps its secrets (state/ in it)."""
    return deployed.operator_home


def test_deploy_builds_and_starts_everything(deployed, server, index_home):
    first_deploy = deployed.result
    assert first_deploy.returncode == 0, first_deploy.stderr
    assert {step: change for step, change in steps(first_deploy.stdout).items()
            if step.split(".")[0] in ("image", "data", "server")} == {
        "image.data": "changed", "image.server": "changed", "data.container": "changed",
        "server.config": "changed", "server.container": "changed",
        # A new index records each file as it is uploaded: nothing to read back.
        "server.records": "unchanged"}
    password = password_of(index_home)
    assert password not in first_deploy.stdout + first_deploy.stderr
    assert "secrets.json" in first_deploy.stdout
    # The server container, as the manual procedure ran it, hardened.
    inspect = json.loads(server.out("docker inspect pypicloud"))[0]
    assert inspect["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    # Only nginx on the host reaches it: 3031, or 3032 after a replacement.
    assert inspect["HostConfig"]["PortBindings"] in [
        {"3031/tcp": [{"HostIp": "127.0.0.1", "HostPort": port}]} for port in ("3031", "3032")]
    assert inspect["Config"]["User"] == "pypicloud"
    mounts = {m["Destination"]: m for m in inspect["Mounts"]}
    assert mounts["/etc/pypicloud"]["Source"] == "/etc/pypicloud" and not mounts["/etc/pypicloud"]["RW"]
    assert mounts["/var/lib/pypicloud"]["Name"] == "pypicloud-data"
    # The data container holds the same named volume (so no prune ever takes it).
    data = json.loads(server.out("docker inspect pypi_data"))[0]
    assert [m["Name"] for m in data["Mounts"]] == ["pypicloud-data"]
    assert server.out("stat -c '%a %u' /etc/pypicloud/config.ini") == "600 10001"
    state = index_home / "state" / SERVER_NAME
    assert oct((state / "secrets.json").stat().st_mode & 0o777) == "0o600"
    assert oct(state.stat().st_mode & 0o777) == "0o700"


@dataclass
class Uploaded:
    password: str  # the admin's
    dists: list[Path]  # the sdist and the wheel, as built here

    def served_as_built(self, server, ssh_key) -> bool:
        """Every file the index serves is the very file twine uploaded."""
        with tunnel(server, ssh_key, server_port(server)) as port:
            return all(fetch(f"http://127.0.0.1:{port}/api/package/ppc-sample/{dist.name}",
                             auth=("admin", self.password)) == (200, dist.read_bytes())
                       for dist in self.dists)


@pytest.fixture(scope="module")
def uploaded(server, index_home, ssh_key, make_dists) -> Uploaded:
    """twine uploads the sample sdist and wheel."""
    password = password_of(index_home)
    dists = make_dists("ppc-sample")
    with tunnel(server, ssh_key, server_port(server)) as port:
        upload = subprocess.run(
            [sys.executable, "-m", "twine", "upload", "--non-interactive", "--disable-progress-bar",
             "--repository-url", f"http://127.0.0.1:{port}/simple/", *map(str, dists)],
            capture_output=True, text=True,
            env={**os.environ, "TWINE_USERNAME": "admin", "TWINE_PASSWORD": password})
    assert upload.returncode == 0, upload.stdout + upload.stderr
    return Uploaded(password, dists)


def test_twine_upload_and_pip_install(uploaded, server, ssh_key, tmp_path):
    with tunnel(server, ssh_key, server_port(server)) as port:
        package_url = f"http://127.0.0.1:{port}/simple/ppc-sample/"
        assert get(package_url) == 401
        assert get(package_url, auth=("admin", "wrong")) in (401, 403)
        assert get(package_url, auth=("admin", uploaded.password)) == 200

        install = pip_install_from(f"http://admin:{uploaded.password}@127.0.0.1:{port}/simple/",
                                   tmp_path, "ppc-sample==0.1.0")
        assert install.returncode == 0, install.stdout + install.stderr
        assert "Successfully installed ppc-sample-0.1.0" in install.stdout


def test_second_deploy_changes_nothing(deployed, fab, server, index_home):
    started = container_started_at(server)
    config_mtime = server.out("stat -c %Y /etc/pypicloud/config.ini")
    image = server.out("docker image inspect --format '{{.Id}}' ppc/pypicloud:1.3.12")

    again = fab("deploy", host=server, settings=deployed.settings())

    assert again.returncode == 0, again.stderr
    assert set(steps(again.stdout).values()) == {"unchanged"}, again.stdout
    assert "done: 0 changed," in again.stdout
    assert container_started_at(server) == started
    assert server.out("stat -c %Y /etc/pypicloud/config.ini") == config_mtime
    assert server.out("docker image inspect --format '{{.Id}}' ppc/pypicloud:1.3.12") == image


def test_changed_setting_recreates_only_the_server_and_keeps_packages(
        deployed, uploaded, fab, server, index_home, ssh_key):
    started = container_started_at(server)

    changed = fab("deploy", host=server, settings=deployed.settings(fallback="none"))

    assert changed.returncode == 0, changed.stderr
    # A replacement beside the old one, nginx switched to it, the old one removed.
    assert [step for step, change in steps(changed.stdout).items() if change == "changed"] == [
        "server.config", "server.container", "nginx.site", "nginx.service", "server.retire",
        "server.records"]
    assert container_started_at(server) != started
    assert password_of(index_home) == uploaded.password  # kept, not regenerated
    with tunnel(server, ssh_key, server_port(server)) as port:
        assert get(f"http://127.0.0.1:{port}/simple/ppc-sample/",
                   auth=("admin", uploaded.password)) == 200
    assert uploaded.served_as_built(server, ssh_key)


def test_packages_survive_removing_the_server_container(deployed, uploaded, fab, server,
                                                         ssh_key):
    removed = fab("server.remove", host=server, settings=deployed.settings())
    assert removed.returncode == 0, removed.stderr
    assert server.out("docker ps -aq --filter name=^pypicloud$") == ""

    redeployed = fab("deploy", host=server, settings=deployed.settings())

    assert redeployed.returncode == 0, redeployed.stderr
    assert steps(redeployed.stdout)["server.container"] == "changed"
    with tunnel(server, ssh_key, server_port(server)) as port:
        assert get(f"http://127.0.0.1:{port}/simple/ppc-sample/",
                   auth=("admin", uploaded.password)) == 200
    assert uploaded.served_as_built(server, ssh_key)


def test_data_destroy_needs_confirmation(deployed, fab, server, index_home):
    refused = fab("data.destroy", host=server, settings=deployed.settings())
    assert refused.returncode != 0
    assert "--confirm=pypicloud-data" in refused.stderr
    assert server.out("docker ps -aq --filter name=^pypi_data$") != ""
    assert server.out("docker volume ls -q --filter name=^pypicloud-data$") == "pypicloud-data"
