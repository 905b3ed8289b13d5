"""`image`: build the data and server images on the host (manual step 1)."""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass

from . import docker
from .errors import TaskError
from .host import Host, host_task, last_lines
from .render import DOCKER_DIR
from .settings import PYPICLOUD_UID, Settings


@dataclass(frozen=True)
class ImageBuild:
    """One image to build: its tag, the files of its build context and build args."""

    role: str
    tag: str
    files: dict[str, bytes]
    build_args: dict[str, str]

    @property
    def context_hash(self) -> str:
        """Changes exactly when the build would produce something different."""
        digest = hashlib.sha256()
        for name in sorted(self.files):
            digest.update(f"{name}\0{len(self.files[name])}\0".encode() + self.files[name])
        for key in sorted(self.build_args):
            digest.update(f"{key}={self.build_args[key]}\0".encode())
        return digest.hexdigest()

    def context_tar(self) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name in sorted(self.files):
                info = tarfile.TarInfo(name)
                info.size = len(self.files[name])
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(self.files[name]))
        return buffer.getvalue()


def image_builds(settings: Settings) -> list[ImageBuild]:
    """The data image first, then the server image, from docker/<role>/."""
    build_args = {"BASE_IMAGE": settings.base_image, "PYPICLOUD_UID": str(PYPICLOUD_UID)}
    # The build's way through a TLS-intercepting proxy or to a private mirror: empty
    # files unless the operator sets build_ca_bundle / build_index_url.
    pip_options = {
        "pip-ca.pem": settings.build_ca_bundle.read_bytes() if settings.build_ca_bundle else b"",
        "pip-index-url": settings.build_index_url.encode(),
    }
    return [
        ImageBuild("data", settings.data_image, _context_files("data"), build_args),
        ImageBuild("server", settings.server_image, {**_context_files("server"), **pip_options},
                   build_args),
    ]


def _context_files(role: str) -> dict[str, bytes]:
    directory = DOCKER_DIR / role
    return {path.relative_to(directory).as_posix(): path.read_bytes()
            for path in sorted(directory.rglob("*")) if path.is_file()}


def build_argv(build: ImageBuild, no_cache: bool) -> list[str]:
    """`docker build` reading its context as a tar from stdin: nothing is staged on the host."""
    argv = ["docker", "build", "--label", f"{docker.CONTEXT_LABEL}={build.context_hash}",
            "-t", build.tag]
    for key, value in sorted(build.build_args.items()):
        argv += ["--build-arg", f"{key}={value}"]
    if no_cache:
        argv.append("--no-cache")
    return argv + ["-"]


def ensure_image(host: Host, build: ImageBuild, force: bool = False) -> None:
    """Build the image unless the host has one made from the very same context."""
    step = f"image.{build.role}"
    built_from = docker.inspect(host, "image", build.tag, docker.label_template(docker.CONTEXT_LABEL))
    if built_from == build.context_hash and not force:
        host.report(step, False, f"{build.tag} is up to date")
        return
    result = host.run(build_argv(build, no_cache=force), root=True, stdin=build.context_tar(),
                      check=False)
    if not result.ok:
        raise TaskError(f"building {build.tag} failed: {last_lines(result.stdout + result.stderr, 4)}")
    host.report(step, True, f"built {build.tag}")


def build_images(host: Host, force: bool = False) -> None:
    for image_build in image_builds(host.settings):
        ensure_image(host, image_build, force)


@host_task
def build(host, force=False):
    """Build the data and server images on the host; skipped when already up to date.

    The images are rebuilt when the files in docker/, the base image or the build
    options change. --force rebuilds from scratch (no layer cache), e.g. to pick up
    security updates of the base image's packages.
    """
    build_images(host, force)
