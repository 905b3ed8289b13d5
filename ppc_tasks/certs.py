"""`certs`: the index's TLS certificate and the trust in it (manual step 6).

By default a small CA is made once on the operator's machine (mkcert's parameters, plus
name constraints so it can sign for this index's names only). Its key never leaves that
machine: only the server certificate and key go to the server, and only the CA
certificate goes into trust stores. Operators with a certificate from a company CA or
ACME bring their own instead (settings tls_cert/tls_key, or tls_host_cert/tls_host_key
for files that already live on the server).
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from . import index, state
from .errors import TaskError
from .host import Host, host_task
from .settings import Settings
from .system import TrustStore

CA_VALIDITY = datetime.timedelta(days=3650)
SERVER_VALIDITY = datetime.timedelta(days=825)  # the most browsers and Apple platforms accept
RENEW_BEFORE = datetime.timedelta(days=30)
HOST_TLS_DIR = "/etc/ssl/ppc-tasks"


# -- deciding ------------------------------------------------------------------------------
def _ip(name: str):
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def subject_alt_names(names: tuple[str, ...]) -> list[x509.GeneralName]:
    return [x509.IPAddress(_ip(name)) if _ip(name) else x509.DNSName(name) for name in names]


def new_key(bits: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _serial() -> int:
    return int.from_bytes(secrets.token_bytes(16), "big") >> 1  # positive, 127 bits


def new_ca(names: tuple[str, ...], constrained: bool, now: datetime.datetime):
    """A CA certificate and key: CA:TRUE pathlen 0, keyCertSign/cRLSign, 10 years."""
    key = new_key(3072)
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ppc-tasks local CA"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"ppc-tasks CA for {names[0]}"),
    ])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if constrained:
        builder = builder.add_extension(name_constraints(names), critical=True)
    return builder.sign(key, hashes.SHA256()), key


def name_constraints(names: tuple[str, ...]) -> x509.NameConstraints:
    """Permit exactly the index's names; with no IP among them, exclude every IP."""
    permitted = [x509.IPAddress(ipaddress.ip_network(name)) if _ip(name) else x509.DNSName(name)
                 for name in names]
    excluded = None
    if not any(_ip(name) for name in names):
        excluded = [x509.IPAddress(ipaddress.ip_network("0.0.0.0/0")),
                    x509.IPAddress(ipaddress.ip_network("::/0"))]
    return x509.NameConstraints(permitted_subtrees=permitted, excluded_subtrees=excluded)


def ca_permits(ca_cert: x509.Certificate, names: tuple[str, ...]) -> bool:
    try:
        constraints = ca_cert.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return True
    permitted = constraints.permitted_subtrees or []
    for name in names:
        if _ip(name):
            if not any(isinstance(p, x509.IPAddress) and _ip(name) in p.value for p in permitted):
                return False
        elif not any(isinstance(p, x509.DNSName)
                     and (name == p.value or name.endswith("." + p.value)) for p in permitted):
            return False
    return True


def new_server_certificate(ca_cert: x509.Certificate, ca_key, names: tuple[str, ...],
                           now: datetime.datetime):
    """A serverAuth certificate for every name, valid 825 days, signed by the CA."""
    key = new_key(2048)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ppc-tasks"),
            x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
        ]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + SERVER_VALIDITY)
        .add_extension(x509.SubjectAlternativeName(subject_alt_names(names)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=True, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return certificate, key


def reissue_reason(certificate: x509.Certificate, ca_cert: x509.Certificate,
                   names: tuple[str, ...], now: datetime.datetime) -> str | None:
    """Why the server certificate must be replaced, or None to keep it."""
    try:
        certificate.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return "it was not issued by the current CA"
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    if sorted(map(str, san)) != sorted(map(str, subject_alt_names(names))):
        return "the server names changed"
    if certificate.not_valid_after_utc - now < RENEW_BEFORE:
        return "it expires within 30 days"
    return None


def trust_path(store: TrustStore, index_name: str) -> str:
    # update-ca-certificates only picks up files ending in .crt
    return f"{store.directory}/ppc-tasks-{index_name}.crt"


def host_cert_paths(settings: Settings) -> tuple[str, str]:
    """Where nginx reads the certificate and key on the server."""
    if settings.tls_host_cert:
        return settings.tls_host_cert, settings.tls_host_key
    return (f"{HOST_TLS_DIR}/{settings.index_name}.crt",
            f"{HOST_TLS_DIR}/{settings.index_name}.key")


def pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


# -- the operator's machine ----------------------------------------------------------------
def load_ca(cert_path: Path, key_path: Path):
    """The local CA, or one line saying which file is damaged."""
    try:
        ca_cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except ValueError:
        raise TaskError(f"the CA certificate {cert_path} cannot be read (damaged?): restore "
                        f"it from a backup of {cert_path.parent}") from None
    try:
        ca_key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise TaskError(f"the CA key {key_path} cannot be read (damaged?): restore it from a "
                        f"backup of {key_path.parent}") from None
    if ca_key.public_key().public_numbers() != ca_cert.public_key().public_numbers():
        raise TaskError(f"the CA key {key_path} does not belong to {cert_path}: restore both "
                        f"from a backup of {key_path.parent}")
    return ca_cert, ca_key



@dataclass(frozen=True)
class ServerCertificate:
    """The PEM certificate and key to put on the server; None when they live there already."""

    certificate: bytes | None
    key: bytes | None


def ca_paths(settings: Settings) -> tuple[Path, Path]:
    return settings.server_state_dir / "ca.crt", settings.server_state_dir / "ca.key"


def prepare(host: Host) -> ServerCertificate:
    """Make or check the local CA and server certificate; touches no remote host."""
    settings = host.settings
    if settings.tls_host_cert:
        return ServerCertificate(None, None)
    if settings.tls_cert:
        return ServerCertificate(settings.tls_cert.read_bytes(), settings.tls_key.read_bytes())
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_cert_path, ca_key_path = ca_paths(settings)
    if ca_cert_path.exists() and ca_key_path.exists():
        ca_cert, ca_key = load_ca(ca_cert_path, ca_key_path)
        refused = [name for name in settings.server_names if not ca_permits(ca_cert, (name,))]
        if refused:
            raise TaskError(f"the local CA {ca_cert_path} may not sign for {', '.join(refused)} "
                            f"(its name constraints): deploy with --new-identity to make a new "
                            f"CA (and passwords), then configure every client again")
        host.report("certs.ca", False, f"{ca_cert_path}")
    else:
        ca_cert, ca_key = new_ca(settings.server_names, settings.ca_name_constraints, now)
        state.write(ca_key_path, key_pem(ca_key), 0o600)
        state.write(ca_cert_path, pem(ca_cert), 0o644)
        host.report("certs.ca", True, f"created the local CA {ca_cert_path} (its key stays here)")

    cert_path = settings.server_state_dir / "server.crt"
    key_path = settings.server_state_dir / "server.key"
    reason = "there is none yet"
    if cert_path.exists() and key_path.exists():
        try:
            certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except ValueError:
            reason = "the one here cannot be read"
        else:
            reason = reissue_reason(certificate, ca_cert, settings.server_names, now)
    if reason:
        certificate, key = new_server_certificate(ca_cert, ca_key, settings.server_names, now)
        state.write(key_path, key_pem(key), 0o600)
        state.write(cert_path, pem(certificate), 0o644)
        host.report("certs.server", True, f"issued for {', '.join(settings.server_names)} "
                                          f"({reason})")
    else:
        host.report("certs.server", False, f"{cert_path} is valid for every server name")
    return ServerCertificate(cert_path.read_bytes(), key_path.read_bytes())


# -- doing ---------------------------------------------------------------------------------
def install_certificate(host: Host, tls: ServerCertificate) -> bool:
    """Put the server certificate (0644) and key (0600, root) where nginx reads them."""
    cert_path, key_path = host_cert_paths(host.settings)
    if tls.certificate is None:
        host.report("certs.install", False, f"using {cert_path} on the host")
        return False
    changed = host.put(cert_path, tls.certificate, mode="644")
    changed = host.put(key_path, tls.key, mode="600") or changed
    host.report("certs.install", changed, f"{cert_path}, {key_path}")
    return changed


def ca_path(settings: Settings) -> Path | None:
    """The CA certificate clients must trust, on this machine (None for a public one)."""
    if settings.tls_cert or settings.tls_host_cert:
        return settings.tls_ca_cert
    return ca_paths(settings)[0]


def ca_to_trust(settings: Settings) -> bytes | None:
    path = ca_path(settings)
    if path is None:
        return None
    if not path.exists():
        raise TaskError(f"there is no CA for the index {settings.index_name} yet ({path}): "
                        f"deploy the server first")
    return path.read_bytes()


def trust_ca(host: Host, ca_certificate: bytes | None) -> TrustStore | None:
    """Add the CA certificate to the host's system trust store, refreshing it on change."""
    if ca_certificate is None:
        host.report("certs.trust", False, "publicly trusted certificate: nothing to add")
        return None
    store = host.platform.trust_store
    if store is None:
        raise TaskError(f"ppc-tasks does not know the trust store of {host.name} "
                        f"({host.platform.os}): add the CA to it by hand")
    path = trust_path(store, host.settings.index_name)
    changed = host.put(path, ca_certificate, mode="644")
    if changed:
        host.run(store.refresh, root=True)
    host.report("certs.trust", changed, f"{path} ({' '.join(store.refresh)})")
    return store


def untrust_ca(host: Host) -> None:
    """Take the index's CA certificate out of the host's system trust store."""
    store = host.platform.trust_store
    path = trust_path(store, host.settings.index_name) if store else None
    if path is None or not host.run(["test", "-f", path], root=True, check=False).ok:
        host.report("certs.trust", False, "the CA is not in the system trust store")
        return
    host.run(["rm", "-f", "--", path], root=True)
    host.run(store.refresh, root=True)
    host.report("certs.trust", True, f"removed {path} ({' '.join(store.refresh)})")


@host_task(docker=False)
def install(host):
    """Issue the server certificate (from the local CA, made once) and put it on the host."""
    index.check_identity(host)
    certificate = prepare(host)
    index.record_identity(host)
    install_certificate(host, certificate)


@host_task(docker=False, for_server=False)
def trust(host, index=""):
    """Add the index's CA certificate to the host's system trust store.

    Works on the Debian/Ubuntu family (update-ca-certificates) and the RHEL/Fedora
    family (update-ca-trust); a host that already trusts it is left alone. The index
    is the one deployed from this machine; --index NAME picks one of several.
    """
    trust_ca(host, ca_to_trust(host.settings))

