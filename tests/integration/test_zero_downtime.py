"""Replacing the server fails no request: clients download in a loop while the server
container is replaced for a new config, for a new image, and while a broken image is
refused (the running server keeps serving, as it was)."""

from __future__ import annotations

import contextlib
import hashlib
import re
import signal
import threading
import time
from dataclasses import dataclass, field

import pytest

from . import harness, web
from .conftest import (
    SERVER_NAME,
    built_images,
    container_started_at,
    password_of,
    steps,
)

PROJECT, VERSION = "ppc-zero-downtime", "1.0"
CLIENTS = 3
# An index nothing answers at, which no other test builds with: an image of this module's.
OTHER_INDEX = "https://127.0.0.1:9/zero-downtime/simple/"


@dataclass
class Loop:
    """Authenticated downloads, in a loop on a few threads, each checked."""

    ok: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)


@pytest.fixture(scope="module")
def release(deployed, operator_home, make_dists) -> tuple[str, str]:
    """One wheel on the index: (its download path, its sha256)."""
    wheel = make_dists(PROJECT, VERSION)[1]
    body, headers = web.upload_form({":action": "file_upload", "name": PROJECT,
                                     "version": VERSION}, wheel.name, wheel.read_bytes())
    response = request(deployed, operator_home, "/simple/", method="POST", body=body,
                       headers=headers)
    assert response.status == 200, response
    return f"/api/package/{PROJECT}/{wheel.name}", hashlib.sha256(wheel.read_bytes()).hexdigest()


def request(deployed, operator_home, path: str, **options) -> web.Response:
    return web.request(deployed.host.address, path,
                       ca=operator_home / "state" / SERVER_NAME / "ca.crt", sni=SERVER_NAME,
                       host=SERVER_NAME, auth=("dev", password_of(operator_home, "dev")),
                       **options)


@contextlib.contextmanager
def downloading(deployed, operator_home, release):
    path, sha256 = release
    loop = Loop()

    def client() -> None:
        while not loop.stop.is_set():
            try:
                page = request(deployed, operator_home, f"/simple/{PROJECT}/")
                download = request(deployed, operator_home, path)
            except Exception as error:  # noqa: BLE001  every failure counts: a body cut
                # short mid-switch (IncompleteRead) is the very one a replacement could cause
                loop.failures.append(f"{type(error).__name__}: {error}")
                continue
            if page.status != 200 or download.status != 200:
                loop.failures.append(f"/simple/ {page.status}, download {download.status}")
            elif hashlib.sha256(download.body).hexdigest() != sha256:
                loop.failures.append("download with other bytes")
            else:
                loop.ok += 1

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        yield loop
    finally:
        loop.stop.set()
        for thread in threads:
            thread.join()


def replaced(result) -> bool:
    changed = {step for step, state in steps(result.stdout).items() if state == "changed"}
    return {"server.container", "nginx.site", "nginx.service", "server.retire"} <= changed


def test_a_config_change_fails_no_request(deployed, fab, operator_home, release):
    with downloading(deployed, operator_home, release) as loop:
        result = fab("deploy", host=deployed.host, settings=deployed.settings(fallback="none"))
        assert result.returncode == 0, result.stdout + result.stderr
        back = fab("deploy", host=deployed.host, settings=deployed.settings())
        assert back.returncode == 0, back.stdout + back.stderr
    assert replaced(result) and replaced(back), result.stdout + back.stdout
    assert loop.failures == [] and loop.ok > 20, (loop.ok, loop.failures[:5])
    names = deployed.host.out("docker ps -a --format '{{.Names}}' --filter name=pypicloud")
    assert names == "pypicloud"


def test_an_image_change_fails_no_request(deployed, fab, operator_home, release, wheelhouse):
    # Another image: built from a wheelhouse (other content, so another content tag); on
    # this machine, once in the run: this test is about replacing, not building.
    build = {"build_wheelhouse": str(wheelhouse), "build_index_url": OTHER_INDEX}
    harness.load_archive(deployed.host, built_images(**build))
    other_image = deployed.settings(**build)
    with downloading(deployed, operator_home, release) as loop:
        result = fab("deploy", host=deployed.host, settings=other_image)
        assert result.returncode == 0, result.stdout + result.stderr
        back = fab("deploy", host=deployed.host, settings=deployed.settings())
        assert back.returncode == 0, back.stdout + back.stderr
    assert "recreated pypicloud (its image" in result.stdout, result.stdout
    assert replaced(result) and replaced(back), result.stdout + back.stdout
    assert loop.failures == [] and loop.ok > 20, (loop.ok, loop.failures[:5])


def test_a_broken_image_is_refused_while_the_running_server_keeps_serving(
        deployed, fab, operator_home, release):
    host = deployed.host
    started = container_started_at(host)
    config = host.out("sha256sum /etc/pypicloud/config.ini")
    # An image that cannot serve (no pypicloud at all), with a new config as well.
    broken = deployed.settings(server_image="debian:bookworm-slim", fallback="none")
    with downloading(deployed, operator_home, release) as loop:
        result = fab("deploy", "--skip-build", host=host, settings=broken)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "the new server container stopped; its last log lines:" in lines[0]
    assert "the running one kept serving" in lines[0]
    assert loop.failures == [] and loop.ok > 5, (loop.ok, loop.failures[:5])
    assert container_started_at(host) == started
    assert host.out("sha256sum /etc/pypicloud/config.ini") == config
    assert host.out("docker ps -a --format '{{.Names}}' --filter name=pypicloud") == "pypicloud"
    assert "done: 0 changed," in fab("deploy", host=host, settings=deployed.settings()).stdout


@pytest.mark.parametrize("killed_when", ["the replacement starts", "nginx has switched"])
def test_a_deploy_killed_mid_replacement_is_put_right_without_failing_a_request(
        deployed, fab, operator_home, release, killed_when):
    host = deployed.host
    # A config change: the server is replaced.
    changed = deployed.settings(fallback="none" if killed_when == "the replacement starts"
                                else "cache")
    if killed_when == "the replacement starts":
        moment = "docker container inspect pypicloud-next"
    else:  # the site names the new container's port; the old container is still there
        moment = ("test \"$(docker port pypicloud-next 3031/tcp | cut -d: -f2)\" = "
                  "\"$(sed -n 's/^ *server 127.0.0.1:\\([0-9]*\\);/\\1/p' "
                  "/etc/nginx/conf.d/ppc-tasks.conf)\"")
        # What an nginx worker still finishing a long download looks like to retire.sh:
        # the run waits there, where it is killed.
        host.exec("nohup bash -c \"exec -a 'nginx: worker process is shutting down' sleep 600\" "
                  ">/dev/null 2>&1 &")
    with downloading(deployed, operator_home, release) as loop:
        run = fab("deploy", host=host, settings=changed, background=True)
        harness.wait_for(lambda: host.exec(moment, check=False).returncode == 0, killed_when, 120)
        run.send_signal(signal.SIGKILL)
        run.communicate()
        # The command the run was in outlives it on the host, and the next run waits for
        # it (the work lock). Here it is lost too, as in a crash: the next run finishes.
        host.exec("pkill -f 'retire pypicloud pypicloud-nex[t]'", check=False)
        host.exec("pkill -f '^nginx: worker process is shutting dow[n]'", check=False)
        again = fab("deploy", host=host, settings=changed)
    assert again.returncode == 0, again.stdout + again.stderr
    expected = ("removed pypicloud-next, which an interrupted deploy was starting"
                if killed_when == "the replacement starts" else
                "finished the switch to pypicloud-next, which an interrupted deploy had made")
    assert expected in again.stdout, again.stdout
    assert loop.failures == [] and loop.ok > 5, (loop.ok, loop.failures[:5])
    assert host.out("docker ps -a --format '{{.Names}}' --filter name=pypicloud") == "pypicloud"
    assert "done: 0 changed," in fab("deploy", host=host, settings=changed).stdout
    assert fab("deploy", host=host, settings=deployed.settings()).returncode == 0


def test_the_next_run_waits_for_a_command_a_killed_run_left_running(deployed, fab):
    host = deployed.host
    host.exec("nohup bash -c \"exec -a 'nginx: worker process is shutting down' sleep 600\" "
              ">/dev/null 2>&1 &")  # holds the replacement in retire.sh
    run = fab("deploy", host=host, settings=deployed.settings(fallback="none"), background=True)
    harness.wait_for(lambda: host.exec("pgrep -f 'retire pypicloud pypicloud-nex[t]'",
                                       check=False).returncode == 0, "retire", 120)
    run.send_signal(signal.SIGKILL)
    run.communicate()

    waiting = fab("deploy", host=host, settings=deployed.settings(fallback="none"),
                  background=True)
    # It holds the host's lock, and waits there for the killed run's retire.sh.
    harness.wait_for(lambda: host.exec("pgrep -f '[f]lock -w 300 .*ppc-tasks.lock.work'",
                                       check=False).returncode == 0, "the next run's wait", 120)
    assert waiting.poll() is None
    ended = time.monotonic()
    host.exec("pkill -f '^nginx: worker process is shutting dow[n]'")
    out, err = waiting.communicate(timeout=120)
    # It waited exactly as long as the left command ran: done seconds after it ended, not
    # at the end of its 5 minutes (300 s, then a refusal); 60 s is the margin of a busy
    # machine for what the run does after it.
    assert time.monotonic() - ended < 60

    assert waiting.returncode == 0, out + err
    assert "done: 0 changed," in out, out  # the left command finished the switch
    assert host.out("docker ps -a --format '{{.Names}}' --filter name=pypicloud") == "pypicloud"
    assert fab("deploy", host=host, settings=deployed.settings()).returncode == 0


def test_rollback_returns_to_the_retired_server_without_failing_a_request(
        deployed, fab, operator_home, release, wheelhouse):
    host = deployed.host
    # Another image (the one the image change above built), with today's rules changed
    # too: a rollback brings back the code, never the rules.
    build = {"build_wheelhouse": str(wheelhouse), "build_index_url": OTHER_INDEX}
    harness.load_archive(host, built_images(**build))
    earlier = host.out("docker inspect --format '{{.Config.Image}}' pypicloud")
    changed = deployed.settings(fallback="none", **build)
    assert fab("deploy", host=host, settings=changed).returncode == 0
    before = host.out("docker inspect --format '{{.Config.Image}}' pypicloud")
    assert before.startswith("ppc/pypicloud:1.3.12-") and before != earlier  # named by content
    status = fab("status", host=host, settings=changed)
    assert f"rollback     ok       runs {before}; rollback target: {earlier}" \
        in status.stdout, status.stdout

    with downloading(deployed, operator_home, release) as loop:
        rolled = fab("rollback", host=host, settings=changed)
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert loop.failures == [] and loop.ok > 5, (loop.ok, loop.failures[:5])
    assert "server.retire      changed" in rolled.stdout
    assert host.out("docker inspect --format '{{.Config.Image}}' pypicloud") == earlier
    assert "pypi.fallback = none" in host.out("cat /etc/pypicloud/config.ini")  # today's rule
    assert host.out("stat -c '%a %u' /etc/pypicloud/config.ini /etc/ppc-tasks/rollback/config.ini") \
        == "600 10001\n600 10001"
    # The earlier image with today's rules is what these settings make: nothing to change.
    assert "done: 0 changed," in fab("deploy", host=host,
                                     settings=deployed.settings(fallback="none")).stdout
    # And a second rollback goes forward again, under the rules of the day.
    forward = fab("rollback", host=host, settings=deployed.settings())
    assert forward.returncode == 0, forward.stdout + forward.stderr
    assert host.out("docker inspect --format '{{.Config.Image}}' pypicloud") == before
    assert "pypi.fallback = redirect" in host.out("cat /etc/pypicloud/config.ini")
    assert fab("deploy", host=host, settings=deployed.settings()).returncode == 0
    # Server images named by content are kept only while the server or the rollback needs
    # them (here: the standard one and the wheelhouse one; any other is deleted).
    tags = host.out("docker image ls --format '{{.Repository}}:{{.Tag}}' ppc/pypicloud").split()
    live = host.out("docker inspect --format '{{.Config.Image}}' pypicloud")
    target = host.out("cut -d'|' -f1 /etc/ppc-tasks/rollback/container")
    assert {tag for tag in tags if re.fullmatch(r".*-[0-9a-f]{12}", tag)} == {live, target}
