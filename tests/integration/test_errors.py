"""Expected failures end with one clear line, a non-zero exit and no traceback."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading

import pytest

from . import harness
from .conftest import SYSTEM_CA_BUNDLE


def settings(operator_home) -> dict:
    return {"server_names": ["pypi.test"], "build_ca_bundle": SYSTEM_CA_BUNDLE,
            "state_dir": str(operator_home / "state-errors")}


def assert_one_line_error(result: subprocess.CompletedProcess, *expected: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for text in expected:
        assert text in lines[0]


@pytest.fixture(scope="module")
def plain_host(start_host):
    """A host with sshd but no Docker at all."""
    host = start_host("no-docker", kind="client")
    host.exec("useradd -m dev && mkdir -p ~dev/.ssh && cp /root/.ssh/authorized_keys ~dev/.ssh/ "
              "&& chown -R dev ~dev/.ssh")
    return host


def test_bad_setting_is_rejected_before_connecting(fab, operator_home):
    with harness.closed_port() as port:
        result = fab("deploy", host=f"root@127.0.0.1:{port}",
                     settings={**settings(operator_home), "port": 70000})
    assert_one_line_error(result, "ppc.port", "70000")


def test_unknown_setting_is_named(fab, operator_home):
    result = fab("deploy", host="root@127.0.0.1:1",
                 settings={**settings(operator_home), "admin": ["x"]})
    assert_one_line_error(result, "ppc.admin", "unknown setting")


@pytest.mark.parametrize("variable, value, expected", [
    ("FABRIC_PPC_PORT", "x", "ppc.port: must be a whole number from 1 to 65534, got 'x'"),
    ("FABRIC_PPC_ADMINS", " ,", "ppc.admins: give at least one admin"),
    ("FABRIC_PPC_CA_NAME_CONSTRAINTS", "maybe", "ppc.ca_name_constraints: must be true or false"),
    ("FABRIC_PPC_SERVERNAMES", "pypi.test", "FABRIC_PPC_SERVERNAMES: no such setting"),
    ("FABRIC_PPC_CONFIG_DIR", "/etc/py:pi", "ppc.config_dir: must be an absolute path"),
])
def test_environment_variables_are_validated_too(fab, operator_home, variable, value, expected):
    result = fab("deploy", host="root@127.0.0.1:1", settings=settings(operator_home),
                 env={variable: value})
    assert_one_line_error(result, expected)


@pytest.mark.parametrize("task", ["deploy", "clients.configure", "clients.unconfigure"])
def test_a_hostile_server_name_never_runs(fab, operator_home, task):
    hostile = "fe80::1%$(touch${IFS}/tmp/pwned)"
    result = fab(task, host="root@127.0.0.1:1",
                 settings={**settings(operator_home), "server_names": [hostile]})
    assert_one_line_error(result, f"ppc.server_names: {hostile!r} is not a DNS name or IP address")


def test_unreachable_host(fab, operator_home):
    with harness.closed_port() as port:
        result = fab("deploy", host=f"root@127.0.0.1:{port}", settings=settings(operator_home))
    assert_one_line_error(result, "cannot reach", f"127.0.0.1:{port}")


def test_a_port_that_is_not_ssh(fab, operator_home):
    """Something answers, but not SSH (a proxy, another service): one line, no traceback."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        def close_every_connection():
            with contextlib.suppress(OSError):  # until the listener closes
                while True:
                    listener.accept()[0].close()

        threading.Thread(target=close_every_connection, daemon=True).start()
        result = fab("deploy", host=f"root@127.0.0.1:{port}", settings=settings(operator_home))
    assert_one_line_error(result, f"cannot reach 127.0.0.1:{port} over SSH")


def test_refused_key(fab, plain_host, operator_home, tmp_path):
    other_key = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True)
    result = fab("deploy", host=plain_host, settings=settings(operator_home), key=other_key)
    assert_one_line_error(result, "refused", "root@")


def test_user_without_sudo(fab, plain_host, operator_home):
    result = fab("deploy", host=f"dev@127.0.0.1:{plain_host.port}", settings=settings(operator_home))
    assert_one_line_error(result, "dev@", "sudo")


def test_docker_missing(fab, plain_host, operator_home):
    result = fab("deploy", host=plain_host, settings=settings(operator_home))
    assert_one_line_error(result, "Docker is not installed")


def test_port_taken_fails_before_changing_anything(fab, bare_host, operator_home):
    host = bare_host
    host.exec("nohup python3 -m http.server 3031 --bind 127.0.0.1 >/dev/null 2>&1 &")
    try:
        harness.wait_for(lambda: host.exec("grep -q ':0BD7 00000000:0000 0A' /proc/net/tcp",
                                           check=False).returncode == 0, "a listener on 3031")
        result = fab("deploy", host=host, settings=settings(operator_home))
    finally:  # the bare host is shared: leave it as it was
        host.exec("pkill -f '[h]ttp.server 3031'")

    assert_one_line_error(result, "port 3031", "in use")
    assert host.out("docker images -q 'ppc/*'") == ""
    assert host.out("docker ps -aq") == ""


@pytest.mark.parametrize("damage, expected", [
    ("secrets.json", "secrets.json is not valid JSON (line 1"),
    ("ca.key", "ca.key cannot be read (damaged?)"),
])
def test_damaged_local_state_is_one_line_and_changes_nothing(fab, deployed, operator_home,
                                                             tmp_path, damage, expected):
    state = tmp_path / "state"
    shutil.copytree(operator_home / "state", state)
    (state / "pypi.test" / damage).write_text("{ damaged")
    config = deployed.host.out("stat -c %Y /etc/pypicloud/config.ini")

    result = fab("deploy", host=deployed.host, settings=deployed.settings(state_dir=str(state)))

    assert_one_line_error(result, expected)
    assert deployed.host.out("stat -c %Y /etc/pypicloud/config.ini") == config
