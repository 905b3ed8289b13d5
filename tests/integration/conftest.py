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
def host_image(docker_engine):
    harness.ensure_base_image()
    return harness.ensure_built_image("host")


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
                 env: dict | None = None) -> subprocess.CompletedProcess:
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
        return subprocess.run(argv + list(args), cwd=REPO, capture_output=True, text=True,
                              env=environment, timeout=900)


@pytest.fixture(scope="session")
def fab(ssh_key, operator_home, tmp_path_factory) -> Fab:
    return Fab(ssh_key, operator_home, tmp_path_factory.mktemp("fab-config"))


@pytest.fixture(scope="session")
def start_host(host_image, ssh_key):
    """Start host containers by name; all are removed when the session ends."""
    started = []

    def start(name: str, docker: bool = True) -> harness.TestHost:
        host = harness.start_host(host_image, f"ppc-it-{name}", ssh_key.with_suffix(".pub")
                                  .read_text().strip(), docker=docker)
        started.append(host)
        if docker:
            harness.load_image(host, harness.BASE_IMAGE)
        return host

    yield start
    for host in started:
        host.remove()


@contextlib.contextmanager
def tunnel(host: harness.TestHost, key: Path, remote_port: int):
    """Forward a local port to 127.0.0.1:remote_port on the host, over SSH."""
    local_port = harness.free_port()
    connection = Connection("127.0.0.1", user="root", port=host.port,
                            connect_kwargs={"key_filename": str(key)})
    with connection, connection.forward_local(local_port, remote_port, "127.0.0.1",
                                              "127.0.0.1"):
        yield local_port


@pytest.fixture(scope="session")
def sample_dists(tmp_path_factory) -> list[Path]:
    """An sdist and a wheel of a tiny package, built here."""
    project = tmp_path_factory.mktemp("sample")
    (project / "src" / "ppc_sample").mkdir(parents=True)
    (project / "src" / "ppc_sample" / "__init__.py").write_text("VALUE = 42\n")
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "ppc-sample"\nversion = "0.1.0"\n')
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir",
                    str(project / "dist"), str(project)], check=True, capture_output=True)
    return sorted((project / "dist").iterdir())
