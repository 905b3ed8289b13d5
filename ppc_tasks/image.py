"""`image`: build the data and server images on the host (manual step 1)."""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass

from . import docker
from .facts import Facts
from .host import host_task
from .plan import Change, Command, Plan, Step, Unchanged, size
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


def queries(settings: Settings) -> list[str]:
    return [f"image={build.tag}" for build in image_builds(settings)]


def plan_images(settings: Settings, facts: Facts, *, force: bool = False,
                skip: bool = False) -> list[Step]:
    """Build each image unless the host has one made from the very same context. A
    build notifies `image.<role>`: what runs from that image must be replaced."""
    steps: list[Step] = []
    for build in image_builds(settings):
        step = f"image.{build.role}"
        current = facts.images[build.tag]
        if skip:
            steps.append(Unchanged(step, f"{build.tag}: not built (--skip-build)"))
        elif current is not None and current.context == build.context_hash and not force:
            steps.append(Unchanged(step, f"{build.tag} is up to date"))
        else:
            reason = ("--rebuild" if current is not None and current.context == build.context_hash
                      else "its files or build options changed" if current else "it is missing")
            context = build.context_tar()
            steps.append(Change(
                step, done=f"built {build.tag}", would=f"build {build.tag}: {reason}",
                commands=[Command(tuple(build_argv(build, no_cache=force)), stdin=context,
                                  stdin_shown=f"the build context of docker/{build.role}, "
                                              f"{size(context)}",
                                  failure=f"building {build.tag} failed")],
                notifies=(step,)))
    return steps


def image_identity(settings: Settings, facts: Facts, plan: Plan, tag: str, role: str) -> str | None:
    """What the container from `tag` runs: the context hash it is (or is about to be)
    built from; for an image ppc-tasks did not build, its ID. None: there is none."""
    if plan.notified(f"image.{role}"):
        return next(build.context_hash for build in image_builds(settings) if build.role == role)
    current = facts.images[tag]
    return (current.context or current.id) if current else None


@host_task
def build(host, force=False):
    """Build the data and server images on the host; skipped when already up to date.

    The images are rebuilt when the files in docker/, the base image or the build
    options change. --force rebuilds from scratch (no layer cache), e.g. to pick up
    security updates of the base image's packages.
    """
    facts = host.read_facts(["platform", "docker", *queries(host.settings)])
    host.require_docker(facts)
    plan = Plan()
    plan.add(*plan_images(host.settings, facts, force=force))
    host.carry_out(plan)
