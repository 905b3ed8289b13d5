"""What `certs` decides, from the settings and a host's facts alone: the facts it
asks for, its steps and what they render (its tasks: ppc_tasks/certs.py)."""

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

from .. import certificates, local
from ..errors import TaskError
from ..facts import FILE, TEXT, Facts
from ..local import LocalFacts
from ..plan import (
    Change,
    Command,
    LocalFile,
    Step,
    Unchanged,
    file_step,
    one_step,
)
from ..settings import Settings
from ..system import FAMILIES, TrustStore
from ..tls_paths import ca_path, host_cert_paths, trust_path

CA_VALIDITY = datetime.timedelta(days=3650)
SERVER_VALIDITY = datetime.timedelta(days=825)  # the most browsers and Apple platforms accept
RENEW_BEFORE = datetime.timedelta(days=30)


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
    """Permit exactly the index's names. A kind of name with no permitted subtree is
    permitted everywhere (RFC 5280), so with no IP among the names every IP is excluded,
    and with no DNS name every DNS name (the empty name is all of them)."""
    permitted = [x509.IPAddress(ipaddress.ip_network(name)) if _ip(name) else x509.DNSName(name)
                 for name in names]
    excluded = []
    if not any(_ip(name) for name in names):
        excluded += [x509.IPAddress(ipaddress.ip_network("0.0.0.0/0")),
                     x509.IPAddress(ipaddress.ip_network("::/0"))]
    if all(_ip(name) for name in names):
        excluded.append(x509.DNSName(""))
    return x509.NameConstraints(permitted_subtrees=permitted, excluded_subtrees=excluded or None)


def new_server_certificate(ca_cert: x509.Certificate, ca_key, names: tuple[str, ...],
                           now: datetime.datetime):
    """A serverAuth certificate for every name, valid 825 days, signed by the CA."""
    key = new_key(2048)
    # Clients match the SAN; OpenSSL also checks a subject CN against the CA's DNS
    # constraints when there is no DNS SAN, so an index of addresses only has no CN.
    dns_names = [name for name in names if not _ip(name)]
    common_name = [x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])] if dns_names else []
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ppc-tasks"), *common_name]))
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


def pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


# -- the operator's machine ----------------------------------------------------------------
def load_ca(cert_path: Path, key_path: Path, pair: tuple[bytes, bytes] | None = None):
    """The local CA (from `pair`, the two files as read, or from the paths), or one line
    saying which file is damaged."""
    cert_pem, key_pem_bytes = pair or (cert_path.read_bytes(), key_path.read_bytes())
    try:
        ca_cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise TaskError(f"the CA certificate {cert_path} cannot be read (damaged?): restore "
                        f"it from a backup of {cert_path.parent}") from None
    try:
        # The full RSA check costs ~0.1 s a run; the key is ours, and a damaged one is
        # caught below (it must fit the certificate) or when it signs (see prepare).
        ca_key = serialization.load_pem_private_key(key_pem_bytes, password=None,
                                                    unsafe_skip_rsa_key_validation=True)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise TaskError(f"the CA key {key_path} cannot be read (damaged?): restore it from a "
                        f"backup of {key_path.parent}") from None
    if not certificates.key_fits(ca_key, ca_cert):
        raise TaskError(f"the CA key {key_path} does not belong to {cert_path}: restore both "
                        f"from a backup of {key_path.parent}")
    return ca_cert, ca_key



@dataclass(frozen=True)
class LocalTLS:
    """What the operator's machine holds for the index's TLS, made in memory first."""

    certificate: bytes | None  # PEM for the server; None: it lives there already
    key: bytes | None
    ca: bytes | None  # the CA clients must trust; None: a publicly trusted certificate
    steps: list[Step]  # certs.ca and certs.server, whose local writes save what is new


def prepare(settings: Settings, now: datetime.datetime, fresh: bool = False,
            here: LocalFacts | None = None) -> LocalTLS:
    """The local CA and server certificate: checked, or made (in memory; the steps save
    them), from what this machine holds (here, else read now). fresh ignores what is
    there (--new-identity sets it aside)."""
    if settings.tls_host_cert:
        return LocalTLS(None, None, own_ca(settings), [])
    if settings.tls_cert:
        return LocalTLS(settings.tls_cert.read_bytes(), settings.tls_key.read_bytes(),
                        own_ca(settings), [])
    steps: list[Step] = []
    here = here or local.read(settings)
    ca_cert_path, ca_key_path = here.ca_paths
    if here.ca is not None and not fresh:
        ca_cert, ca_key = load_ca(ca_cert_path, ca_key_path, here.ca)
        refused = [name for name in settings.certificate_names if not certificates.ca_permits(ca_cert, (name,))]
        if refused:
            raise TaskError(f"the local CA {ca_cert_path} may not sign for {', '.join(refused)} "
                            f"(its name constraints): deploy with --new-identity to make a new "
                            f"CA (and passwords), then configure every client again")
        steps.append(Unchanged("certs.ca", f"{ca_cert_path}"))
    else:
        ca_cert, ca_key = new_ca(settings.certificate_names, settings.ca_name_constraints, now)
        steps.append(Change("certs.ca", done=f"created the local CA {ca_cert_path} (its key "
                                             f"stays here)",
                            would=f"create the local CA {ca_cert_path} (its key stays here)",
                            local=[LocalFile(ca_key_path, key_pem(ca_key), 0o600),
                                   LocalFile(ca_cert_path, pem(ca_cert), 0o644)]))

    cert_path, key_path = here.server_paths
    reason = "there is none yet"
    if here.server is not None and not fresh:
        try:
            current = x509.load_pem_x509_certificate(here.server[0])
        except ValueError:
            reason = "the one here cannot be read"
        else:
            reason = reissue_reason(current, ca_cert, settings.certificate_names, now)
    if reason:
        certificate, key = new_server_certificate(ca_cert, ca_key, settings.certificate_names, now)
        try:
            certificate.verify_directly_issued_by(ca_cert)
        except (ValueError, TypeError, InvalidSignature):
            raise TaskError(f"the CA key {ca_key_path} signs wrongly (damaged?): restore it "
                            f"from a backup of {ca_key_path.parent}") from None
        certificate_pem, key_bytes = pem(certificate), key_pem(key)
        names = ", ".join(settings.certificate_names)
        steps.append(Change("certs.server", done=f"issued for {names} ({reason})",
                            would=f"issue a certificate for {names}: {reason}",
                            local=[LocalFile(key_path, key_bytes, 0o600),
                                   LocalFile(cert_path, certificate_pem, 0o644)]))
    else:
        certificate_pem, key_bytes = here.server
        steps.append(Unchanged("certs.server", f"{cert_path} is valid for every server name"))
    return LocalTLS(certificate_pem, key_bytes, pem(ca_cert), steps)


def own_ca(settings: Settings) -> bytes | None:
    return settings.tls_ca_cert.read_bytes() if settings.tls_ca_cert else None


def install_queries(settings: Settings) -> list[str]:
    cert_path, key_path = host_cert_paths(settings)
    return [TEXT.query(cert_path), FILE.query(key_path),
            *(TEXT.query(path) for path in metrics_copy_paths(settings))]


def metrics_copy_paths(settings: Settings) -> tuple[str, str]:
    """Where the server's guard reads the certificate and the CA for /metrics (their
    expiry): in the config folder it mounts (config.ini names them)."""
    return f"{settings.config_dir}/tls/certificate.pem", f"{settings.config_dir}/tls/ca.pem"


def plan_metrics_copies(settings: Settings, tls: LocalTLS, facts: Facts) -> Step:
    """Public copies of the certificate nginx serves and of the CA clients trust, for
    /metrics (read at each scrape: no restart)."""
    certificate_copy, ca_copy = metrics_copy_paths(settings)
    served = tls.certificate if tls.certificate is not None \
        else facts.file(host_cert_paths(settings)[0]).content
    parts = [file_step("certs.metrics", path, content, facts.file(path), mode="644", owner="0:0")
             for path, content in ((certificate_copy, served), (ca_copy, tls.ca)) if content]
    return one_step("certs.metrics", f"{settings.config_dir}/tls",
                    f"copy the certificate and CA for /metrics into {settings.config_dir}/tls",
                    parts)


def plan_install(settings: Settings, tls: LocalTLS, facts: Facts) -> Step:
    """Put the server certificate (0644) and key (0600, root) where nginx reads them."""
    cert_path, key_path = host_cert_paths(settings)
    if tls.certificate is None:
        return Unchanged("certs.install", f"using {cert_path} on the host")
    parts = [file_step("certs.install", cert_path, tls.certificate, facts.file(cert_path),
                       mode="644", owner="0:0", notifies=("nginx.reload",)),
             file_step("certs.install", key_path, tls.key, facts.file(key_path), mode="600",
                       owner="0:0", private=True, notifies=("nginx.reload",))]
    return one_step("certs.install", f"{cert_path}, {key_path}",
                    f"install the certificate and key: {cert_path}, {key_path}", parts)


def trust_queries(settings: Settings) -> list[str]:
    """The CA's place in every trust store ppc-tasks knows (the family is a fact too)."""
    return list(dict.fromkeys(FILE.query(trust_path(family.trust_store, settings.index_name))
                              for family in FAMILIES.values()))


def known_trust_store(facts: Facts, host_name: str) -> TrustStore:
    store = facts.platform.trust_store
    if store is None:
        raise TaskError(f"ppc-tasks does not know the trust store of {host_name} "
                        f"({facts.platform.os}): add the CA to it by hand")
    return store


def plan_trust(settings: Settings, facts: Facts, ca: bytes | None, host_name: str) -> Step:
    """Add the CA certificate to the host's system trust store, refreshing it on change."""
    if ca is None:
        return Unchanged("certs.trust", "publicly trusted certificate: nothing to add")
    store = known_trust_store(facts, host_name)
    path = trust_path(store, settings.index_name)
    then = [command for command in (store.fill(store.add, path), store.refresh) if command]
    how = "; ".join(" ".join(command) for command in then)
    put = file_step("certs.trust", path, ca, facts.file(path), mode="644", owner="0:0")
    return one_step("certs.trust", f"{path} ({how})", f"trust the index's CA: {path} ({how})",
                    [put], extra=[Command.of(*command) for command in then])


def plan_untrust(settings: Settings, facts: Facts) -> Step:
    """Take the index's CA certificate out of the host's system trust store."""
    store = facts.platform.trust_store
    path = trust_path(store, settings.index_name) if store else None
    if path is None or facts.file(path).state is None:
        return Unchanged("certs.trust", "the CA is not in the system trust store")
    before, after = store.fill(store.remove, path), store.refresh
    how = "; ".join(" ".join(command) for command in (before, after) if command)
    commands = [command for command in (before, ("rm", "-f", "--", path), after) if command]
    return Change("certs.trust", done=f"removed {path} ({how})",
                  would=f"take the index's CA out of the trust store: {path} ({how})",
                  commands=[Command.of(*command) for command in commands])


def ca_to_trust(settings: Settings) -> bytes | None:
    path = ca_path(settings)
    if path is None:
        return None
    if not path.exists():
        raise TaskError(f"there is no CA for the index {settings.index_name} yet ({path}): "
                        f"deploy the server first")
    return path.read_bytes()
