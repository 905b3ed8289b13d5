"""Docker-in-Docker test hosts: images made without a registry, hosts with sshd + dockerd.

The images are cached in the local Docker engine between test runs: each carries a
label with the hash of what it was made from and is rebuilt only when that changes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.dists import build_sample_dists, build_wheel, sample_metadata  # noqa: F401  (the tests' own)

IMAGES_DIR = Path(__file__).parent / "images"

# The product's Dockerfiles say `FROM debian:bookworm-slim`; no registry is reachable
# here, so the harness makes that image locally and tags it under the real name.
BASE_IMAGE = "debian:bookworm-slim"
BASE_PACKAGES = "python3,ca-certificates"
SUITE = "bookworm"
HASH_LABEL = "ppc-test.source-hash"

# Server hosts boot systemd as PID 1 and run Docker-in-Docker: the flags that work on
# these machines (see shared/ENVIRONMENT.md).
SERVER_FLAGS = [
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined",
    "--security-opt", "apparmor=unconfined",
    "--security-opt", "systempaths=unconfined",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "-v", "/var/lib/docker",
    "--cgroupns=host", "--tmpfs", "/run", "--tmpfs", "/run/lock",
]


def sh(*argv: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, input=input, capture_output=True, check=check)


def image_label(image: str, label: str) -> str | None:
    result = sh("docker", "image", "inspect", "--format",
                f'{{{{index .Config.Labels "{label}"}}}}', image, check=False)
    return result.stdout.decode().strip() if result.returncode == 0 else None


def ensure_base_image() -> str:
    """debootstrap a minimal bookworm and import it as debian:bookworm-slim (cached)."""
    source_hash = hashlib.sha256(f"{SUITE} {BASE_PACKAGES}".encode()).hexdigest()[:16]
    if image_label(BASE_IMAGE, HASH_LABEL) == source_hash:
        return BASE_IMAGE
    with tempfile.TemporaryDirectory(prefix="ppc-rootfs-") as rootfs:
        subprocess.run(["debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}",
                        SUITE, rootfs], check=True, stdout=subprocess.DEVNULL)
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(["docker", "import", "--change", f"LABEL {HASH_LABEL}={source_hash}",
                        "--change", 'CMD ["bash"]', "-", BASE_IMAGE],
                       stdin=tar.stdout, check=True, stdout=subprocess.DEVNULL)
        if tar.wait() != 0:
            raise RuntimeError("tar of the debootstrap root failed")
    return BASE_IMAGE


# Test images and the image each one is built FROM.
IMAGE_PARENTS = {"sshd": BASE_IMAGE, "host": "ppc-test/sshd", "client": "ppc-test/sshd",
                 "nodocker": "ppc-test/sshd",  # a bare server host, for host.bootstrap
                 # Real engines for an index on more than one machine (S3, its cache).
                 "s3": BASE_IMAGE, "postgres": BASE_IMAGE, "redis": BASE_IMAGE}


def ensure_built_image(name: str) -> str:
    """Build tests/integration/images/<name> as ppc-test/<name> (and its parents) unless
    it is up to date."""
    parent = IMAGE_PARENTS[name]
    if parent == BASE_IMAGE:
        ensure_base_image()
    else:
        ensure_built_image(parent.removeprefix("ppc-test/"))
    context = IMAGES_DIR / name
    digest = hashlib.sha256(image_label(parent, HASH_LABEL).encode())
    for path in sorted(context.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(context).as_posix().encode())
            digest.update(path.read_bytes())
    source_hash = digest.hexdigest()[:16]
    tag = f"ppc-test/{name}"
    if image_label(tag, HASH_LABEL) != source_hash:
        with tempfile.TemporaryDirectory() as build_context:
            shutil.copytree(context, build_context, dirs_exist_ok=True)
            tools = context / "tools.txt"
            if tools.exists():  # pinned wheels, fetched here: the build has no proxy CA
                subprocess.run([sys.executable, "-m", "pip", "download", "-q",
                                "--only-binary=:all:", "-r", str(tools),
                                "-d", f"{build_context}/wheels"], check=True)
            subprocess.run(["docker", "build", "--label", f"{HASH_LABEL}={source_hash}",
                            "-t", tag, build_context], check=True, stdout=subprocess.DEVNULL)
    return tag


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class TestHost:
    """One container acting as a bare host, reachable over SSH on 127.0.0.1:port."""

    name: str
    port: int

    @property
    def target(self) -> str:
        return f"root@127.0.0.1:{self.port}"

    def exec(self, command: str, check: bool = True, input: bytes | None = None,
             user: str = "root", env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run a shell command in the container; env values (secrets) are passed through
        docker's environment, never on its command line."""
        env_flags = [flag for name in (env or {}) for flag in ("-e", name)]
        result = subprocess.run(["docker", "exec", "-i", "-u", user, *env_flags, self.name,
                                 "sh", "-c", command], input=input, capture_output=True,
                                env={**os.environ, **(env or {})})
        if check and result.returncode != 0:
            raise AssertionError(f"{command!r} failed on {self.name}:\n"
                                 f"{result.stdout.decode()}{result.stderr.decode()}")
        return result

    def out(self, command: str, **kwargs) -> str:
        return self.exec(command, **kwargs).stdout.decode().strip()

    @property
    def address(self) -> str:
        """The container's IP address on the outer Docker network."""
        return sh("docker", "inspect", "--format", "{{.NetworkSettings.IPAddress}}",
                  self.name).stdout.decode().strip()

    def copy_in(self, files: list[Path], directory: str) -> None:
        self.exec(f"mkdir -p {directory}")
        for path in files:
            self.exec(f"cat > {directory}/{path.name}", input=path.read_bytes())

    def remove(self) -> None:
        sh("docker", "rm", "-f", "-v", self.name, check=False)


def start_host(image: str, name: str, public_key: str, server: bool = True,
               add_hosts: dict[str, str] | None = None, docker: bool = True,
               known_hosts: Path | None = None, key: Path | None = None) -> TestHost:
    """Start a host container. A server boots systemd, which starts sshd and its own
    dockerd (Docker-in-Docker); other hosts run just sshd. add_hosts maps names to IP
    addresses for the container's /etc/hosts. With known_hosts (and the private key),
    the host's SSH key is recorded there as a user's first ssh records it."""
    sh("docker", "rm", "-f", "-v", name, check=False)
    port = free_port()
    flags = SERVER_FLAGS if server else []
    for hostname, address in (add_hosts or {}).items():
        flags = flags + ["--add-host", f"{hostname}:{address}"]
    sh("docker", "run", "-d", "--name", name, "--hostname", name, *flags,
       "-e", f"AUTHORIZED_KEY={public_key}", "-p", f"127.0.0.1:{port}:22", image)
    host = TestHost(name, port)
    if server:  # systemd passes no environment to sshd: authorize the key directly
        host.exec("mkdir -p -m 700 /root/.ssh && cat > /root/.ssh/authorized_keys "
                  "&& chmod 600 /root/.ssh/authorized_keys", input=public_key.encode() + b"\n")
    wait_for(lambda: _ssh_banner(port), f"sshd on {name}")
    if known_hosts is not None:
        record_host_key(host, known_hosts, key)
    if server and docker:
        wait_for(lambda: host.exec("docker info", check=False).returncode == 0,
                 f"dockerd on {name}")
    return host


def record_host_key(host: TestHost, known_hosts: Path, key: Path) -> None:
    """What a user's first `ssh` to the host does (StrictHostKeyChecking accept-new,
    hashed as Debian's ssh_config has it), after `ssh-keygen -R` of what an earlier host
    on the same port left there."""
    known_hosts.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    sh("ssh-keygen", "-R", f"[127.0.0.1]:{host.port}", "-f", str(known_hosts), check=False)
    sh("ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=accept-new", "-o",
       f"UserKnownHostsFile={known_hosts}", "-o", "HashKnownHosts=yes", "-o", "BatchMode=yes",
       "-i", str(key), "-p", str(host.port), "root@127.0.0.1", "true")


def reboot(host: TestHost) -> None:
    """Restart the host container: systemd shuts down cleanly and boots again."""
    sh("docker", "restart", host.name)
    wait_for(lambda: _ssh_banner(host.port), f"sshd on {host.name} after the reboot")


def load_image(host: TestHost, image: str) -> None:
    """Copy an image from the outer engine into the host's engine (no registry here)."""
    saved = sh("docker", "save", image).stdout
    host.exec("docker load", input=saved)


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def _ssh_banner(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            return s.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def wait_for(predicate, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise TimeoutError(f"timed out waiting for {what}")
