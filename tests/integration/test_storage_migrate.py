"""storage.migrate: an index on its file store with 20 releases moves into S3 (Swift's
S3 API); every file downloads with the same sha256 and pip installs from it; the file
store stays until the operator removes it."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from . import web
from .conftest import SYSTEM_CA_BUNDLE, steps
from .engines import S3_SECRET, Stores

INDEX = "pypi-moving.test"
PROJECTS = [f"ppc-moving-{number}" for number in range(1, 6)]
VERSIONS = ["1.0.0", "1.1.0", "2.0.0", "2.1.0"]  # x 5 projects = 20 releases, 40 files


@pytest.fixture(scope="module")
def index_home(tmp_path_factory) -> Path:
    """This module's index keeps its state (CA, secrets) in state/ here, apart from every
    other module's: a host of another index may get an address this one named."""
    return tmp_path_factory.mktemp("index-home")


@pytest.fixture(scope="module")
def host(start_host):
    return start_host("moving")


def file_settings(host, index_home) -> dict:
    return {"server_names": [INDEX, host.address], "users": ["dev"],
            "build_ca_bundle": SYSTEM_CA_BUNDLE, "state_dir": str(index_home / "state")}


def s3_settings(engines: Stores, host, index_home) -> dict:
    return {**file_settings(host, index_home), "storage": "s3", "s3_bucket": engines.bucket,
            "s3_endpoint_url": engines.s3_endpoint_url, "s3_addressing_style": "path",
            "s3_access_key_id": "test:tester"}


def secrets(index_home) -> tuple[str, str]:
    """The CA's path and dev's password, as the deploy left them here."""
    folder = index_home / "state" / INDEX
    return str(folder / "ca.crt"), json.loads((folder / "secrets.json").read_text())["passwords"]["dev"]


def files_of(host, ca: str, password: str, project: str) -> dict[str, str]:
    return web.files_of(host.address, project, ca=ca, name=INDEX, auth=("dev", password))


@pytest.fixture(scope="module")
def file_store_index(fab, host, index_home, make_dists):
    """The index as it starts: its own file store and sqlite, 20 releases uploaded.
    {project: {file name: sha256}} of the files this test built and uploaded."""
    result = fab("deploy", host=host, settings=file_settings(host, index_home))
    assert result.returncode == 0, result.stdout + result.stderr
    ca, password = secrets(index_home)
    built = {name: {} for name in PROJECTS}
    for name in PROJECTS:
        for version in VERSIONS:
            for path in make_dists(name, version):
                built[name][path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
                body, headers = web.upload_form({":action": "file_upload", "name": name,
                                                 "version": version}, path.name, path.read_bytes())
                response = web.request(host.address, "/simple/", ca=ca, sni=INDEX, host=INDEX,
                                       method="POST", body=body, headers=headers,
                                       auth=("dev", password))
                assert response.status == 200, (path.name, response)
    assert sum(map(len, built.values())) == 40
    return built


def test_a_deploy_never_leaves_the_packages_behind(file_store_index, fab, engines, host,
                                                   index_home):
    running = host.out("docker inspect --format '{{.Id}}' pypicloud")
    refused = fab("deploy", host=host, settings=s3_settings(engines, host, index_home),
                  env={"PPC_S3_SECRET_ACCESS_KEY": S3_SECRET})
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [(
        f"Error on 127.0.0.1:{host.port}: the index on 127.0.0.1:{host.port} keeps its packages "
        f"in its file store: fab -H 127.0.0.1:{host.port} storage.migrate moves them into S3 "
        f"(bucket {engines.bucket}) and switches the server to it")], refused.stderr
    assert host.out("docker inspect --format '{{.Id}}' pypicloud") == running


def test_every_release_moves_into_s3_byte_for_byte(file_store_index, fab, engines, host,
                                                   start_host, index_home):
    settings = s3_settings(engines, host, index_home)
    preview = fab("--dry", "storage.migrate", host=host, settings=settings,
                  env={"PPC_S3_SECRET_ACCESS_KEY": S3_SECRET})
    assert preview.returncode == 0, preview.stdout + preview.stderr
    assert re.search(r"storage\.migrate +would change", preview.stdout), preview.stdout
    assert engines.bucket_listing() == []

    moved = fab("storage.migrate", host=host, settings=settings,
                env={"PPC_S3_SECRET_ACCESS_KEY": S3_SECRET})
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert steps(moved.stdout)["storage.migrate"] == "changed"
    assert steps(moved.stdout)["server.container"] == "changed"
    assert S3_SECRET not in moved.stdout + moved.stderr

    # Every file is in the bucket.
    objects = engines.bucket_listing()
    expected = {name for files in file_store_index.values() for name in files}
    assert len(expected) == 40 and {name.rsplit("/", 1)[-1] for name in objects} == expected
    ca, password = secrets(index_home)

    # The file store stays until the operator removes it.
    kept = host.out("docker run --rm -v pypicloud-data:/data debian:bookworm-slim "
                    "find /data/packages -type f ! -name '*.meta'")
    assert len(kept.split()) == len(expected)

    # With that copy out of the way, every file still downloads, as it was built: from
    # the bucket (a download is a redirect to the store), never from the disk.
    host.exec("docker run --rm -v pypicloud-data:/data debian:bookworm-slim "
              "mv /data/packages /data/packages.aside")
    try:
        first = next(iter(file_store_index[PROJECTS[0]]))
        download = web.request(host.address, f"/api/package/{PROJECTS[0]}/{first}", ca=ca,
                               sni=INDEX, host=INDEX, auth=("dev", password))
        assert download.status in (302, 303) and download.headers["location"].startswith(
            settings["s3_endpoint_url"] + f"/{engines.bucket}/"), download
        for name in PROJECTS:
            assert files_of(host, ca, password, name) == file_store_index[name]
    finally:
        host.exec("docker run --rm -v pypicloud-data:/data debian:bookworm-slim "
                  "mv /data/packages.aside /data/packages")

    # pip installs from it, certificate verification on.
    client = start_host("moving-client", kind="client", add_hosts={INDEX: host.address})
    client.exec("cat > /tmp/moving-ca.crt", input=Path(ca).read_bytes())
    install = client.exec(
        "python3 -m venv /tmp/moving && /tmp/moving/bin/pip install --no-cache-dir --cert "
        f"/tmp/moving-ca.crt --index-url \"https://dev:$PW@{INDEX}/simple/\" "
        + " ".join(f"{name}==2.1.0" for name in PROJECTS), check=False, env={"PW": password})
    assert install.returncode == 0, install.stdout + install.stderr

    # A second run changes nothing.
    again = fab("storage.migrate", host=host, settings=settings)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "done: 0 changed," in again.stdout, again.stdout
    assert fab("deploy", host=host, settings=settings).stdout.count("done: 0 changed,") == 1
