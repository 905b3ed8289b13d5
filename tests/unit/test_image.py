"""The images and their build contexts (ppc_tasks/image.py, docker/)."""

import io
import re
import tarfile

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ppc_tasks.facts import Facts, ImageFacts
from ppc_tasks.plan import Change, Unchanged
from ppc_tasks.plans import image
from ppc_tasks.settings import Settings, SettingsError


def builds(**ppc):
    return {b.role: b for b in image.image_builds(Settings.from_config(ppc, host="h"))}


def test_images_are_built_only_when_their_context_changed():
    settings = Settings.from_config({}, host="h")
    current = builds()
    up_to_date = Facts(images={tag: ImageFacts("sha256:1", build.context_hash)
                               for build in current.values()
                               for tag in (build.tag, build.content_tag)})
    assert all(isinstance(step, Unchanged) for step in image.plan_images(settings, up_to_date))
    stale = Facts(images={**up_to_date.images, current["server"].tag: None,
                          current["server"].content_tag: None})
    data_step, server_step = image.plan_images(settings, stale)
    assert isinstance(data_step, Unchanged) and isinstance(server_step, Change)
    assert server_step.notifies == ("image.server",)
    assert server_step.commands[0].stdin == current["server"].context_tar()
    assert server_step.would == "build ppc/pypicloud:1.3.12: it is missing"
    # Built by a release before content tags: built again (from the layer cache).
    untagged = Facts(images={**up_to_date.images, current["server"].content_tag: None})
    assert image.plan_images(settings, untagged)[1].would == (
        "build ppc/pypicloud:1.3.12: it has no content tag yet")
    forced = image.plan_images(settings, up_to_date, force=True)
    assert all(step.would.endswith("--rebuild") for step in forced)
    assert "--no-cache" in forced[0].commands[0].argv


def test_image_builds_come_from_docker_dir():
    data, server = builds()["data"], builds()["server"]
    assert data.tag == "ppc/pypicloud-data:1.3.12"
    assert "Dockerfile" in data.files and "pip-ca.pem" not in data.files
    assert server.files["pip-ca.pem"] == b"" and server.files["pip-index-url"] == b""
    assert b"pypicloud==1.3.12" in server.files["requirements.txt"]
    assert "ppc_guard/__init__.py" in server.files and "ppc_guard/hooks.py" in server.files
    assert server.build_args == {"BASE_IMAGE": "debian:bookworm-slim", "PYPICLOUD_UID": "10001"}


def test_context_hash_follows_build_options(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(open("/etc/ssl/certs/ca-certificates.crt", "rb").read())
    plain = builds()["server"].context_hash
    assert plain == builds()["server"].context_hash
    assert plain != builds(build_ca_bundle=str(bundle))["server"].context_hash
    assert plain != builds(build_index_url="https://mirror.example/simple")["server"].context_hash
    assert plain != builds(base_image="ubuntu:24.04")["server"].context_hash
    assert builds()["data"].context_hash == builds(build_ca_bundle=str(bundle))["data"].context_hash


@pytest.mark.parametrize("tag, content_tag", [
    ("ppc/pypicloud:1.3.12", "ppc/pypicloud:1.3.12-0123456789ab"),
    ("registry.example:5000/pypicloud", "registry.example:5000/pypicloud:latest-0123456789ab"),
    ("pypicloud", "pypicloud:latest-0123456789ab")])
def test_images_are_named_by_content_too(tag, content_tag):
    assert image.content_tag(tag, "0123456789abcdef") == content_tag


def test_context_tar_holds_every_file():
    server = builds()["server"]
    with tarfile.open(fileobj=io.BytesIO(server.context_tar())) as tar:
        assert sorted(tar.getnames()) == sorted(server.files)


def test_build_reads_its_context_from_stdin_and_labels_the_image():
    server = builds()["server"]
    argv = image.build_argv(server, no_cache=False)
    assert argv[:8] == ["docker", "build", "--label",
                        f"ppc-tasks.context-hash={server.context_hash}", "-t", "ppc/pypicloud:1.3.12",
                        "-t", f"ppc/pypicloud:1.3.12-{server.context_hash[:12]}"]
    assert "BASE_IMAGE=debian:bookworm-slim" in argv
    assert argv[-1] == "-"
    assert "--no-cache" in image.build_argv(server, no_cache=True)


def test_the_server_image_installs_a_lock_with_a_hash_for_every_package():
    server = builds()["server"]
    lock = server.files["requirements.txt"].decode()
    pins = re.findall(r"^([A-Za-z0-9._-]+)==(\S+) \\\n    --hash=sha256:([0-9a-f]{64})$", lock, re.M)
    requirements = [line for line in lock.splitlines() if line and not line.startswith(("#", " "))]
    assert len(pins) == len(requirements) > 30  # every one hashed, dependencies too
    wanted = {canonicalize_name(Requirement(line).name) for line in
              server.files["requirements.in"].decode().splitlines()
              if line and not line.startswith("#")}
    assert wanted <= {canonicalize_name(name) for name, _, _ in pins}
    assert ("pypicloud", "1.3.12") in {(name.lower(), version) for name, version, _ in pins}
    dockerfile = server.files["Dockerfile"].decode()
    assert "--require-hashes --no-deps --no-build-isolation" in dockerfile


def test_a_wheelhouse_goes_into_the_build_context_and_is_validated(tmp_path):
    assert builds()["server"].files["wheelhouse/.empty"] == b""
    (tmp_path / "six-1.17.0-py2.py3-none-any.whl").write_bytes(b"wheel")
    with_wheels = builds(build_wheelhouse=str(tmp_path))["server"]
    assert with_wheels.files["wheelhouse/six-1.17.0-py2.py3-none-any.whl"] == b"wheel"
    assert "wheelhouse/.empty" not in with_wheels.files
    assert with_wheels.context_hash != builds()["server"].context_hash
    with pytest.raises(SettingsError, match=r"ppc.build_wheelhouse: .* is no folder of wheels on "
                                            r"this machine \(make one with docker/lock"):
        builds(build_wheelhouse=str(tmp_path / "missing"))
