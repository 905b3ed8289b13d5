"""The server image installs the lock file (docker/server/requirements.txt) with
pip --require-hashes: built from a wheelhouse made on this machine with no package index
reachable, it runs exactly the locked packages; a file that differs from the lock fails
the build loudly, and the running server stays."""

from __future__ import annotations

import re
import shutil

from . import web
from .conftest import NO_INDEX, REPO, SERVER_NAME, container_started_at, password_of

LOCK = REPO / "docker" / "server" / "requirements.txt"


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_a_host_without_a_package_index_builds_from_a_wheelhouse(deployed, fab, wheelhouse,
                                                                 operator_home):
    host = deployed.host
    offline = deployed.settings(build_wheelhouse=str(wheelhouse), build_index_url=NO_INDEX)

    result = fab("deploy", host=host, settings=offline)

    assert result.returncode == 0, result.stdout + result.stderr
    # Built now, or by an earlier test with these very settings: named by its content.
    built = re.search(r"image\.server\s+(?:changed\s+built|unchanged)\s+"
                      r"(ppc/pypicloud:1\.3\.12-[0-9a-f]{12})", result.stdout)
    assert built, result.stdout
    assert host.out("docker inspect --format '{{.Config.Image}}' pypicloud") == built[1]
    locked = {(normalized(name), version) for name, version in
              re.findall(r"^([A-Za-z0-9._-]+)==(\S+) \\$", LOCK.read_text(), re.M)}
    installed = {(normalized(name), version) for name, version in re.findall(
        r"^(\S+)==(\S+)$", host.out("docker exec pypicloud /opt/pypicloud/bin/pip freeze --all"),
        re.M)}
    assert locked <= installed and len(locked) > 30
    answer = web.request(host.address, "/simple/", ca=operator_home / "state" / SERVER_NAME /
                         "ca.crt", sni=SERVER_NAME, host=SERVER_NAME,
                         auth=("dev", password_of(operator_home, "dev")))
    assert answer.status == 200

    back = fab("deploy", host=host, settings=deployed.settings())
    assert back.returncode == 0, back.stdout + back.stderr
    assert re.search(r"image\.server\s+unchanged", back.stdout)  # kept, by its content tag


def test_a_file_that_differs_from_the_lock_fails_the_build_loudly(deployed, fab, wheelhouse,
                                                                  tmp_path):
    host = deployed.host
    tampered = shutil.copytree(wheelhouse, tmp_path / "tampered")
    wheel = next(tampered.glob("six-*.whl"))
    wheel.write_bytes(wheel.read_bytes() + b"\0")
    started = container_started_at(host)

    result = fab("deploy", host=host, settings=deployed.settings(
        build_wheelhouse=str(tampered), build_index_url=NO_INDEX))

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "building ppc/pypicloud:1.3.12 failed: ERROR: THESE PACKAGES DO NOT MATCH THE " \
           "HASHES" in lines[0], lines[0]
    assert "six==1.17.0 from file:///tmp/build/wheelhouse/" in lines[0]
    assert "Expected sha256" in lines[0] and "The command" not in lines[0], lines[0]
    assert container_started_at(host) == started


def test_a_long_build_shows_progress_and_verbose_streams_its_output(deployed, fab, wheelhouse):
    # Options no other test builds with: a build happens here, from the wheelhouse.
    unique = deployed.settings(build_wheelhouse=str(wheelhouse),
                               build_index_url="https://127.0.0.1:9/verbose/simple/")
    quiet = fab("--dry", "image.build", host=deployed.host, settings=unique)
    assert re.search(r"image\.server\s+would change", quiet.stdout), quiet.stdout

    built = fab("image.build", "--verbose", host=deployed.host, settings=unique)
    assert built.returncode == 0, built.stdout + built.stderr
    # The build's own output, as it came, then the step's line with the time it took.
    assert re.search(r"(Successfully built|naming to) ", built.stdout), built.stdout
    assert re.search(r"image\.server\s+changed\s+built \S+ in \d+\.\d s$", built.stdout,
                     re.MULTILINE), built.stdout

    again = fab("image.build", "--rebuild", host=deployed.host, settings=unique)
    assert again.returncode == 0, again.stdout + again.stderr
    # Without --verbose, a log says once that the slow step runs, and how long it took.
    assert "image.server       running   (a step that takes a while)" in again.stdout
    assert "Successfully built" not in again.stdout and "naming to" not in again.stdout
