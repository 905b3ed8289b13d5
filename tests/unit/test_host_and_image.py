import io
import tarfile

from ppc_tasks import image
from ppc_tasks.host import FileState, file_state_command, install_command, parse_file_state
from ppc_tasks.settings import Settings


def test_file_state_parses_stat_and_sha256sum():
    output = "600 10001:10001\nabc123  /etc/pypicloud/config.ini\n"
    assert parse_file_state(output) == FileState("abc123", "600", "10001:10001")
    assert parse_file_state("") is None
    assert "sha256sum '/etc/my dir/x'" in file_state_command("/etc/my dir/x")


def test_install_is_atomic_with_mode_and_owner_set_first():
    command = install_command("/tmp/x/upload", "/etc/pypicloud/config.ini", "600", "10001:10001")
    assert command == ("mkdir -p /etc/pypicloud && "
                       "install -m 600 -o 10001 -g 10001 /tmp/x/upload /etc/pypicloud/config.ini.ppc-new && "
                       "mv -f /etc/pypicloud/config.ini.ppc-new /etc/pypicloud/config.ini")


def builds(**ppc):
    return {b.role: b for b in image.image_builds(Settings.from_config(ppc, host="h"))}


def test_image_builds_come_from_docker_dir():
    data, server = builds()["data"], builds()["server"]
    assert data.tag == "ppc/pypicloud-data:1.3.12"
    assert "Dockerfile" in data.files and "pip-ca.pem" not in data.files
    assert server.files["pip-ca.pem"] == b"" and server.files["pip-index-url"] == b""
    assert b"pypicloud==1.3.12" in server.files["requirements.txt"]
    assert server.build_args == {"BASE_IMAGE": "debian:bookworm-slim", "PYPICLOUD_UID": "10001"}


def test_context_hash_follows_build_options(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    plain = builds()["server"].context_hash
    assert plain == builds()["server"].context_hash
    assert plain != builds(build_ca_bundle=str(bundle))["server"].context_hash
    assert plain != builds(build_index_url="https://mirror.example/simple")["server"].context_hash
    assert plain != builds(base_image="ubuntu:24.04")["server"].context_hash
    assert builds()["data"].context_hash == builds(build_ca_bundle=str(bundle))["data"].context_hash


def test_context_tar_holds_every_file():
    server = builds()["server"]
    with tarfile.open(fileobj=io.BytesIO(server.context_tar())) as tar:
        assert sorted(tar.getnames()) == sorted(server.files)


def test_build_command_labels_the_image():
    server = builds()["server"]
    command = image.build_command(server, "/tmp/ctx", no_cache=False)
    assert command.startswith(f"docker build --label ppc-tasks.context-hash={server.context_hash} "
                              "-t ppc/pypicloud:1.3.12 ")
    assert "--build-arg BASE_IMAGE=debian:bookworm-slim" in command
    assert command.endswith(" /tmp/ctx")
    assert "--no-cache" in image.build_command(server, "/tmp/ctx", no_cache=True)
