"""fab talks only to the hosts it knows: SSH host keys checked against known_hosts as
OpenSSH checks them, for a deploy, for many developer machines at once, for a user's
first connection and under StrictHostKeyChecking yes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import paramiko
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


def host_key_line(host) -> str:
    """The host's ed25519 key, as a known_hosts line ends: `ssh-ed25519 AAAA...`."""
    return " ".join(host.out("cat /etc/ssh/ssh_host_ed25519_key.pub").split()[:2])


def test_a_name_typed_in_another_case_is_the_same_host(new_user, ssh_key):
    """OpenSSH lowercases a name before it looks it up: so does fab, hashed lines too."""
    home, host = new_user
    (home / ".ssh" / "config").write_text("Host *\n    HashKnownHosts yes\n")
    first = fab_as(home, "-H", f"root@localhost:{host.port}", "audit", key=ssh_key)
    assert first.returncode == 0 and "recorded" in first.stderr, first.stderr
    known_hosts = home / ".ssh" / "known_hosts"
    recorded = known_hosts.read_text()
    assert recorded.startswith("|1|"), recorded
    for spelled in ("LOCALHOST", "LocalHost"):
        again = fab_as(home, "-H", f"root@{spelled}:{host.port}", "audit", key=ssh_key)
        assert again.returncode == 0 and "recorded" not in again.stderr, again.stderr
    assert known_hosts.read_text() == recorded
    ssh = subprocess.run(["ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=yes", "-o",
                          f"UserKnownHostsFile={known_hosts}", "-o", "BatchMode=yes", "-i",
                          str(ssh_key), "-p", str(host.port), "root@LOCALHOST", "true"],
                         capture_output=True, text=True)
    assert ssh.returncode == 0, ssh.stderr  # and OpenSSH agrees


@pytest.fixture
def jump(new_user, start_host):
    """The new user's ~/.ssh/config: a target host reached through a ProxyJump host."""
    home, target = new_user
    jump_host = start_host("jump", kind="client")
    (home / ".ssh" / "config").write_text(
        f"Host target\n    HostName {target.address}\n    User root\n    ProxyJump jump\n"
        f"Host jump\n    HostName 127.0.0.1\n    Port {jump_host.port}\n    User root\n")
    return home, jump_host, target


def test_a_proxyjump_host_is_checked_as_the_host_is(jump, ssh_key):
    home, jump_host, target = jump
    first = fab_as(home, "-H", "target", "audit", key=ssh_key)
    assert first.returncode == 0, first.stdout + first.stderr
    known_hosts = home / ".ssh" / "known_hosts"
    recorded = paramiko.HostKeys(str(known_hosts))  # both, hashed as Debian's ssh_config says
    assert len(recorded) == 2 and recorded.lookup(f"[127.0.0.1]:{jump_host.port}") \
        and recorded.lookup(target.address), known_hosts.read_text()
    # The jump host's key revoked (on a line of its own, the plain one kept): refused
    # before fab logs in to it, and so before the target sees anything.
    with known_hosts.open("a") as lines:
        lines.write(f"@revoked * {host_key_line(jump_host)}\n")
    revoked = fab_as(home, "-H", "target", "audit", key=ssh_key)
    error = one_line_error(revoked)
    assert "the SSH host key of target's ProxyJump jump (SHA256:" in error, error
    assert "is revoked in ~/.ssh/known_hosts line 3: do not use this host" in error, error


def certify(host, authority: Path, principals: str | None) -> None:
    """Sign the host's ed25519 key with the SSH CA for `principals` and have its sshd
    present the certificate (None: present none)."""
    public = authority.parent / "host.pub"
    public.write_text(host.out("cat /etc/ssh/ssh_host_ed25519_key.pub") + "\n")
    certificate = authority.parent / "host-cert.pub"
    certificate.unlink(missing_ok=True)
    if principals is not None:
        subprocess.run(["ssh-keygen", "-q", "-s", str(authority), "-I", "test-host", "-h", "-n",
                        principals, "-V", "-5m:+1h", str(public)], check=True)
        host.exec("cat > /etc/ssh/ssh_host_ed25519_key-cert.pub", input=certificate.read_bytes())
    host.exec("sed -i '/^HostCertificate/d' /etc/ssh/sshd_config" + (
        " && echo 'HostCertificate /etc/ssh/ssh_host_ed25519_key-cert.pub' >> /etc/ssh/sshd_config"
        if principals is not None else "") + " && kill -HUP $(cat /run/sshd.pid) && sleep 1")


def test_a_host_a_certificate_authority_vouches_for_shows_its_certificate(new_user, ssh_key,
                                                                           tmp_path):
    """As OpenSSH: the host's certificate, signed by the authority known_hosts names, for
    its name, valid now; never a plain key taken on trust, nothing recorded."""
    home, host = new_user
    known_hosts = home / ".ssh" / "known_hosts"
    authority = tmp_path / "ssh-ca"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(authority)], check=True)
    vouching = " ".join((tmp_path / "ssh-ca.pub").read_text().split()[:2])
    known_hosts.write_text(f"@cert-authority [127.0.0.1]:* {vouching}\n")

    certify(host, authority, "127.0.0.1")
    checked = fab_as(home, "-H", host.target, "audit", key=ssh_key)
    assert checked.returncode == 0 and "recorded" not in checked.stderr, checked.stderr
    assert known_hosts.read_text().count("\n") == 1
    ssh = subprocess.run(["ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=yes", "-o",
                          f"UserKnownHostsFile={known_hosts}", "-o", "BatchMode=yes", "-i",
                          str(ssh_key), "-p", str(host.port), "root@127.0.0.1", "true"],
                         capture_output=True, text=True)
    assert ssh.returncode == 0, ssh.stderr  # and OpenSSH agrees

    for principals, problem in (("db.internal", "its certificate is for db.internal, not 127.0.0.1"),
                                (None, "it presents no host certificate")):
        certify(host, authority, principals)
        refused = fab_as(home, "-H", host.target, "audit", key=ssh_key)
        error = one_line_error(refused)
        assert (f"known_hosts vouches for 127.0.0.1:{host.port} only through an SSH "
                f"certificate authority (~/.ssh/known_hosts line 1), and {problem}") in error, error
        assert known_hosts.read_text().count("\n") == 1  # nothing taken on trust
