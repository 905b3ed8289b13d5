import contextlib
import datetime
import socket
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from ppc_tasks import certificates
from ppc_tasks.errors import TaskError
from ppc_tasks.facts import Facts, FileFacts, FileState
from ppc_tasks.plans import certs
from ppc_tasks.settings import Settings
from ppc_tasks.system import parse_platform

NOW = datetime.datetime.now(datetime.timezone.utc)
NAMES = ("pypi.example.com", "pypi-internal", "10.1.2.3")


@pytest.fixture(scope="module")
def ca():
    return certs.new_ca(NAMES, constrained=True, now=NOW)


@pytest.fixture(scope="module")
def server_cert(ca):
    return certs.new_server_certificate(*ca, NAMES, NOW)


def extension(certificate, kind):
    return certificate.extensions.get_extension_for_class(kind)


def test_ca_follows_mkcert(ca):
    certificate, key = ca
    basic = extension(certificate, x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 0
    usage = extension(certificate, x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    assert extension(certificate, x509.SubjectKeyIdentifier).value.digest
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert 3649 <= lifetime.days <= 3651
    assert certificate.serial_number > 2**64
    assert key.key_size == 3072


def test_ca_is_limited_to_the_index_names(ca):
    constraints = extension(ca[0], x509.NameConstraints)
    assert constraints.critical
    assert x509.DNSName("pypi.example.com") in constraints.value.permitted_subtrees
    assert certificates.ca_permits(ca[0], ("pypi.example.com", "sub.pypi-internal", "10.1.2.3"))
    assert not certificates.ca_permits(ca[0], ("www.example.com",))
    assert not certificates.ca_permits(ca[0], ("10.1.2.4",))


def test_a_ca_without_ip_names_may_sign_no_ip():
    constraints = certs.name_constraints(("pypi.example.com",))
    assert {str(subtree.value) for subtree in constraints.excluded_subtrees} == {"0.0.0.0/0", "::/0"}


def test_a_ca_without_dns_names_may_sign_no_dns_name():
    constraints = certs.name_constraints(("10.1.2.3",))
    assert constraints.excluded_subtrees == [x509.DNSName("")]  # "": every DNS name
    mixed = certs.name_constraints(("pypi.example.com", "10.1.2.3"))
    assert not mixed.excluded_subtrees  # each kind limited by its permitted names


def test_unconstrained_ca_on_request():
    certificate, _ = certs.new_ca(NAMES, constrained=False, now=NOW)
    with pytest.raises(x509.ExtensionNotFound):
        extension(certificate, x509.NameConstraints)
    assert certificates.ca_permits(certificate, ("anything.example",))


def test_server_certificate_covers_every_name(ca, server_cert):
    certificate, _ = server_cert
    certificate.verify_directly_issued_by(ca[0])
    san = extension(certificate, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["pypi.example.com", "pypi-internal"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.1.2.3"]
    assert extension(certificate, x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.SERVER_AUTH])
    assert not extension(certificate, x509.BasicConstraints).value.ca
    assert (certificate.not_valid_after_utc - certificate.not_valid_before_utc).days <= 825


def test_reissue_only_when_needed(ca, server_cert):
    certificate, _ = server_cert
    assert certs.reissue_reason(certificate, ca[0], NAMES, NOW) is None
    assert certs.reissue_reason(certificate, ca[0], NAMES[:2], NOW) == "the server names changed"
    later = NOW + datetime.timedelta(days=800)
    assert certs.reissue_reason(certificate, ca[0], NAMES, later) == "it expires within 30 days"
    other_ca, _ = certs.new_ca(NAMES, constrained=True, now=NOW)
    assert certs.reissue_reason(certificate, other_ca, NAMES, NOW) == \
        "it was not issued by the current CA"


def handshake(ca_cert, server_cert, name: str, tmp_path) -> str:
    """A real TLS handshake in which Python's ssl (OpenSSL) verifies the chain for `name`."""
    (tmp_path / "ca.pem").write_bytes(certs.pem(ca_cert))
    (tmp_path / "server.pem").write_bytes(certs.pem(server_cert[0]) + certs.key_pem(server_cert[1]))
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tmp_path / "server.pem")
    client_context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    left, right = socket.socketpair()

    def serve():
        with contextlib.suppress(ssl.SSLError, OSError):  # the client refused: an alert
            server_context.wrap_socket(left, server_side=True).close()

    accept = threading.Thread(target=serve)
    accept.start()
    try:
        with client_context.wrap_socket(right, server_hostname=name) as tls:
            return tls.version()
    finally:
        right.close()
        left.close()
        accept.join()


def test_openssl_accepts_the_chain_for_each_name(ca, server_cert, tmp_path):
    for name in ("pypi.example.com", "pypi-internal", "10.1.2.3"):
        assert handshake(ca[0], server_cert, name, tmp_path) in ("TLSv1.2", "TLSv1.3")


def test_a_ca_of_addresses_only_signs_for_no_dns_name_openssl_agrees(tmp_path):
    ca_cert, ca_key = certs.new_ca(("10.1.2.3",), constrained=True, now=NOW)
    own = certs.new_server_certificate(ca_cert, ca_key, ("10.1.2.3",), NOW)
    assert handshake(ca_cert, own, "10.1.2.3", tmp_path) in ("TLSv1.2", "TLSv1.3")
    # Whoever holds the CA key signs for pypi.org: no client that trusts the CA takes it.
    forged = certs.new_server_certificate(ca_cert, ca_key, ("pypi.org",), NOW)
    with pytest.raises(ssl.SSLCertVerificationError, match="excluded subtree violation"):
        handshake(ca_cert, forged, "pypi.org", tmp_path)


# Each family as mkcert's truststore_linux.go / truststore_darwin.go has it: os-release
# words in, the commands certs.trust and certs.untrust run out.
TRUST = [
    ("ubuntu debian", "/usr/local/share/ca-certificates", [("update-ca-certificates",)]),
    ("fedora", "/etc/pki/ca-trust/source/anchors", [("update-ca-trust", "extract")]),
    ("rocky rhel centos fedora", "/etc/pki/ca-trust/source/anchors", [("update-ca-trust", "extract")]),
    ("arch", "/etc/ca-certificates/trust-source/anchors", [("trust", "extract-compat")]),
    ("manjaro arch", "/etc/ca-certificates/trust-source/anchors", [("trust", "extract-compat")]),
    ("opensuse-leap suse opensuse", "/usr/share/pki/trust/anchors", [("update-ca-certificates",)]),
    ("alpine", "/usr/local/share/ca-certificates", [("update-ca-certificates",)]),
    ("macos", "/usr/local/share/ppc-tasks",
     [("security", "add-trusted-cert", "-d", "-r", "trustRoot", "-k",
       "/Library/Keychains/System.keychain", "/usr/local/share/ppc-tasks/ppc-tasks-pypi.test.crt")]),
]


@pytest.mark.parametrize(("os_words", "directory", "after_put"), TRUST)
def test_every_common_trust_store(tmp_path, os_words, directory, after_put):
    settings = Settings.from_config({"server_names": ["pypi.test"], "state_dir": str(tmp_path)},
                                    host=None)
    platform = parse_platform(f"os={os_words}\nsystemd=0")
    path = f"{directory}/ppc-tasks-pypi.test.crt"
    facts = Facts(platform=platform, files={path: FileFacts(None)})
    trust = certs.plan_trust(settings, facts, b"CA", "dev1")
    assert [command.argv for command in trust.commands][-len(after_put):] == after_put
    assert trust.commands[0].stdin == b"CA"  # the file first, then the system learns of it
    facts.files[path] = FileFacts(FileState("0" * 64, "644", "0:0"))
    untrust = [command.argv for command in certs.plan_untrust(settings, facts).commands]
    if platform.family.name == "macos":  # the keychain forgets it before the file goes
        assert untrust == [("security", "remove-trusted-cert", "-d", path), ("rm", "-f", "--", path)]
    else:
        assert untrust == [("rm", "-f", "--", path), *after_put]


def test_an_unknown_system_is_named():
    facts = Facts(platform=parse_platform("os=gentoo\nsystemd=1"))
    with pytest.raises(TaskError, match="^ppc-tasks does not know the trust store of dev1 "
                                        "\\(gentoo\\)"):
        certs.known_trust_store(facts, "dev1")
