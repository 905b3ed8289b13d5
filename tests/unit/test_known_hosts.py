"""Which host we talk to: known_hosts read and written as OpenSSH does (ppc_tasks/known_hosts.py)."""

from __future__ import annotations

import base64
import dataclasses
import functools
import time
from types import SimpleNamespace

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from paramiko.hostkeys import HostKeys
from paramiko.message import Message

from ppc_tasks import known_hosts
from ppc_tasks.errors import TaskError

HOST_KEY = paramiko.RSAKey.generate(1024)
OTHER_KEY = paramiko.RSAKey.generate(1024)


def line(names: str, key=HOST_KEY, marker: str = "") -> str:
    return f"{marker + ' ' if marker else ''}{names} {key.get_name()} {key.get_base64()}\n"


def test_hosts_are_looked_up_as_openssh_names_them():
    assert known_hosts.lookup_name("pypi.example.com", 22) == "pypi.example.com"
    assert known_hosts.lookup_name("127.0.0.1", 2201) == "[127.0.0.1]:2201"
    assert known_hosts.lookup_name("10.0.0.5", 2201, alias="pypi-internal") == "pypi-internal"
    # OpenSSH lowercases the name first: a hashed line matches however it was typed.
    assert known_hosts.lookup_name("PyPI.Example.COM", 22) == "pypi.example.com"
    assert known_hosts.lookup_name("PyPI.Example.COM", 2201) == "[pypi.example.com]:2201"


def test_ssh_config_decides_files_strictness_and_hashing(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    default = known_hosts.policy_of({}, "h", 22)
    assert default.strict == "accept-new" and not default.hash_new
    assert default.user_files == (tmp_path / ".ssh/known_hosts", tmp_path / ".ssh/known_hosts2")
    assert default.global_files[0].as_posix() == "/etc/ssh/ssh_known_hosts"
    strict = known_hosts.policy_of({"stricthostkeychecking": "yes", "hashknownhosts": "yes",
                                    "userknownhostsfile": "~/kh/%h none",
                                    "globalknownhostsfile": "none", "hostkeyalias": "a"}, "h", 22)
    assert (strict.strict, strict.hash_new, strict.name) == ("yes", True, "a")
    assert strict.user_files == (tmp_path / "kh/h",) and strict.global_files == ()
    for value in ("no", "ask", "accept-new", "off"):  # a changed key is refused all the same
        assert known_hosts.policy_of({"stricthostkeychecking": value}, "h", 22).strict == "accept-new"


def test_entries_match_plain_hashed_wildcard_and_negated_names(tmp_path):
    path = tmp_path / "known_hosts"
    path.write_text("# a comment\n\n" + line("other.example") + line("[127.0.0.1]:2201")
                    + line(HostKeys.hash_host("pypi.example.com"), OTHER_KEY)
                    + line("*.internal,!db.internal") + line("garbage")
                    + line("@cert-authority *.example.com")
                    + line("pypi.example.com", marker="@revoked"))
    assert [e.line for e in known_hosts.read_entries(path, "[127.0.0.1]:2201")] == [4]
    found = known_hosts.read_entries(path, "pypi.example.com")
    assert [(e.line, e.key == OTHER_KEY, e.marker) for e in found] == [
        (5, True, ""), (8, False, "@cert-authority"), (9, False, "@revoked")]
    assert [e.line for e in known_hosts.read_entries(path, "pypi.internal")] == [6]
    assert known_hosts.read_entries(path, "db.internal") == []
    assert known_hosts.read_entries(tmp_path / "missing", "x") == []


def connection(tmp_path, ssh_config: dict, host="127.0.0.1", port=2201):
    return SimpleNamespace(ssh_config={"userknownhostsfile": str(tmp_path / "known_hosts"),
                                       "globalknownhostsfile": "none", **ssh_config},
                           host=host, port=port, client=paramiko.SSHClient(), gateway=None,
                           connect_kwargs={})


def test_recorded_keys_reach_paramiko_under_its_own_name(tmp_path):
    (tmp_path / "known_hosts").write_text(line("pypi-internal"))
    conn = connection(tmp_path, {"hostkeyalias": "pypi-internal"})
    known_hosts.prepare(conn, "pypi-internal")
    assert conn.client.get_host_keys().lookup("[127.0.0.1]:2201")[HOST_KEY.get_name()] == HOST_KEY


def test_an_unknown_host_is_recorded_unless_strict(tmp_path, capsys):
    conn = connection(tmp_path, {"hashknownhosts": "yes"})
    policy = known_hosts.prepare(conn, "dev1")
    conn.client._policy.missing_host_key(conn.client, "[127.0.0.1]:2201", HOST_KEY)
    written = (tmp_path / "known_hosts").read_text()
    assert written.startswith("|1|") and (tmp_path / "known_hosts").stat().st_mode & 0o777 == 0o600
    assert [e.key for e in known_hosts.read_entries(policy.user_files[0], policy.name)] == [HOST_KEY]
    assert "recorded its SSH host key" in capsys.readouterr().err

    strict = connection(tmp_path / "other", {"stricthostkeychecking": "yes"})
    known_hosts.prepare(strict, "dev2")
    with pytest.raises(known_hosts.UnknownHostKey, match="^the SSH host key of dev2 is not known"):
        strict.client._policy.missing_host_key(strict.client, "[127.0.0.1]:2201", HOST_KEY)
    assert not (tmp_path / "other").exists()


def test_a_changed_key_names_the_line_to_fix(tmp_path):
    (tmp_path / "known_hosts").write_text(line("x") + line("[127.0.0.1]:2201", OTHER_KEY))
    conn = connection(tmp_path, {})
    known_hosts.prepare(conn, "pypi-internal")
    error = known_hosts.changed_key_error(conn, "pypi-internal", paramiko.BadHostKeyException(
        "127.0.0.1", HOST_KEY, OTHER_KEY))
    assert isinstance(error, TaskError)
    assert str(error).startswith("the SSH host key of pypi-internal has changed (ssh-rsa SHA256:")
    assert f"{tmp_path}/known_hosts line 2 holds another" in str(error)
    assert f"ssh-keygen -R '[127.0.0.1]:2201' -f {tmp_path}/known_hosts" in str(error)


def test_a_revoked_key_is_refused_before_login_whatever_else_records_it(tmp_path):
    (tmp_path / "known_hosts").write_text(line("[127.0.0.1]:2201")
                                          + line("[127.0.0.1]:2201", marker="@revoked"))
    conn = connection(tmp_path, {})
    known_hosts.prepare(conn, "dev1")
    assert conn.client.get_host_keys().lookup("[127.0.0.1]:2201") is None  # not accepted...
    with pytest.raises(known_hosts.RefusedHostKey, match="^the SSH host key of dev1 .* is "
                       f"revoked in {tmp_path}/known_hosts line 2: do not use this host"):
        conn.client._policy.missing_host_key(conn.client, "[127.0.0.1]:2201", HOST_KEY)
    assert (tmp_path / "known_hosts").read_text().count("\n") == 2  # ...nor recorded again


def test_a_host_only_a_certificate_authority_vouches_for_is_not_trusted_on_first_use(tmp_path):
    (tmp_path / "known_hosts").write_text(line("@cert-authority [127.0.0.1]:*", OTHER_KEY))
    conn = connection(tmp_path, {})
    known_hosts.prepare(conn, "dev1")
    # Only host certificates are asked for (OpenSSH asks for them first)...
    assert conn.connect_kwargs["transport_factory"] is known_hosts.certificates_only
    with pytest.raises(known_hosts.RefusedHostKey, match="^known_hosts vouches for dev1 only "
                       "through an SSH certificate authority .* and it presents no host "
                       "certificate"):  # ...and a plain key is never taken on trust
        conn.client._policy.missing_host_key(conn.client, "[127.0.0.1]:2201", HOST_KEY)
    assert (tmp_path / "known_hosts").read_text().count("\n") == 1


NOW = time.time()


def paramiko_key(public) -> paramiko.PKey:
    kind, data = public.public_bytes(serialization.Encoding.OpenSSH,
                                     serialization.PublicFormat.OpenSSH).split()[:2]
    return paramiko.PKey.from_type_string(kind.decode(), base64.b64decode(data))


def presented(authority, principals=(b"127.0.0.1",), kind=serialization.SSHCertificateType.HOST,
              valid=(NOW - 60, NOW + 3600)) -> paramiko.PKey:
    """A host key as paramiko has it from a host that presents a certificate."""
    builder = (serialization.SSHCertificateBuilder()
               .public_key(ed25519.Ed25519PrivateKey.generate().public_key())
               .serial(1).key_id(b"host").type(kind)
               .valid_after(int(valid[0])).valid_before(int(valid[1])))
    builder = builder.valid_principals(list(principals)) if principals else \
        builder.valid_for_all_principals()
    certificate = builder.sign(authority)
    data = certificate.public_bytes().split()[1]
    return paramiko.Ed25519Key(msg=Message(base64.b64decode(data)))


def test_a_host_certificate_is_checked_as_openssh_checks_it(tmp_path):
    authority, other = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    vouching = known_hosts.Entry(tmp_path / "known_hosts", 1, ("*",),
                                 paramiko_key(authority.public_key()), "@cert-authority")
    check = functools.partial(known_hosts.certificate_problem, entries=[vouching],
                              name="127.0.0.1", now=NOW)
    assert check(presented(authority)) is None
    assert check(presented(authority, principals=())) is None  # no principals: any host
    assert check(presented(other)) == "its certificate is signed by another authority"
    assert check(presented(authority, principals=(b"db.internal",))) == \
        "its certificate is for db.internal, not 127.0.0.1"
    assert check(presented(authority, valid=(NOW - 7200, NOW - 3600))) == \
        "its certificate is expired or not valid yet"
    assert check(presented(authority, kind=serialization.SSHCertificateType.USER)) == \
        "its certificate is a user's, not a host's"
    assert check(HOST_KEY) == "it presents no host certificate"
    revoked = dataclasses.replace(vouching, line=2, marker="@revoked")
    assert known_hosts.certificate_problem(presented(authority), [vouching, revoked], "127.0.0.1",
                                           NOW).startswith("the authority that signed its "
                                                           "certificate is revoked in ")
    assert known_hosts.principal("[127.0.0.1]:2201") == "127.0.0.1"


def test_a_name_typed_in_another_case_finds_its_hashed_line(tmp_path):
    (tmp_path / "known_hosts").write_text(line(HostKeys.hash_host("[dev-box.example]:2201")))
    conn = connection(tmp_path, {}, host="Dev-Box.EXAMPLE")
    known_hosts.prepare(conn, "Dev-Box.EXAMPLE")
    paramiko_name = "[Dev-Box.EXAMPLE]:2201"  # as paramiko looks it up
    assert conn.client.get_host_keys().lookup(paramiko_name)[HOST_KEY.get_name()] == HOST_KEY
