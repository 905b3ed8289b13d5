"""What `image` decides, from the settings and a host's facts alone: the facts it
asks for, its steps and what they render (its tasks: ppc_tasks/image.py)."""

from __future__ import annotations

import functools
import hashlib
import io
import tarfile
from dataclasses import dataclass

from .. import docker
from ..facts import IMAGE, Facts
from ..plan import Change, Command, Step, Unchanged, size
from ..render import DOCKER_DIR
from ..settings import PYPICLOUD_UID, Settings


@dataclass(frozen=True)
class ImageBuild:
    """One image to build: its tag, the files of its build context and build args."""

    role: str
    tag: str
    files: dict[str, bytes]
    build_args: dict[str, str]

    @functools.cached_property  # asked for often; a wheelhouse makes it tens of MB to hash
    def context_hash(self) -> str:
        """Changes exactly when the build would produce something different."""
        digest = hashlib.sha256()
        for name in sorted(self.files):
            digest.update(f"{name}\0{len(self.files[name])}\0".encode() + self.files[name])
        for key in sorted(self.build_args):
            digest.update(f"{key}={self.build_args[key]}\0".encode())
        return digest.hexdigest()

    @property
    def content_tag(self) -> str:
        """The image's name by content, which no later build moves: the tag and the
        context hash (ppc/pypicloud:1.3.12-3f2a9c41d0e7). Containers run this one."""
        return content_tag(self.tag, self.context_hash)

    def context_tar(self) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name in sorted(self.files):
                info = tarfile.TarInfo(name)
                info.size = len(self.files[name])
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(self.files[name]))
        return buffer.getvalue()


def content_tag(tag: str, context_hash: str) -> str:
    name, _, version = tag.rpartition(":")
    if not name or "/" in version:  # no tag given (a registry port is no tag): docker's "latest"
        name, version = tag, "latest"
    return f"{name}:{version}-{context_hash[:docker.CONTENT_TAG_WIDTH]}"


def image_builds(settings: Settings) -> list[ImageBuild]:
    """The data image first, then the server image, from docker/<role>/."""
    build_args = {"BASE_IMAGE": settings.base_image, "PYPICLOUD_UID": str(PYPICLOUD_UID)}
    # The build's way through a TLS-intercepting proxy, to a private mirror, or to no
    # index at all: empty files and an empty wheelhouse unless the operator sets
    # build_ca_bundle / build_index_url / build_wheelhouse.
    pip_options = {
        "pip-ca.pem": settings.build_ca_bundle.read_bytes() if settings.build_ca_bundle else b"",
        "pip-index-url": settings.build_index_url.encode(),
        **({f"wheelhouse/{path.name}": path.read_bytes()
            for path in sorted(settings.build_wheelhouse.iterdir()) if path.is_file()}
           if settings.build_wheelhouse else {"wheelhouse/.empty": b""}),
    }
    return [
        ImageBuild("data", settings.data_image, _context_files("data"), build_args),
        ImageBuild("server", settings.server_image, {**_context_files("server"), **pip_options},
                   build_args),
    ]


def _context_files(role: str) -> dict[str, bytes]:
    directory = DOCKER_DIR / role
    # Bytecode is no part of it: Python writes it beside the scripts when it runs them
    # (a test, or pip installing the wheel), and it would change the context hash.
    return {path.relative_to(directory).as_posix(): path.read_bytes()
            for path in sorted(directory.rglob("*"))
            if path.is_file() and "__pycache__" not in path.parts}


def build_argv(build: ImageBuild, no_cache: bool) -> list[str]:
    """`docker build` reading its context as a tar from stdin: nothing is staged on the host."""
    argv = ["docker", "build", "--label", f"{docker.CONTEXT_LABEL}={build.context_hash}",
            "-t", build.tag, "-t", build.content_tag]
    for key, value in sorted(build.build_args.items()):
        argv += ["--build-arg", f"{key}={value}"]
    if no_cache:
        argv.append("--no-cache")
    return argv + ["-"]


def queries(settings: Settings) -> list[str]:
    return [IMAGE.query(tag) for build in image_builds(settings)
            for tag in (build.tag, build.content_tag)]


def plan_images(settings: Settings, facts: Facts, *, force: bool = False,
                skip: bool = False) -> list[Step]:
    """Build each image unless the host has one made from the very same context. A
    build notifies `image.<role>`: what runs from that image must be replaced."""
    steps: list[Step] = []
    for build in image_builds(settings):
        step = f"image.{build.role}"
        built = facts.images.get(build.content_tag)
        if skip:
            steps.append(Unchanged(step, f"{build.tag}: not built (--skip-build)"))
        elif built is not None and not force:
            steps.append(Unchanged(step, f"{build.content_tag} is up to date"))
        else:
            current = facts.images[build.tag]
            reason = ("--rebuild" if built is not None else "it is missing" if current is None
                      else "it has no content tag yet" if current.context == build.context_hash
                      else "its files or build options changed")
            context = build.context_tar()
            steps.append(Change(
                step, done=f"built {build.content_tag}", would=f"build {build.tag}: {reason}",
                commands=[Command(tuple(build_argv(build, no_cache=force)), stdin=context,
                                  stdin_shown=f"the build context of docker/{build.role}, "
                                              f"{size(context)}",
                                  failure=f"building {build.tag} failed",
                                  shows_output=True)],
                notifies=(step,)))
    return steps


def rebuilt(steps: list[Step]) -> set[str]:
    """The roles whose image these steps (plan_images') build: {"data", "server"}."""
    return {step.step.split(".", 1)[1] for step in steps if isinstance(step, Change)}


def server_image(settings: Settings, facts: Facts,
                 building: bool = False) -> tuple[str, str] | None:
    """(the image the server container runs, what it is): by content when ppc-tasks built
    it (or, building, is about to), then its context hash; else (--skip-build) the image
    as named, and its ID. None: there is none."""
    build = next(build for build in image_builds(settings) if build.role == "server")
    if building or facts.images.get(build.content_tag) is not None:
        return build.content_tag, build.context_hash
    current = facts.images.get(settings.server_image)
    return (settings.server_image, current.context or current.id) if current else None
