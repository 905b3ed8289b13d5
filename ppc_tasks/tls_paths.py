"""Where the index's certificates are: on the server (nginx's certificate and key, the
CA in a trust store) and on this machine (the CA in the index's folder). Asked by the
certificate planners, nginx, the balancer, clients and status alike."""

from __future__ import annotations

from pathlib import Path

from .settings import Settings
from .system import TrustStore

HOST_TLS_DIR = "/etc/ssl/ppc-tasks"


def trust_path(store: TrustStore, index_name: str) -> str:
    # update-ca-certificates only picks up files ending in .crt
    return f"{store.directory}/ppc-tasks-{index_name}.crt"


def host_cert_paths(settings: Settings) -> tuple[str, str]:
    """Where nginx reads the certificate and key on the server."""
    if settings.tls_host_cert:
        return settings.tls_host_cert, settings.tls_host_key
    return (f"{HOST_TLS_DIR}/{settings.index_name}.crt",
            f"{HOST_TLS_DIR}/{settings.index_name}.key")


def ca_paths(settings: Settings) -> tuple[Path, Path]:
    return settings.server_state_dir / "ca.crt", settings.server_state_dir / "ca.key"


def ca_path(settings: Settings) -> Path | None:
    """The CA certificate clients must trust, on this machine (None for a public one)."""
    if settings.tls_cert or settings.tls_host_cert:
        return settings.tls_ca_cert
    return ca_paths(settings)[0]


def upstream_ca_path(settings: Settings) -> str:
    """On a balancer: the index's CA, which it checks the index hosts against."""
    return f"{HOST_TLS_DIR}/{settings.index_name}-ca.crt"
