"""A deploy never takes a working index down, and always converges: after a hand edit, a
lost container, a deleted file, a killed run, a dropped connection, a stopped dockerd, a
reboot, and from an index deployed by the previous release.

One host for the whole module, first deployed by the release before named volumes.
"""

from __future__ import annotations

import json
import signal
import time

import pytest

from . import harness, web
from .conftest import SYSTEM_CA_BUNDLE, steps

NAME = "resilience.test"
# The last release with packages in the data container's unnamed volume.
PREVIOUS_RELEASE = "ab37f27"
RELEASE_FILE = "ppc_resilient-1.0-py3-none-any.whl"
REBOOTED_WITHIN = 180  # seconds


def assert_one_line_error(result, *expected: str) -> None:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for text in expected:
        assert text in lines[0], lines[0]


class Index:
    """The resilience host, its settings, and requests to it over HTTPS."""

    def __init__(self, host: harness.TestHost, state_dir):
        self.host = host
        self.state_dir = state_dir

    def settings(self, **overrides) -> dict:
        return {"server_names": [NAME, self.host.address], "users": ["dev"],
                "build_ca_bundle": SYSTEM_CA_BUNDLE, "state_dir": str(self.state_dir), **overrides}

    def password(self, user: str) -> str:
        return json.loads((self.state_dir / NAME / "secrets.json").read_text())["passwords"][user]

    def get(self, path: str, user: str | None = "dev") -> web.Response:
        auth = (user, self.password(user)) if user else None
        return web.request(self.host.address, path, ca=self.state_dir / NAME / "ca.crt",
                           sni=NAME, host=NAME, auth=auth)

    def release(self) -> bytes:
        response = self.get(f"/api/package/ppc-resilient/{RELEASE_FILE}")
        assert response.status == 200, response
        return response.body

    def started_at(self) -> str:
        return self.host.out("docker inspect --format '{{.State.StartedAt}}' pypicloud")


@pytest.fixture(scope="module")
def index(start_host, tmp_path_factory) -> Index:
    return Index(start_host("resilience", images="base"),
                 tmp_path_factory.mktemp("resilience-state"))


@pytest.fixture(scope="module")
def legacy(index, fab, host_images, make_dists, tmp_path_factory) -> bytes:
    """The index as the previous release deployed it, with one release uploaded (and
    this release's images on the host, built once in the run, for what comes next)."""
    with harness.previous_release(index.host, PREVIOUS_RELEASE,
                                  tmp_path_factory.mktemp("previous")) as tree:
        result = fab("deploy", host=index.host, cwd=tree, settings=index.settings())
        assert result.returncode == 0, result.stdout + result.stderr
    harness.load_archive(index.host, host_images["server"])
    assert index.host.out("docker volume ls -q --filter name=^pypicloud-data$") == ""
    content = make_dists("ppc-resilient", "1.0")[1].read_bytes()  # the wheel
    body, headers = web.upload_form({":action": "file_upload", "name": "ppc-resilient",
                                     "version": "1.0"}, RELEASE_FILE, content)
    uploaded = web.request(index.host.address, "/simple/", ca=index.state_dir / NAME / "ca.crt",
                           sni=NAME, host=NAME, method="POST", body=body, headers=headers,
                           auth=("admin", index.password("admin")))
    assert uploaded.status == 200, uploaded
    return content


def test_an_index_of_the_previous_release_moves_to_a_named_volume_with_every_package(
        index, legacy, fab):
    result = fab("deploy", host=index.host, settings=index.settings())

    assert result.returncode == 0, result.stdout + result.stderr
    changed = steps(result.stdout)
    assert changed["data.container"] == "changed" and changed["server.container"] == "changed"
    assert "moved the index from pypi_data's unnamed volume into pypicloud-data" in result.stdout
    assert index.release() == legacy
    kept = index.host.out("docker ps -a --format '{{.Names}}' --filter name=pypi_data-before-")
    assert kept.startswith("pypi_data-before-")  # the old container and its volume stay

    again = fab("deploy", host=index.host, settings=index.settings())
    assert again.returncode == 0 and "done: 0 changed," in again.stdout, again.stdout


def test_a_data_container_removed_by_hand_comes_back_on_the_same_volume(index, legacy, fab):
    index.host.exec("docker rm -f pypi_data")

    result = fab("deploy", host=index.host, settings=index.settings())

    assert result.returncode == 0, result.stdout + result.stderr
    assert "(the data container was missing)" in result.stdout
    assert steps(result.stdout)["server.container"] == "unchanged"
    assert index.release() == legacy


def test_an_index_left_in_an_unattached_volume_is_reattached(index, legacy, fab):
    host = index.host
    host.exec("docker volume create orphan >/dev/null && docker run --rm --user 0 "
              "-v pypicloud-data:/from -v orphan:/to debian:bookworm-slim cp -a /from/. /to/ "
              "&& docker rm -f pypicloud pypi_data && docker volume rm pypicloud-data")

    result = fab("deploy", host=host, settings=index.settings())

    assert result.returncode == 0, result.stdout + result.stderr
    assert "reattached the index left in the volume orphan" in result.stdout
    assert index.release() == legacy


def test_a_port_that_is_taken_is_refused_before_the_server_is_touched(index, legacy, fab):
    host = index.host
    host.exec("nohup python3 -m http.server 3032 --bind 127.0.0.1 >/dev/null 2>&1 &")
    harness.wait_for(lambda: host.exec("grep -q ':0BD8 00000000:0000 0A' /proc/net/tcp",
                                       check=False).returncode == 0, "a listener on 3032")
    started = index.started_at()
    try:
        result = fab("deploy", host=host, settings=index.settings(port=3032))
    finally:  # a replacement needs 3032 too: later tests must find it free
        host.exec("pkill -f '[h]ttp.server 3032'")

    assert_one_line_error(result, "port 3032 is already in use")
    assert index.started_at() == started
    assert index.release() == legacy


def test_a_replacement_that_does_not_start_leaves_the_previous_one_serving(index, legacy, fab):
    host = index.host
    config = host.out("sha256sum /etc/pypicloud/config.ini")
    # A new config and an image that cannot serve: the container stops at once.
    broken = index.settings(fallback="none", server_image="debian:bookworm-slim")

    result = fab("deploy", "--skip-build", host=host, settings=broken)

    assert_one_line_error(result, "the new server container stopped; its last log lines:",
                          "the running one kept serving")
    assert host.out("sha256sum /etc/pypicloud/config.ini") == config
    assert host.out("docker ps -a --format '{{.Names}}' --filter name=pypicloud") == "pypicloud"
    assert index.release() == legacy
    again = fab("deploy", host=host, settings=index.settings())
    assert "done: 0 changed," in again.stdout, again.stdout


def test_a_deleted_config_is_written_again_and_the_server_restarted(index, legacy, fab):
    host = index.host
    host.exec("rm /etc/pypicloud/config.ini && docker restart pypicloud")

    result = fab("deploy", host=host, settings=index.settings())

    assert result.returncode == 0, result.stdout + result.stderr
    assert steps(result.stdout)["server.config"] == "changed"
    assert "recreated pypicloud (config.ini changed)" in result.stdout
    assert index.release() == legacy


def test_a_folder_docker_made_in_place_of_the_config_is_repaired(index, legacy, fab):
    """What a file mount (the previous release's) leaves after its source went missing."""
    host = index.host
    host.exec("rm /etc/pypicloud/config.ini && mkdir /etc/pypicloud/config.ini")

    result = fab("deploy", host=host, settings=index.settings())

    assert result.returncode == 0, result.stdout + result.stderr
    assert host.out("stat -c %F /etc/pypicloud/config.ini") == "regular file"
    assert index.release() == legacy


def test_the_server_follows_config_ini_never_a_hand_edit_it_read_earlier(index, legacy, fab):
    host = index.host
    host.exec("sed -i '/^user.dev = /d' /etc/pypicloud/config.ini && docker restart pypicloud")
    harness.wait_for(lambda: index.get("/health", user=None).status == 200, "the restart", 60)
    assert index.get("/simple/").status == 401  # the hand edit is served

    result = fab("deploy", host=host, settings=index.settings())

    assert result.returncode == 0, result.stdout + result.stderr
    assert steps(result.stdout)["server.config"] == "changed"
    assert "recreated pypicloud (config.ini changed)" in result.stdout
    assert index.get("/simple/").status == 200


def test_an_interrupted_replacement_is_put_back_first(index, legacy, fab):
    host = index.host
    host.exec("docker rename pypicloud pypicloud-previous && docker stop pypicloud-previous "
              "&& cp -p /etc/pypicloud/config.ini /etc/pypicloud/config.ini.ppc-previous")

    result = fab("deploy", host=host, settings=index.settings())

    assert result.returncode == 0, result.stdout + result.stderr
    assert "put back pypicloud, which an interrupted deploy was replacing" in result.stdout
    assert host.out("docker ps -a --format '{{.Names}}' --filter name=pypicloud") == "pypicloud"
    assert index.release() == legacy


def test_nginx_not_reloaded_by_a_stopped_run_is_reloaded_by_the_next(index, legacy, fab):
    """What a run stopped between writing the certificate (or site) and reloading nginx
    leaves: files nginx has not read. The next deploy reloads it, and then nothing."""
    host = index.host
    host.exec("sed -i 's/^[0-9a-f]*  \\(.*\\.crt\\)$/0000  \\1/' /var/lib/ppc-tasks/nginx-loaded")
    assert "0000  /etc/ssl/ppc-tasks/" in host.out("cat /var/lib/ppc-tasks/nginx-loaded")
    workers = host.out("pgrep -f '[n]ginx: worker'")

    result = fab("deploy", host=host, settings=index.settings())

    assert result.returncode == 0, result.stdout + result.stderr
    assert "reloaded nginx (it has not loaded the site or certificate as they are)" in result.stdout
    assert host.out("pgrep -f '[n]ginx: worker'") != workers
    assert "done: 0 changed," in fab("deploy", host=host, settings=index.settings()).stdout


def server_build_running(host) -> bool:
    """The server image's build (tens of seconds without cache) is under way."""
    # The brackets keep pgrep from matching the shell that runs it.
    return host.exec("pgrep -f '[d]ocker build .*ppc/pypicloud:'", check=False).returncode == 0


def test_a_killed_build_leaves_nothing_on_the_host(index, legacy, fab):
    host = index.host
    before = host.out("ls -A /tmp")
    running = fab("deploy", "--rebuild", host=host, settings=index.settings(), background=True)
    harness.wait_for(lambda: server_build_running(host), "the image build", 60)
    running.send_signal(signal.SIGKILL)
    running.communicate()

    assert host.out("ls -A /tmp") == before  # the build context never touched the disk
    again = fab("deploy", host=host, settings=index.settings())
    assert again.returncode == 0, again.stdout + again.stderr
    assert index.release() == legacy


def test_a_dropped_connection_is_reported_as_one(index, legacy, fab):
    host = index.host
    running = fab("deploy", "--rebuild", host=host, settings=index.settings(), background=True)
    harness.wait_for(lambda: server_build_running(host), "the image build", 60)
    host.exec("pkill -KILL -f '[s]shd: root'")  # the session, not the listener
    _, stderr = running.communicate(timeout=120)

    assert running.returncode == 1
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert "lost the SSH connection to" in stderr and "docker build" in stderr
    assert "failed" not in stderr


def test_a_stopped_dockerd_is_named_plainly(index, legacy, fab):
    host = index.host
    host.exec("systemctl stop docker.socket docker")
    try:
        result = fab("deploy", host=host, settings=index.settings())
        assert_one_line_error(result, f"dockerd is not running on 127.0.0.1:{host.port}")
    finally:
        host.exec("systemctl start docker")
    harness.wait_for(lambda: index.get("/health", user=None).status == 200, "pypicloud", 60)


def test_reordered_and_added_names_keep_the_index_identity(index, legacy, fab):
    ca = (index.state_dir / NAME / "ca.crt").read_bytes()
    names = [index.host.address, NAME]

    result = fab("deploy", host=index.host, settings=index.settings(server_names=names))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "index.identity" in result.stdout and f"{NAME} ({index.state_dir / NAME})" in result.stdout
    assert (index.state_dir / NAME / "ca.crt").read_bytes() == ca
    assert sorted(path.name for path in index.state_dir.iterdir()) == [NAME]
    assert index.get("/simple/").status == 200


def test_a_host_with_an_index_from_elsewhere_is_never_given_a_second_identity(
        index, legacy, fab, tmp_path):
    elsewhere = index.settings(state_dir=str(tmp_path / "other-machine"))
    config = index.host.out("stat -c %Y /etc/pypicloud/config.ini")

    refused = fab("deploy", host=index.host, settings=elsewhere)

    assert_one_line_error(refused, f"serves the index '{NAME}'", "--new-identity")
    assert index.host.out("stat -c %Y /etc/pypicloud/config.ini") == config
    assert not (tmp_path / "other-machine" / NAME / "ca.crt").exists()

    renamed = fab("deploy", host=index.host, settings=index.settings(server_names=["other.test"]))
    assert_one_line_error(renamed, "may not sign for other.test", "--new-identity")


def test_new_identity_is_explicit_and_sets_the_old_one_aside(index, legacy, fab):
    old_ca = (index.state_dir / NAME / "ca.crt").read_bytes()

    result = fab("deploy", "--new-identity", host=index.host, settings=index.settings())

    assert result.returncode == 0, result.stdout + result.stderr
    assert (index.state_dir / NAME / "ca.crt").read_bytes() != old_ca
    aside = [path for path in index.state_dir.iterdir() if ".replaced-" in path.name]
    assert len(aside) == 1 and (aside[0] / "ca.crt").read_bytes() == old_ca

    def serves_the_new_certificate() -> bool:  # nginx reloads its workers asynchronously
        try:
            return index.get("/health", user=None).status == 200
        except OSError:
            return False

    harness.wait_for(serves_the_new_certificate, "nginx to serve the new certificate", 15)
    assert index.release() == legacy  # the packages stay


def test_names_replaced_where_the_ca_may_sign_for_them_keep_the_index(index, legacy, fab):
    """A CA made without name constraints may sign for any name: replacing every name
    keeps the index (its folder, CA and passwords), and the host serves the new ones."""
    unconstrained = index.settings(ca_name_constraints=False)
    made = fab("deploy", "--new-identity", host=index.host, settings=unconstrained)
    assert made.returncode == 0, made.stdout + made.stderr
    ca = (index.state_dir / NAME / "ca.crt").read_bytes()

    renamed = fab("deploy", host=index.host, settings={
        **unconstrained, "server_names": ["renamed.test", index.host.address]})

    assert renamed.returncode == 0 and "Traceback" not in renamed.stderr, \
        renamed.stdout + renamed.stderr
    assert f"index.identity     changed    {NAME} ({index.state_dir / NAME})" in renamed.stdout
    assert (index.state_dir / NAME / "ca.crt").read_bytes() == ca
    record = json.loads((index.state_dir / NAME / "index.json").read_text())
    assert record == {"server_names": ["renamed.test", index.host.address]}
    served = web.request(index.host.address, "/simple/", ca=index.state_dir / NAME / "ca.crt",
                         sni="renamed.test", host="renamed.test", auth=("dev", index.password("dev")))
    assert served.status == 200, served
    back = fab("deploy", host=index.host, settings=unconstrained)  # the module's names again
    assert back.returncode == 0, back.stdout + back.stderr
    assert index.get("/simple/").status == 200


# Last in the module: a rebooted host container may come back with another address.
def test_the_index_comes_back_after_a_reboot_by_itself(index, legacy, fab, start_host):
    settled = fab("deploy", host=index.host, settings=index.settings())
    assert settled.returncode == 0, settled.stdout + settled.stderr
    client = start_host("resilience-client", kind="client")
    client.exec("cat > /tmp/ca.crt", input=(index.state_dir / NAME / "ca.crt").read_bytes())

    harness.reboot(index.host)
    client.exec(f"echo '{index.host.address} {NAME}' >> /etc/hosts")  # its address, after the reboot
    started = time.monotonic()

    attempts = []

    def downloads() -> bool:
        attempts.append(client.exec(
            "python3 -m pip download --no-deps --no-cache-dir -d /tmp/dl --cert /tmp/ca.crt "
            "--index-url \"https://dev:$PW@resilience.test/simple/\" ppc-resilient==1.0",
            check=False, env={"PW": index.password("dev")}))
        return attempts[-1].returncode == 0

    # Back by itself: 180 s is a busy machine's margin on the 8 s a reboot takes idle.
    try:
        harness.wait_for(downloads, "a pip download after the reboot", REBOOTED_WITHIN)
    except TimeoutError:
        pytest.fail(f"no download within {REBOOTED_WITHIN} s; the last attempt said: "
                    f"{attempts[-1].stdout.decode()[-800:]}{attempts[-1].stderr.decode()[-800:]}")
    assert time.monotonic() - started < REBOOTED_WITHIN
    assert client.exec(f"cat /tmp/dl/{RELEASE_FILE}").stdout == legacy
