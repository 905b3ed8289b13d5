"""The host scripts of files/sh/, run on local files as the host layer runs them there."""

import os
import subprocess
import time

import pytest

from ppc_tasks.render import script_argv
from tests.unit.scripts import run_script


def test_as_root_says_how_and_runs_the_command_in_the_same_go():
    # The tests run as root; sudo's answers are proved on real hosts (test_preview.py:
    # with and without a password; test_errors.py: no sudo at all).
    assert run_script("as-root").stdout == b"0:0 root\n"
    both = run_script("as-root", "sh", "-c", 'echo "ran $1"', "sh", "a b")
    assert both.stdout == b"0:0 root\nran a b\n"


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


def test_followed_logs_end_with_the_caller(tmp_path):
    """logs.sh --follow runs until its caller hangs up (its stdin ends with the SSH
    connection): then its followers end too, instead of waiting for their next line."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "docker").write_text(f'#!/bin/sh\necho $$ > {tmp_path}/follower\n'
                                 f'echo "a line"\nexec sleep 600\n')
    (fake / "docker").chmod(0o755)
    following = subprocess.Popen(script_argv("logs", "pypicloud", "1", "", "1"),
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 env={**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"})
    assert following.stdout.readline() == b"pypicloud | a line\n"
    follower = int((tmp_path / "follower").read_text())
    following.stdin.close()  # the caller hangs up
    assert following.wait(timeout=10) == 0
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(follower, 0)
