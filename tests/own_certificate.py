"""A certificate "from a company CA", as an operator would bring their own."""

from __future__ import annotations

import datetime
from pathlib import Path

from ppc_tasks.plans import certs


def write_own_certificate(directory: Path, names: tuple[str, ...],
                          issued: datetime.datetime | None = None) -> dict[str, Path]:
    """Write cert.pem, key.pem and ca.pem (plus ca-key.pem, a key that does not fit);
    the certificate is valid from `issued` (default: now) for 825 days."""
    now = issued or datetime.datetime.now(datetime.timezone.utc)
    ca, ca_key = certs.new_ca(names, constrained=False, now=now)
    certificate, key = certs.new_server_certificate(ca, ca_key, names, now)
    files = {"cert": certs.pem(certificate), "key": certs.key_pem(key), "ca": certs.pem(ca),
             "ca-key": certs.key_pem(ca_key)}
    for name, data in files.items():
        (directory / f"{name}.pem").write_bytes(data)
    return {name: directory / f"{name}.pem" for name in files}
