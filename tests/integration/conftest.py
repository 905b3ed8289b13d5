"""Fixtures for the integration tests: real Docker-in-Docker hosts and the real `fab`.

Docker must work here: CI runs these tests and never skips them (tests/run starts
dockerd when it is not running). A session is one pytest-xdist worker's: its host
containers are shared by the modules it runs where that is safe (the `deployed` server,
`bare_host`, the `client`), and removed at its end. What the whole run shares (the
server's images, the engines, the wheelhouse) is made once, by whichever worker asks
first (testrun.once).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest
from fabric import Connection

from . import engines as shared_engines
from . import harness, testrun

REPO = harness.REPO
FAB = Path(sys.executable).parent / "fab"
SYSTEM_CA_BUNDLE = harness.SYSTEM_CA_BUNDLE


@pytest.fixture(scope="session")
def docker_engine():
    result = subprocess.run(["docker", "info"], capture_output=True)
    if result.returncode != 0:
        pytest.fail("Docker does not answer: integration tests need it (run tests/run, "
                    "which installs and starts it)", pytrace=False)


@pytest.fixture(scope="session")
def test_images(docker_engine) -> dict[str, str]:
    """Built before the workers start (tests/conftest.py); here only looked up."""
    return {name: harness.ensure_built_image(name) for name in ("host", "client")}


def built_images(with_base: bool = False, **build_settings) -> Path:
    """The data and server images that a deploy with these build settings (and the
    machine's CA bundle) builds, built here once in the run, with the product's own
    build, and saved for `docker load` (debian:bookworm-slim with them if asked)."""
    settings = {"build_ca_bundle": SYSTEM_CA_BUNDLE, **build_settings}
    key = hashlib.sha256(json.dumps([with_base, settings], sort_keys=True).encode()).hexdigest()
    archive = testrun.folder() / f"images-{key[:12]}.tar"

    def save() -> str:
        # One build at a time: each moves the plain tags (ppc/pypicloud:1.3.12), which go
        # into its archive too.
        with testrun.exclusive("builds"):
            images = harness.build_server_images(settings)
            return str(harness.save_archive(([harness.BASE_IMAGE] if with_base else []) + images,
                                            archive))

    return Path(testrun.once(archive.stem, save))


@pytest.fixture(scope="session")
def host_images(docker_engine) -> dict[str, Path]:
    """What a new server host's engine gets (no registry here), saved once in the run:
    {"base": debian:bookworm-slim alone, "server": with the data and server images as
    the product builds them for the settings the tests share (a deploy with those finds
    them up to date)}."""
    base = testrun.folder() / "base-image.tar"
    return {"base": Path(testrun.once(base.stem, lambda: str(harness.save_archive(
                [harness.BASE_IMAGE], base)))),
            "server": built_images(with_base=True)}


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
def engines(request, docker_engine) -> shared_engines.Stores:
    """A bucket, a database and a Redis db of the module's own, in the engines (Swift's
    S3 API, PostgreSQL, Redis) that the run starts once."""
    def start() -> dict:
        running = shared_engines.start(
            {kind: testrun.container_name(kind, shared=True) for kind in shared_engines.KINDS},
            tuple(testrun.labels()))
        return {"containers": running.containers, "addresses": running.addresses}

    running = shared_engines.Engines(**testrun.once("engines", start))
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")
    return shared_engines.Stores.create(running, module, testrun.count("redis-dbs"))


class Hosts:
    """Test hosts, started by name: servers (systemd, Docker-in-Docker; or without
    Docker), or clients (sshd only). Each one's SSH key is in the operator's
    known_hosts, as their first ssh to it leaves it."""

    def __init__(self, request, test_images, ssh_key: Path, operator_home: Path):
        self.request, self.test_images = request, test_images
        self.ssh_key, self.operator_home = ssh_key, operator_home
        self.started: list[harness.TestHost] = []

    def start(self, name: str, kind: str = "host", add_hosts: dict | None = None,
              images: str | None = "server") -> harness.TestHost:
        """kind: host (a server with Docker), nodocker (a server without), client.
        images, what a host's engine starts with: "server", debian:bookworm-slim and the
        server's images as the shared settings build them (a deploy finds them up to
        date); "base", debian:bookworm-slim alone (a deploy builds them); None, none."""
        image = (self.test_images[kind] if kind in self.test_images
                 else harness.ensure_built_image(kind))
        host = harness.start_host(image, testrun.container_name(name),
                                  self.ssh_key.with_suffix(".pub").read_text().strip(),
                                  server=kind != "client", add_hosts=add_hosts,
                                  docker=kind == "host", key=self.ssh_key,
                                  known_hosts=self.operator_home / ".ssh" / "known_hosts",
                                  run_flags=tuple(testrun.labels()))
        self.started.append(host)
        if kind == "host" and images:
            harness.load_archive(host, self.request.getfixturevalue("host_images")[images])
        return host

    def remove(self) -> None:
        for host in self.started:
            host.remove()


@pytest.fixture(scope="module")
def start_host(request, test_images, ssh_key, operator_home):
    """Start a module's own test hosts (Hosts.start); they go when its tests are done,
    so that a worker's machine holds only what its current module uses."""
    hosts = Hosts(request, test_images, ssh_key, operator_home)
    yield hosts.start
    hosts.remove()


@pytest.fixture(scope="session")
def start_shared_host(request, test_images, ssh_key, operator_home):
    """Start a host that the modules of a session share; gone at the session's end."""
    hosts = Hosts(request, test_images, ssh_key, operator_home)
    yield hosts.start
    hosts.remove()


@pytest.fixture(scope="session")
def bare_host(start_shared_host) -> harness.TestHost:
    """A server host as it comes (Docker, debian:bookworm-slim, nothing of ours): for
    the tests that only read a bare host, and put back whatever they change."""
    return start_shared_host("bare", images="base")


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
                "state_dir": str(self.operator_home / "state"),
                # This machine's requests read /metrics without the credential.
                "metrics_allow": [harness.gateway_address()], **overrides}


@pytest.fixture(scope="session")
def deployed(fab, start_shared_host, operator_home) -> Deployed:
    """One server host, deployed once with `fab deploy`, shared by the test modules."""
    deployed = Deployed(start_shared_host("server"), operator_home)
    deployed.result = fab("deploy", host=deployed.host, settings=deployed.settings())
    assert deployed.result.returncode == 0, deployed.result.stdout + deployed.result.stderr
    return deployed


@pytest.fixture(scope="session")
def client(start_shared_host, deployed) -> harness.TestHost:
    """A developer machine that resolves the index's name to the server."""
    return start_shared_host("client", kind="client",
                             add_hosts={SERVER_NAME: deployed.host.address})


def server_port(host: harness.TestHost) -> int:
    """The loopback port pypicloud answers on: 3031, or 3032 after a replacement."""
    return int(host.out("docker port pypicloud 3031/tcp").rsplit(":", 1)[1])


@contextlib.contextmanager
def tunnel(host: harness.TestHost, key: Path, remote_port: int):
    """Forward a loopback port of this machine (the system's choice) to
    127.0.0.1:remote_port on the host, over SSH, as `ssh -L` does; yields the port."""
    connection = Connection("127.0.0.1", user="root", port=host.port,
                            connect_kwargs={"key_filename": str(key)})
    with connection, socket.create_server(("127.0.0.1", 0)) as listener:
        connection.open()

        def relay(client: socket.socket) -> None:
            # Either end may go away at any moment (the tunnel closing, most often).
            with client, contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                channel = connection.transport.open_channel(
                    "direct-tcpip", ("127.0.0.1", remote_port), client.getpeername())
                with channel:
                    ends = {client: channel, channel: client}
                    while True:
                        for end in select.select(list(ends), [], [])[0]:
                            data = end.recv(65536)
                            if not data:
                                return
                            ends[end].sendall(data)

        def accept() -> None:
            with contextlib.suppress(OSError):  # until the listener closes
                while True:
                    client = listener.accept()[0]
                    threading.Thread(target=relay, args=(client,), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()
        yield listener.getsockname()[1]


NO_INDEX = "https://127.0.0.1:9/simple/"  # nothing answers there: any use of an index fails


@pytest.fixture(scope="session")
def wheelhouse(docker_engine) -> Path:
    """The server image's locked packages, as an operator fetches them on a machine that
    reaches PyPI (here: through the proxy), for the setting build_wheelhouse; fetched
    once in the run."""
    def fetch() -> str:
        directory = testrun.folder() / "wheelhouse"
        made = subprocess.run([str(REPO / "docker" / "lock"), "--wheelhouse", str(directory),
                               "--ca-bundle", SYSTEM_CA_BUNDLE], capture_output=True, text=True)
        assert made.returncode == 0, made.stdout + made.stderr
        return str(directory)

    return Path(testrun.once("wheelhouse", fetch))


@pytest.fixture(scope="session")
def ppc_wheels(docker_engine) -> Path:
    """ppc-tasks as a wheel built from this checkout, beside the wheels of everything it
    needs (fetched through the proxy): what an operator installs on a machine without
    PyPI, with pip install --no-index --find-links. Made once in the run."""
    def make() -> str:
        folder = testrun.folder() / "ppc-wheels"
        source = testrun.folder() / "ppc-source"
        shutil.rmtree(source, ignore_errors=True)
        shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
            ".venv", ".git", ".demo", "__pycache__", "*.egg-info", "build"))
        pip = str(REPO / ".venv" / "bin" / "pip")
        built = subprocess.run([pip, "wheel", "-q", "--no-deps", "-w", str(folder), str(source)],
                               capture_output=True, text=True)
        assert built.returncode == 0, built.stdout + built.stderr
        shutil.rmtree(source)
        (wheel,) = folder.glob("ppc_tasks-*.whl")
        # By its file: the name ppc-tasks is never looked up on PyPI.
        fetched = subprocess.run([pip, "download", "-q", "--only-binary=:all:", "--cert",
                                  SYSTEM_CA_BUNDLE, "-d", str(folder), str(wheel)],
                                 capture_output=True, text=True)
        assert fetched.returncode == 0, fetched.stdout + fetched.stderr
        return str(folder)

    return Path(testrun.once("ppc-wheels", make))


@pytest.fixture(scope="session")
def make_dists(tmp_path_factory):
    """make_dists(name, version, payload_bytes): an sdist and a wheel, built here."""
    return lambda name, version="0.1.0", payload_bytes=0: harness.build_sample_dists(
        name, version, tmp_path_factory.mktemp(name), payload_bytes)
