"""fab talks only to the hosts it knows: SSH host keys checked against known_hosts as
OpenSSH checks them, for a deploy, for many developer machines at once, for a user's
first connection and under StrictHostKeyChecking yes."""

from __future__ import annotations

import os
import subprocess

import pytest

from .conftest import FAB, REPO
from .test_clients import table


def regenerate_host_keys(host, systemd: bool = True) -> None:
    """What a rebuilt host (or a machine in between) presents: new keys."""
    restart = "systemctl restart ssh" if systemd else "kill -HUP $(cat /run/sshd.pid)"
    host.exec(f"rm -f /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null && {restart}")


def fab_as(home, *args: str, key) -> subprocess.CompletedProcess:
    environment = {"PATH": f"{FAB.parent}:/usr/bin:/bin", "HOME": str(home),
                   "LANG": os.environ.get("LANG", "C.UTF-8")}
    return subprocess.run([str(FAB), "-i", str(key), *args], cwd=REPO, capture_output=True,
                          text=True, env=environment, timeout=300)


def one_line_error(result) -> str:
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_changed_key_stops_a_deploy_before_anything_is_sent(start_host, fab, operator_home):
    host = start_host("rekeyed", kind="nodocker")
    regenerate_host_keys(host)
    known_hosts = operator_home / ".ssh" / "known_hosts"
    before = known_hosts.read_bytes()

    result = fab("deploy", host=host, settings={"server_names": ["rekeyed.test"]})

    error = one_line_error(result)
    assert error.startswith(f"Error on 127.0.0.1:{host.port}: the SSH host key of "
                            f"127.0.0.1:{host.port} has changed (ssh-ed25519 SHA256:"), error
    assert "known_hosts line " in error and "holds another): someone may be in between" in error
    assert f"ssh-keygen -R '[127.0.0.1]:{host.port}' -f ~/.ssh/known_hosts" in error
    assert known_hosts.read_bytes() == before  # nothing recorded, nothing accepted
    assert host.out("ls /etc/pypicloud /var/log/ppc-tasks 2>&1 || true").count("No such") == 2
    # As the message says: remove the line, run again, and the new key is recorded.
    subprocess.run(["ssh-keygen", "-R", f"[127.0.0.1]:{host.port}", "-f", str(known_hosts)],
                   check=True, capture_output=True)
    again = fab("audit", host=host, settings={"server_names": ["rekeyed.test"]})
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"[127.0.0.1:{host.port}] recorded its SSH host key (ssh-ed25519" in again.stderr


def test_one_rekeyed_client_fails_alone(start_host, fab, deployed):
    hosts = [start_host(f"keyed{number}", kind="client") for number in range(1, 4)]
    regenerate_host_keys(hosts[1], systemd=False)
    targets = ",".join(host.target for host in hosts)

    result = fab("clients.configure", host=targets, settings=deployed.settings())

    assert result.returncode == 1
    outcomes = table(result.stdout)
    assert [outcomes[host.target] for host in hosts] == ["changed", "failed", "changed"], result.stdout
    assert f"the SSH host key of 127.0.0.1:{hosts[1].port} has changed" in result.stdout
    assert hosts[1].exec("test -e /root/.pypirc", check=False).returncode == 1
    assert hosts[0].exec("test -e /root/.pypirc", check=False).returncode == 0


@pytest.fixture
def new_user(tmp_path, ssh_key, start_host):
    """A user who never connected to the host: no known_hosts at all."""
    host = start_host("first-contact", kind="client")
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    return home, host


def test_an_unknown_host_is_recorded_as_ssh_would_and_ssh_agrees(new_user, ssh_key):
    home, host = new_user
    first = fab_as(home, "-H", host.target, "audit", key=ssh_key)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "recorded its SSH host key (ssh-ed25519 SHA256:" in first.stderr
    known_hosts = home / ".ssh" / "known_hosts"
    assert oct(known_hosts.stat().st_mode & 0o777) == "0o600"
    again = fab_as(home, "-H", host.target, "audit", key=ssh_key)
    assert again.returncode == 0 and "recorded" not in again.stderr, again.stderr
    # OpenSSH reads what fab wrote, and trusts nothing else.
    ssh = subprocess.run(["ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=yes", "-o",
                          f"UserKnownHostsFile={known_hosts}", "-o", "BatchMode=yes", "-i",
                          str(ssh_key), "-p", str(host.port), "root@127.0.0.1", "true"],
                         capture_output=True, text=True)
    assert ssh.returncode == 0, ssh.stderr


def alias(home, name: str, host, *options: str) -> None:
    """An ~/.ssh/config entry for the host, as a user writes one."""
    lines = [f"Host {name}", "HostName 127.0.0.1", f"Port {host.port}", "User root", *options]
    (home / ".ssh" / "config").write_text("\n    ".join(lines) + "\n")


def test_strict_host_key_checking_refuses_an_unknown_host(new_user, ssh_key):
    home, host = new_user
    alias(home, "pypi-strict", host, "StrictHostKeyChecking yes")
    result = fab_as(home, "-H", "pypi-strict", "audit", key=ssh_key)
    error = one_line_error(result)
    assert error.startswith("Error on pypi-strict: the SSH host key of pypi-strict is not known "
                            "and ssh_config says StrictHostKeyChecking yes: check its "
                            "fingerprint (SHA256:"), error
    assert not (home / ".ssh" / "known_hosts").exists()


def test_a_host_key_alias_names_the_entry(new_user, ssh_key):
    home, host = new_user
    alias(home, "dev-box", host, "HostKeyAlias dev-box.internal", "HashKnownHosts no")
    first = fab_as(home, "-H", "dev-box", "audit", key=ssh_key)
    assert first.returncode == 0, first.stderr
    assert (home / ".ssh" / "known_hosts").read_text().startswith("dev-box.internal ssh-ed25519 ")
    regenerate_host_keys(host, systemd=False)
    changed = fab_as(home, "-H", "dev-box", "audit", key=ssh_key)
    assert "ssh-keygen -R 'dev-box.internal'" in one_line_error(changed)
