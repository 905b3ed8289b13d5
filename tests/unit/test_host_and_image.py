import io
import os
import re
import shlex
import subprocess
import tarfile

import pytest

from ppc_tasks import facts as facts_module
from ppc_tasks import image
from ppc_tasks.apply import audit_line
from ppc_tasks.cli import namespace
from ppc_tasks.facts import Facts, FileState, ImageFacts
from ppc_tasks.plan import Change, Unchanged
from ppc_tasks.render import script, script_argv
from ppc_tasks.settings import Settings, SettingsError
from ppc_tasks.ssh import command_line, last_lines, shown


def run_script(name: str, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    """A files/sh script run here, as the host layer runs it there."""
    return subprocess.run(script_argv(name, *args), input=stdin, capture_output=True)


def test_commands_are_quoted_and_go_through_sudo_only_when_needed():
    argv = ["docker", "rm", "--force", "x; touch /tmp/pwned"]
    assert command_line(argv, as_root=False, sudo="nopasswd") == "docker rm --force 'x; touch /tmp/pwned'"
    assert command_line(argv, as_root=True, sudo="root") == shlex.join(argv)
    assert command_line(argv, as_root=True, sudo="nopasswd") == "sudo -n -- " + shlex.join(argv)
    # The password goes on stdin, never on the command line.
    assert command_line(argv, as_root=True, sudo="password") == "sudo -S -k -p '' -- " + shlex.join(argv)
    assert shlex.split(command_line(argv, as_root=True, sudo="nopasswd"))[3:] == argv


def test_scripts_are_shown_by_name_and_long_commands_cut():
    assert shown(script_argv("put-file", "/etc/x", "600")) == "put-file /etc/x 600"
    # A script handed to another as an argument is shown by its name too.
    assert shown(script_argv("put-checked", script("put-file"), "/etc/x", "644", "nginx", "-t"),
                 limit=None) == "put-checked put-file /etc/x 644 nginx -t"
    assert len(shown(["docker", "run", "x" * 200])) == 120
    assert len(shown(["docker", "run", "x" * 200], limit=None)) == 211


def test_as_root_says_how_and_runs_the_command_in_the_same_go():
    # The tests run as root; sudo's answers are proved on real hosts (test_preview.py:
    # with and without a password; test_errors.py: no sudo at all).
    assert run_script("as-root").stdout == b"0:0 root\n"
    both = run_script("as-root", "sh", "-c", 'echo "ran $1"', "sh", "a b")
    assert both.stdout == b"0:0 root\nran a b\n"


def probe(*queries: str) -> Facts:
    """facts.sh run here, on local files, as the host layer runs it there."""
    result = run_script("facts", *facts_module.probe_args(queries))
    assert result.returncode == 0, result.stderr
    return facts_module.parse(result.stdout.decode())


def test_facts_of_a_file_a_directory_and_nothing(tmp_path):
    path = tmp_path / "config.ini"
    path.write_bytes(b"hello")
    path.chmod(0o640)
    copy = tmp_path / "copy.ini"
    copy.write_bytes(b"hello")
    copy.chmod(0o640)
    facts = probe(f"file={path}", f"text={copy}", f"file={tmp_path}", f"text={tmp_path / 'none'}",
                  "platform")
    state = FileState("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
                      "640", f"{os.getuid()}:{os.getgid()}")
    assert facts.file(str(path)).state == state and facts.file(str(path)).content is None
    assert facts.file(str(copy)).state == state and facts.file(str(copy)).content == b"hello"
    assert facts.file(str(tmp_path)).is_directory
    assert facts.file(str(tmp_path / "none")).state is None
    assert facts.platform is not None and facts.user_ids == f"{os.getuid()}:{os.getgid()}"


def test_text_facts_carry_the_content_and_home_is_the_users(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".pypirc").write_bytes(b"[distutils]\nindex-servers =\n    company\n")
    facts = probe("text=~/.pypirc", "text=~/.config/pip/pip.conf", "platform")
    assert facts.file("~/.pypirc").content == b"[distutils]\nindex-servers =\n    company\n"
    assert facts.file("~/.config/pip/pip.conf").state is None
    assert facts.home == str(tmp_path)


def test_listening_ports_come_from_proc_net_tcp():
    facts = facts_module.parse(facts_module.PORTS.answer("", "0BD7 01BB ") + "\n")
    assert facts.ports == {3031, 443}


def test_put_file_is_private_from_the_start_and_keeps_the_previous(tmp_path):
    path = tmp_path / "etc" / "config.ini"
    assert run_script("put-file", str(path), "600", "", "", stdin=b"one").returncode == 0
    assert path.read_bytes() == b"one" and oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o755"  # a folder others may enter

    assert run_script("put-file", str(path), "644", "", "keep", stdin=b"two").returncode == 0
    assert path.read_bytes() == b"two" and oct(path.stat().st_mode & 0o777) == "0o644"
    assert (tmp_path / "etc" / "config.ini.ppc-previous").read_bytes() == b"one"
    assert run_script("restore-previous", str(path)).returncode == 0
    assert path.read_bytes() == b"one"
    assert not (tmp_path / "etc" / "config.ini.ppc-previous").exists()


def test_put_file_repairs_the_directory_docker_made_in_place_of_a_file(tmp_path):
    path = tmp_path / "config.ini"
    path.mkdir()
    assert run_script("put-file", str(path), "600", stdin=b"x").returncode == 0
    assert path.read_bytes() == b"x"
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "something").write_text("")
    refused = run_script("put-file", str(tmp_path / "full"), "600", stdin=b"x")
    assert refused.returncode != 0 and b"is a directory" in refused.stderr


def test_backup_is_made_once_and_restored(tmp_path):
    path = tmp_path / ".pypirc"
    path.write_text("original")
    run_script("backup-once", str(path))
    path.write_text("ours")
    run_script("backup-once", str(path))
    assert (tmp_path / ".pypirc.ppc-tasks-backup").read_text() == "original"
    assert run_script("restore-backup", str(path)).stdout == b"restored\n"
    assert path.read_text() == "original"
    assert run_script("restore-backup", str(path)).stdout == b"removed\n"
    assert not path.exists()
    assert run_script("restore-backup", str(path)).stdout == b""


def test_a_file_configure_created_is_never_taken_for_an_original(tmp_path):
    path = tmp_path / "pip" / "pip.conf"  # not even its folder yet
    run_script("backup-once", str(path))  # there is none yet: noted
    path.write_text("ours")
    run_script("backup-once", str(path))  # a later change (say, a new password)
    path.write_text("ours, changed")
    assert not (tmp_path / "pip" / "pip.conf.ppc-tasks-backup").exists()
    assert run_script("restore-backup", str(path)).stdout == b"removed\n"
    assert list((tmp_path / "pip").iterdir()) == []


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


def test_audit_lines_are_one_line_and_name_no_secret():
    import datetime
    line = audit_line(datetime.datetime(2026, 11, 25, 16, 0, tzinfo=datetime.timezone.utc),
                      "ops@laptop", "deploy", "sha256:abc", "failed: two\nlines", ["a", "b"])
    assert line == ("2026-11-25T16:00:00Z operator=ops@laptop task=deploy settings=sha256:abc "
                    "result=failed: two lines changed=a,b")


def test_the_scripts_get_the_labels_and_tag_width_from_one_definition():
    from ppc_tasks import docker
    from ppc_tasks.render import script
    for name in ("facts", "retire"):  # none written again in a script
        assert "ppc-tasks." not in script(name) and "[0-9a-f]" * 2 not in script(name)
    assert facts_module.probe_args(["docker"]) == [docker.CONTEXT_LABEL, docker.SPEC_LABEL, "docker"]


def test_the_server_image_installs_a_lock_with_a_hash_for_every_package():
    server = builds()["server"]
    lock = server.files["requirements.txt"].decode()
    pins = re.findall(r"^([A-Za-z0-9._-]+)==(\S+) \\\n    --hash=sha256:([0-9a-f]{64})$", lock, re.M)
    requirements = [line for line in lock.splitlines() if line and not line.startswith(("#", " "))]
    assert len(pins) == len(requirements) > 30  # every one hashed, dependencies too
    wanted = {line.split("==")[0].split("<")[0].lower() for line in
              server.files["requirements.in"].decode().splitlines()
              if line and not line.startswith("#")}
    assert wanted <= {name.lower() for name, _, _ in pins}
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


def test_failure_lines_leave_out_colours_and_dockers_echo_of_the_run_line():
    output = ("Expected sha256 4721\nGot        1793\n"
              "\x1b[0mThe command '/bin/sh -c set -e; pip install' returned a non-zero code: 1\n")
    assert last_lines(output) == "Expected sha256 4721 | Got        1793"


def test_reload_nginx_records_the_files_nginx_has_read(tmp_path):
    site, certificate = tmp_path / "site.conf", tmp_path / "server.crt"
    site.write_text("server {}\n")
    certificate.write_text("-----BEGIN CERTIFICATE-----\n")
    loaded = tmp_path / "state" / "nginx-loaded"
    ran = run_script("reload-nginx", str(loaded), str(site), str(certificate), "--",
                     "touch", str(tmp_path / "reloaded"))
    assert ran.returncode == 0 and (tmp_path / "reloaded").exists()
    assert loaded.read_text() == subprocess.run(["sha256sum", "--", str(site), str(certificate)],
                                                capture_output=True, text=True).stdout
    failed = run_script("reload-nginx", str(loaded), str(site), "--", "false")
    assert failed.returncode != 0 and str(site) in loaded.read_text()  # record kept as it was
    assert str(certificate) in loaded.read_text()


def test_every_task_option_has_a_help_line():
    """`fab --help TASK` explains each option, not only the docstring."""
    def tasks(collection, prefix=""):
        yield from ((prefix + name, task) for name, task in collection.tasks.items())
        for name, child in collection.collections.items():
            yield from tasks(child, f"{prefix}{name}.")

    bare = {name: [argument.name for argument in task.get_arguments() if not argument.help]
            for name, task in tasks(namespace)}
    assert {name: options for name, options in bare.items() if options} == {}
