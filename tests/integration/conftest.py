"""Fixtures for the integration tests: real Docker-in-Docker hosts and the real `fab`.

Docker must work here: CI runs these tests and never skips them (tests/run starts
dockerd when it is not running). Host containers are shared by the tests of a session
where that is safe, and removed at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from fabric import Connection

from . import engines as shared_engines
from . import harness

REPO = Path(__file__).resolve().parents[2]
FAB = Path(sys.executable).parent / "fab"
# The machine's CA bundle: the way through this network's TLS-intercepting proxy,
# handed to image builds through the product's own build_ca_bundle setting.
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


@pytest.fixture(scope="session")
def docker_engine():
    result = subprocess.run(["docker", "info"], capture_output=True)
    if result.returncode != 0:
        pytest.fail("Docker does not answer: integration tests need it (run tests/run, "
                    "which installs and starts it)", pytrace=False)


@pytest.fixture(scope="session")
def test_images(docker_engine) -> dict[str, str]:
    return {name: harness.ensure_built_image(name) for name in ("host", "client")}


@pytest.fixture(scope="session")
def ssh_key(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("ssh")
    key = directory / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


@pytest.fixture(scope="session")
def operator_home(tmp_path_factory) -> Path:
    """HOME for every fab run: no user config or known_hosts of the real user leaks in."""
    return tmp_path_factory.mktemp("operator-home")


@dataclass
class Fab:
    """Runs the real `fab` command line, as an operator types it in the repo root."""

    key: Path
    home: Path
    config_dir: Path

    def __call__(self, *args: str, host: harness.TestHost | str | None = None,
                 settings: dict | None = None, key: Path | None = None,
                 env: dict | None = None, cwd: Path = REPO,
                 background: bool = False) -> subprocess.CompletedProcess | subprocess.Popen:
        argv = [str(FAB)]
        if settings is not None:
            config = self.config_dir / f"fab-{abs(hash(json.dumps(settings, sort_keys=True)))}.json"
            config.write_text(json.dumps({"ppc": settings}))
            argv += ["-f", str(config)]
        argv += ["-i", str(key or self.key)]
        if host is not None:
            argv += ["-H", host if isinstance(host, str) else host.target]
        environment = {k: v for k, v in os.environ.items() if not k.startswith("FABRIC_")}
        environment.update(HOME=str(self.home), **(env or {}))
        if background:
            return subprocess.Popen(argv + list(args), cwd=cwd, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, env=environment)
        return subprocess.run(argv + list(args), cwd=cwd, capture_output=True, text=True,
                              env=environment, timeout=900)


@pytest.fixture(scope="session")
def fab(ssh_key, operator_home, tmp_path_factory) -> Fab:
    return Fab(ssh_key, operator_home, tmp_path_factory.mktemp("fab-config"))


@pytest.fixture(scope="module")
def engines():
    """Swift's S3 API, PostgreSQL and Redis, started empty for each module that asks."""
    yield from shared_engines.started()


@pytest.fixture(scope="session")
def start_host(test_images, ssh_key, operator_home):
    """Start test hosts by name: servers (systemd, Docker-in-Docker, with
    debian:bookworm-slim loaded; or without Docker), or clients (sshd only). Each one's
    SSH key is in the operator's known_hosts, as their first ssh to it leaves it. All
    are removed when the session ends."""
    started = []

    def start(name: str, kind: str = "host", add_hosts: dict | None = None) -> harness.TestHost:
        """kind: host (a server with Docker), nodocker (a server without), client."""
        image = test_images[kind] if kind in test_images else harness.ensure_built_image(kind)
        host = harness.start_host(image, f"ppc-it-{name}",
                                  ssh_key.with_suffix(".pub").read_text().strip(),
                                  server=kind != "client", add_hosts=add_hosts,
                                  docker=kind == "host", key=ssh_key,
                                  known_hosts=operator_home / ".ssh" / "known_hosts")
        started.append(host)
        if kind == "host":
            harness.load_image(host, harness.BASE_IMAGE)
        return host

    yield start
    for host in started:
        host.remove()


SERVER_NAME = "pypi.test"


def password_of(operator_home: Path, user: str = "admin", index: str = SERVER_NAME) -> str:
    path = operator_home / "state" / index / "secrets.json"
    return json.loads(path.read_text())["passwords"][user]


def container_started_at(host, name="pypicloud") -> str:
    return host.out(f"docker inspect --format '{{{{.State.StartedAt}}}}' {name}")


def steps(output: str) -> dict[str, str]:
    """{step: changed|unchanged} from fab's per-step report lines."""
    rows = [line.split()[1:3] for line in output.splitlines() if line.startswith("[")]
    return {row[0]: row[1] for row in rows if len(row) == 2 and row[1] in ("changed", "unchanged")}


@dataclass
class Deployed:
    host: harness.TestHost
    operator_home: Path
    result: subprocess.CompletedProcess | None = None

    def settings(self, **overrides) -> dict:
        """The settings every fab run against the shared server (and its clients) uses.
        The server's IP is one of its names, so this machine can reach it by IP."""
        return {"server_names": [SERVER_NAME, self.host.address], "users": ["dev"],
                "build_ca_bundle": SYSTEM_CA_BUNDLE,
                "state_dir": str(self.operator_home / "state"), **overrides}


@pytest.fixture(scope="session")
def deployed(fab, start_host, operator_home) -> Deployed:
    """One server host, deployed once with `fab deploy`, shared by the test modules."""
    deployed = Deployed(start_host("server"), operator_home)
    deployed.result = fab("deploy", host=deployed.host, settings=deployed.settings())
    return deployed


@pytest.fixture(scope="session")
def client(start_host, deployed) -> harness.TestHost:
    """A developer machine that resolves the index's name to the server."""
    return start_host("client", kind="client", add_hosts={SERVER_NAME: deployed.host.address})


def server_port(host: harness.TestHost) -> int:
    """The loopback port pypicloud answers on: 3031, or 3032 after a replacement."""
    return int(host.out("docker port pypicloud 3031/tcp").rsplit(":", 1)[1])


@contextlib.contextmanager
def tunnel(host: harness.TestHost, key: Path, remote_port: int):
    """Forward a local port to 127.0.0.1:remote_port on the host, over SSH."""
    local_port = harness.free_port()
    connection = Connection("127.0.0.1", user="root", port=host.port,
                            connect_kwargs={"key_filename": str(key)})
    with connection, connection.forward_local(local_port, remote_port, "127.0.0.1",
                                              "127.0.0.1"):
        # The forwarder listens from a thread of its own: wait until it does.
        harness.wait_for(lambda: harness.port_open(local_port), f"the tunnel on {local_port}", 10)
        yield local_port


NO_INDEX = "https://127.0.0.1:9/simple/"  # nothing answers there: any use of an index fails


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory) -> Path:
    """The server image's locked packages, as an operator fetches them on a machine that
    reaches PyPI (here: through the proxy), for the setting build_wheelhouse."""
    directory = tmp_path_factory.mktemp("wheelhouse")
    made = subprocess.run([str(REPO / "docker" / "lock"), "--wheelhouse", str(directory),
                           "--ca-bundle", SYSTEM_CA_BUNDLE], capture_output=True, text=True)
    assert made.returncode == 0, made.stdout + made.stderr
    return directory


@pytest.fixture(scope="session")
def make_dists(tmp_path_factory):
    """make_dists(name, version, payload_bytes): an sdist and a wheel, built here."""
    return lambda name, version="0.1.0", payload_bytes=0: harness.build_sample_dists(
        name, version, tmp_path_factory.mktemp(name), payload_bytes)
