"""The restore drill: an index with 30 releases is backed up while uploads go on, a
fresh host is deployed and restored from the archive, and every release comes back
byte for byte. A damaged archive is refused and changes nothing."""

from __future__ import annotations

import json
import os
import re
import tarfile
import threading
from pathlib import Path

import pytest

from . import web
from .conftest import SERVER_NAME, SYSTEM_CA_BUNDLE, password_of

PROJECTS = [f"ppc-drill-{number}" for number in range(1, 6)]
VERSIONS = ["1.0.0", "1.1.0", "2.0.0"]  # x 5 projects x (sdist + wheel) = 30 releases


def upload(host, ca, password: str, name: str, version: str, files) -> None:
    for path in files:
        body, headers = web.upload_form({":action": "file_upload", "name": name,
                                         "version": version}, path.name, path.read_bytes())
        response = web.request(host.address, "/simple/", ca=ca, sni=SERVER_NAME, host=SERVER_NAME,
                               method="POST", body=body, headers=headers, auth=("dev", password))
        assert response.status == 200, (path.name, response)


def files_of(host, ca, password: str, project: str, name: str = SERVER_NAME) -> dict[str, str]:
    return web.files_of(host.address, project, ca=ca, name=name, auth=("dev", password))


@pytest.fixture(scope="module")
def drill(deployed, fab, operator_home, make_dists, tmp_path_factory):
    """Host A (the shared server) with 30 releases, and a backup taken while uploads run."""
    server = deployed.host
    ca = operator_home / "state" / SERVER_NAME / "ca.crt"
    password = password_of(operator_home, "dev")
    for name in PROJECTS:
        for version in VERSIONS:
            upload(server, ca, password, name, version, make_dists(name, version))

    late = [("ppc-drill-late", f"0.{number}") for number in range(1, 16)]
    late_files = {release: make_dists(*release) for release in late}
    uploading = threading.Thread(target=lambda: [upload(server, ca, password, name, version,
                                                        late_files[(name, version)])
                                                 for name, version in late])
    uploading.start()
    result = fab("backup", "--keep=3", host=server, settings=deployed.settings())
    uploading.join()
    assert result.returncode == 0, result.stdout + result.stderr
    archive = re.search(r"backup\.archive\s+changed\s+(\S+\.tar\.gz):", result.stdout).group(1)
    return {"archive": archive, "ca": ca, "password": password, "result": result,
            "expected": {name: files_of(server, ca, password, name) for name in PROJECTS}}


def test_the_archive_is_private_consistent_and_verifies(drill, fab, deployed):
    archive = drill["archive"]
    assert oct(os.stat(archive).st_mode & 0o777) == "0o600"
    verified = fab("backup.verify", archive, settings=deployed.settings())
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith(f"verified {archive}: ")
    with tarfile.open(archive) as contents:
        names = contents.getnames()
    assert "db.sqlite" in names and "manifest.json" in names
    assert not any(name.rsplit("/", 1)[-1].startswith(".") for name in names)
    assert not any("secrets" in name or name.endswith(".key") for name in names)


@pytest.fixture(scope="module")
def restored(drill, fab, start_host, tmp_path_factory):
    """A fresh host B, deployed as its own index, restored from A's archive."""
    host_b = start_host("restore-b")
    settings = {"server_names": ["restore-b.test", host_b.address], "users": ["dev"],
                "build_ca_bundle": SYSTEM_CA_BUNDLE,
                "state_dir": str(tmp_path_factory.mktemp("restore-b-state"))}
    deployed_b = fab("deploy", host=host_b, settings=settings)
    assert deployed_b.returncode == 0, deployed_b.stdout + deployed_b.stderr
    return host_b, settings


def test_a_damaged_archive_is_refused_and_changes_nothing(drill, restored, fab, tmp_path):
    host_b, settings = restored
    data = bytearray(Path(drill["archive"]).read_bytes())
    flipped, truncated = tmp_path / "flipped.tar.gz", tmp_path / "truncated.tar.gz"
    flipped.write_bytes(data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 0xFF])
                        + data[len(data) // 2 + 1:])
    truncated.write_bytes(data[:len(data) * 2 // 3])
    before = host_b.out("docker inspect --format '{{.State.StartedAt}}' pypicloud; "
                        "ls -R /var/lib/docker/volumes/pypicloud-data/_data | sha256sum")
    for broken in (flipped, truncated):
        result = fab("restore", str(broken), host=host_b, settings=settings)
        assert result.returncode == 1
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
        assert "use another backup" in result.stderr
    assert host_b.out("docker inspect --format '{{.State.StartedAt}}' pypicloud; "
                      "ls -R /var/lib/docker/volumes/pypicloud-data/_data | sha256sum") == before


def test_every_release_comes_back_byte_for_byte_on_a_fresh_host(drill, restored, fab, client):
    host_b, settings = restored
    result = fab("restore", drill["archive"], host=host_b, settings=settings)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "restore.data       changed" in result.stdout

    state = settings["state_dir"]
    ca_b = f"{state}/restore-b.test/ca.crt"
    password_b = json.loads(Path(f"{state}/restore-b.test/secrets.json").read_text())["passwords"]["dev"]
    for name in PROJECTS:
        assert files_of(host_b, ca_b, password_b, name, "restore-b.test") == drill["expected"][name]

    # A real client installs from B: pip verifies the sha256 B's pages give.
    client.exec(f"echo '{host_b.address} restore-b.test' >> /etc/hosts")
    client.exec("cat > /tmp/restore-b-ca.crt", input=Path(ca_b).read_bytes())
    install = client.exec(
        "python3 -m venv /tmp/drill && /tmp/drill/bin/pip install --no-cache-dir --cert "
        "/tmp/restore-b-ca.crt --index-url \"https://dev:$PW@restore-b.test/simple/\" "
        + " ".join(f"{name}==2.0.0" for name in PROJECTS), check=False, env={"PW": password_b})
    assert install.returncode == 0, install.stdout + install.stderr

    again = fab("deploy", host=host_b, settings=settings)
    assert "done: 0 changed," in again.stdout, again.stdout

    # B now holds packages: replacing them takes the index's name, typed on purpose.
    unconfirmed = fab("restore", drill["archive"], host=host_b, settings=settings)
    assert unconfirmed.returncode == 1
    assert re.fullmatch(r"Error on \S+: the index on \S+ holds [67] projects: a restore "
                        r"replaces all it holds; confirm with --confirm=restore-b\.test\n",
                        unconfirmed.stderr), unconfirmed.stderr
    confirmed = fab("restore", drill["archive"], "--confirm=restore-b.test", host=host_b,
                    settings=settings)
    assert confirmed.returncode == 0, confirmed.stdout + confirmed.stderr
    assert files_of(host_b, ca_b, password_b, PROJECTS[0], "restore-b.test") \
        == drill["expected"][PROJECTS[0]]

