"""What a certificate says, asked one way everywhere: the names it covers (as a TLS client
matches them: SANs, one-label wildcards, IP addresses), its dates, whether a key is its
key. The settings check an operator's own certificate with it, certs the one it issues,
and status the one a host serves, so all three agree.
"""

from __future__ import annotations

import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import serialization


def names_in(certificate: x509.Certificate) -> list[str]:
    """Its DNS names and IP addresses, as the SAN lists them."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [*san.get_values_for_type(x509.DNSName),
            *map(str, san.get_values_for_type(x509.IPAddress))]


def _address(name: str):
    """The IP address `name` is, or None for a DNS name."""
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def covers(certificate: x509.Certificate, name: str) -> bool:
    """Whether a TLS client accepts the certificate for `name`."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    address = _address(name)
    if address is not None:
        return address in san.get_values_for_type(x509.IPAddress)
    wanted = name.lower().rstrip(".")
    for pattern in san.get_values_for_type(x509.DNSName):
        pattern = pattern.lower().rstrip(".")
        if pattern == wanted or (pattern.startswith("*.") and "." in wanted
                                 and wanted.split(".", 1)[1] == pattern[2:]):
            return True
    return False


def uncovered(certificate: x509.Certificate, names) -> list[str]:
    """The names a client could not reach the index by with this certificate."""
    return [name for name in names if not covers(certificate, name)]


def validity_problem(certificate: x509.Certificate, now: datetime.datetime) -> str | None:
    """"expired" or "not valid yet", with its dates; None while it is valid."""
    valid_from, valid_until = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if valid_from <= now <= valid_until:
        return None
    state = "expired" if now > valid_until else "not valid yet"
    return f"{state}: valid from {valid_from:%Y-%m-%d %H:%M} to {valid_until:%Y-%m-%d %H:%M} UTC"


def key_fits(key, certificate: x509.Certificate) -> bool:
    """Whether `key` (a private key) is the certificate's."""
    return _public_der(key.public_key()) == _public_der(certificate.public_key())


def _public_der(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def ca_permits(ca_cert: x509.Certificate, names) -> bool:
    """Whether the CA's name constraints (if any) let it sign for every one of `names`."""
    try:
        constraints = ca_cert.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return True
    permitted = constraints.permitted_subtrees or []
    for name in names:
        address = _address(name)
        if address is not None:
            if not any(isinstance(p, x509.IPAddress) and address in p.value for p in permitted):
                return False
        elif not any(isinstance(p, x509.DNSName)
                     and (name == p.value or name.endswith("." + p.value)) for p in permitted):
            return False
    return True
