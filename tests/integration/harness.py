"""Docker-in-Docker test hosts: images made without a registry, hosts with sshd + dockerd.

The images are cached in the local Docker engine between test runs: each carries a
label with the hash of what it was made from and is rebuilt only when that changes.
The server's own images are built once in a run, here, with the product's own build
(ppc_tasks.plans.image), and loaded into the hosts that should not build them; the images of
earlier releases that upgrade tests deploy are kept here by their commit.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import io
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.dists import build_sample_dists, build_wheel, sample_metadata  # noqa: F401  (the tests' own)

IMAGES_DIR = Path(__file__).parent / "images"
REPO = Path(__file__).resolve().parents[2]

# The product's Dockerfiles say `FROM debian:bookworm-slim`; no registry is reachable
# here, so the harness makes that image locally and tags it under the real name.
BASE_IMAGE = "debian:bookworm-slim"
BASE_PACKAGES = "python3,ca-certificates"
SUITE = "bookworm"
HASH_LABEL = "ppc-test.source-hash"
# The machine's CA bundle: the way through this network's TLS-intercepting proxy,
# handed to image builds through the product's own build_ca_bundle setting.
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

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
    """debootstrap a minimal bookworm, slim as Debian's own debian:bookworm-slim (no
    docs, man pages, translations, package lists or caches, and dpkg and apt told to
    keep it so: images/base), and import it under that name (cached)."""
    slim = {IMAGES_DIR / "base" / "dpkg-slim.cfg": "etc/dpkg/dpkg.cfg.d/docker",
            IMAGES_DIR / "base" / "apt-clean.conf": "etc/apt/apt.conf.d/docker-clean"}
    digest = hashlib.sha256(f"{SUITE} {BASE_PACKAGES}".encode())
    for path in slim:
        digest.update(path.read_bytes())
    source_hash = digest.hexdigest()[:16]
    if image_label(BASE_IMAGE, HASH_LABEL) == source_hash:
        return BASE_IMAGE
    with tempfile.TemporaryDirectory(prefix="ppc-rootfs-") as rootfs:
        subprocess.run(["debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}",
                        SUITE, rootfs], check=True, stdout=subprocess.DEVNULL)
        for path, target in slim.items():
            shutil.copyfile(path, Path(rootfs, target))
        subprocess.run(["sh", "-c", "cd \"$1\" && find usr/share/doc -mindepth 1 ! -name copyright "
                        "! -type d -delete && find usr/share/doc -mindepth 1 -type d -empty -delete "
                        "&& rm -rf usr/share/groff/* usr/share/info/* usr/share/linda/* "
                        "usr/share/lintian/overrides/* usr/share/locale/* usr/share/man/* "
                        "var/lib/apt/lists/* var/cache/apt/archives/*.deb var/cache/apt/*.bin",
                        "slim", rootfs], check=True)
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
                 "s3": BASE_IMAGE, "postgres": BASE_IMAGE, "redis": BASE_IMAGE,
                 # The operator's monitoring: Prometheus and promtool.
                 "prometheus": BASE_IMAGE}


def gateway_address() -> str:
    """Where containers on Docker's default bridge reach this machine, and the address
    they see this machine's requests come from."""
    return sh("docker", "network", "inspect", "bridge", "--format",
              "{{(index .IPAM.Config 0).Gateway}}").stdout.decode().strip()


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
    with image_lock(name):  # a worker that finds another building it waits, then reuses it
        if image_label(tag, HASH_LABEL) != source_hash:
            build_image(context, tag, source_hash)
    return tag


@contextlib.contextmanager
def image_lock(name: str):
    """Held while one process checks (and builds) a test image: the workers of a run may
    ask for the same one at once (Prometheus, in two modules)."""
    with open(Path(tempfile.gettempdir()) / f"ppc-test-image-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build_image(context: Path, tag: str, source_hash: str) -> None:
    with tempfile.TemporaryDirectory() as build_context:
        shutil.copytree(context, build_context, dirs_exist_ok=True)
        tools = context / "tools.txt"
        if tools.exists():  # pinned wheels, fetched here: the build has no proxy CA
            subprocess.run([sys.executable, "-m", "pip", "download", "-q",
                            "--only-binary=:all:", "-r", str(tools),
                            "-d", f"{build_context}/wheels"], check=True)
        subprocess.run(["docker", "build", "--label", f"{HASH_LABEL}={source_hash}",
                        "-t", tag, build_context], check=True, stdout=subprocess.DEVNULL)


@contextlib.contextmanager
def closed_port():
    """A loopback port that nothing listens on while the block runs: it is bound here
    (without listening), so no other process of the machine can take it meanwhile."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


@dataclass
class TestHost:
    """One container acting as a bare host, reachable over SSH on 127.0.0.1:port."""

    name: str
    port: int
    # Where its SSH host key is recorded (as a user's first ssh records it), with what key.
    known_hosts: Path | None = None
    key: Path | None = None

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

    @functools.cached_property  # asked for by every request of a test; reboot() forgets it
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
               known_hosts: Path | None = None, key: Path | None = None,
               run_flags: tuple[str, ...] = ()) -> TestHost:
    """Start a host container. A server boots systemd, which starts sshd and its own
    dockerd (Docker-in-Docker); other hosts run just sshd. add_hosts maps names to IP
    addresses for the container's /etc/hosts. With known_hosts (and the private key),
    the host's SSH key is recorded there as a user's first ssh records it. Docker
    chooses the loopback port of its sshd."""
    sh("docker", "rm", "-f", "-v", name, check=False)
    flags = SERVER_FLAGS if server else []
    for hostname, address in (add_hosts or {}).items():
        flags = flags + ["--add-host", f"{hostname}:{address}"]
    sh("docker", "run", "-d", "--name", name, "--hostname", name, *flags, *run_flags,
       "-e", f"AUTHORIZED_KEY={public_key}", "-p", "127.0.0.1::22", image)
    host = TestHost(name, _published_port(name), known_hosts, key)
    if server:  # systemd passes no environment to sshd: authorize the key directly
        host.exec("mkdir -p -m 700 /root/.ssh && cat > /root/.ssh/authorized_keys "
                  "&& chmod 600 /root/.ssh/authorized_keys", input=public_key.encode() + b"\n")
    wait_for(lambda: _ssh_banner(host.port), f"sshd on {name}")
    if known_hosts is not None:
        record_host_key(host)
    if server and docker:
        wait_for(lambda: host.exec("docker info", check=False).returncode == 0,
                 f"dockerd on {name}")
    return host


def _published_port(name: str) -> int:
    """The loopback port Docker chose for the container's sshd (anew at each start)."""
    published = sh("docker", "port", name, "22/tcp").stdout.decode().split()[0]
    return int(published.rsplit(":", 1)[1])


def record_host_key(host: TestHost) -> None:
    """What a user's first `ssh` to the host does (StrictHostKeyChecking accept-new,
    hashed as Debian's ssh_config has it), after `ssh-keygen -R` of what an earlier host
    on the same port left there."""
    host.known_hosts.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    sh("ssh-keygen", "-R", f"[127.0.0.1]:{host.port}", "-f", str(host.known_hosts), check=False)
    sh("ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=accept-new", "-o",
       f"UserKnownHostsFile={host.known_hosts}", "-o", "HashKnownHosts=yes", "-o",
       "BatchMode=yes", "-i", str(host.key), "-p", str(host.port), "root@127.0.0.1", "true")


def reboot(host: TestHost) -> None:
    """Restart the host container: systemd shuts down cleanly and boots again. Docker
    publishes its sshd on another port then: the host's port follows, recorded as the
    operator's ssh records a host it has not seen on that port."""
    sh("docker", "restart", host.name)
    host.port = _published_port(host.name)
    host.__dict__.pop("address", None)  # it may have another one now
    wait_for(lambda: _ssh_banner(host.port), f"sshd on {host.name} after the reboot")
    if host.known_hosts is not None:
        record_host_key(host)


def load_image(host: TestHost, image: str) -> None:
    """Copy an image from the outer engine into the host's engine (no registry here)."""
    saved = sh("docker", "save", image).stdout
    host.exec("docker load", input=saved)


def load_archive(host: TestHost, archive: Path) -> None:
    """Load the images of a `docker save` archive into the host's engine."""
    with archive.open("rb") as images:
        loaded = subprocess.run(["docker", "exec", "-i", host.name, "docker", "load", "-q"],
                                stdin=images, capture_output=True)
    if loaded.returncode != 0:
        raise AssertionError(f"docker load on {host.name} failed: {loaded.stderr.decode()}")


def save_archive(images: list[str], archive: Path) -> Path:
    sh("docker", "save", "-o", str(archive), *images)
    return archive


def build_server_images(settings: dict) -> list[str]:
    """Build the data and server images in this machine's engine exactly as a deploy
    with these settings builds them on a host (the product's own context, build
    arguments and tags); their tags, the content tags included."""
    from ppc_tasks.plans import image
    from ppc_tasks.settings import Settings

    builds = image.image_builds(Settings.from_config(settings, host="build.test"))
    for build in builds:
        built = subprocess.run(image.build_argv(build, no_cache=False), input=build.context_tar(),
                               capture_output=True)
        if built.returncode != 0:
            raise RuntimeError(f"building {build.tag} failed:\n{built.stdout.decode()[-3000:]}"
                               f"{built.stderr.decode()[-3000:]}")
    return [tag for build in builds for tag in (build.tag, build.content_tag)]


# -- the images of earlier releases, kept here by commit ------------------------------
@contextlib.contextmanager
def previous_release(host: TestHost, commit: str, directory: Path):
    """The tree of an earlier release (`git archive` of its commit), to run its own fab
    in against the host; the images that release builds there are kept here by commit
    and given to the host before, so that it builds them once on this machine."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit], capture_output=True)
    assert archive.returncode == 0, (f"the release {commit} is not in this clone's history: "
                                     f"{archive.stderr.decode()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(directory)
    load_release_images(host, commit)
    yield directory
    keep_release_images(host, commit)


def release_images(commit: str) -> list[str]:
    """The images an earlier release built on a host, kept in this engine by commit, by
    the base image and by the CA bundle its builds trust (what they were built from)."""
    listed = sh("docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}",
                f"{_release_repository(commit)}*").stdout.decode().split()
    return sorted(listed)


def load_release_images(host: TestHost, commit: str) -> None:
    """Give the host the images the release built before (if kept), under the names it
    gave them (ppc/...): its deploy then finds them up to date."""
    kept = release_images(commit)
    if kept:
        host.exec("docker load -q", input=sh("docker", "save", *kept).stdout)
        prefix = _release_repository(commit)
        host.exec(" && ".join(f"docker tag {name} ppc/{name.removeprefix(prefix)} "
                              f"&& docker rmi {name}" for name in kept))


def keep_release_images(host: TestHost, commit: str) -> None:
    """Keep here what the release built on the host (its ppc/ images), unless kept."""
    built = host.out("docker image ls --format '{{.Repository}}:{{.Tag}}' 'ppc/*'").split()
    if release_images(commit) or not built:
        return
    prefix = _release_repository(commit)
    kept = [f"{prefix}{name.removeprefix('ppc/')}" for name in built]
    host.exec(" && ".join(f"docker tag {name} {keep}" for name, keep in zip(built, kept)))
    saved = host.exec(f"docker save {' '.join(kept)} && docker rmi {' '.join(kept)} >/dev/null")
    sh("docker", "load", "-q", input=saved.stdout)


def _release_repository(commit: str) -> str:
    built_from = hashlib.sha256(image_label(BASE_IMAGE, HASH_LABEL).encode()
                                + Path(SYSTEM_CA_BUNDLE).read_bytes()).hexdigest()[:8]
    return f"ppc-test/release-{commit}-{built_from}-"


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
