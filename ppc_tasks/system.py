"""What differs between hosts, detected once per host: init system, package manager,
trust store. One table per OS family; everything else asks the Platform."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrustStore:
    family: str
    directory: str  # where local CA certificates go
    refresh: tuple[str, ...]  # rebuilds the bundle from them
    bundle: str  # the system bundle: every trusted CA in one PEM file


@dataclass(frozen=True)
class Family:
    name: str
    install_nginx: tuple[str, ...]
    trust_store: TrustStore


FAMILIES = {
    "debian": Family(
        "debian",
        ("sh", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
                     "apt-get install -y -qq nginx"),
        TrustStore("debian", "/usr/local/share/ca-certificates", ("update-ca-certificates",),
                   "/etc/ssl/certs/ca-certificates.crt")),
    "rhel": Family(
        "rhel",
        ("sh", "-c", "if command -v dnf >/dev/null; then dnf install -y nginx; "
                     "else yum install -y nginx; fi"),
        TrustStore("rhel", "/etc/pki/ca-trust/source/anchors", ("update-ca-trust", "extract"),
                   "/etc/pki/tls/certs/ca-bundle.crt")),
}
# os-release IDs (and ID_LIKE words) of each family.
FAMILY_OF_ID = {"debian": "debian", "ubuntu": "debian", "rhel": "rhel", "fedora": "rhel",
                "centos": "rhel", "rocky": "rhel", "almalinux": "rhel"}


@dataclass(frozen=True)
class Platform:
    family: Family | None  # None: a system ppc-tasks has no table for
    os: str  # os-release ID, as the host says it
    systemd: bool

    @property
    def trust_store(self) -> TrustStore | None:
        return self.family.trust_store if self.family else None


def parse_platform(output: str) -> Platform:
    """From files/sh/platform.sh's output."""
    facts = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
    ids = facts.get("os", "unknown").split()
    family = next((FAMILIES[FAMILY_OF_ID[word]] for word in ids if word in FAMILY_OF_ID), None)
    return Platform(family=family, os=ids[0] if ids else "unknown",
                    systemd=facts.get("systemd") == "1")


@dataclass(frozen=True)
class Service:
    """How to drive a service: through systemd where it runs, else directly (containers)."""

    start: tuple[str, ...]  # start it, or reload it if it runs already (a package may start it)
    reload: tuple[str, ...]


def nginx_service(platform: Platform) -> Service:
    if platform.systemd:
        return Service(("systemctl", "reload-or-restart", "nginx"), ("systemctl", "reload", "nginx"))
    return Service(("sh", "-c", "nginx -s reload 2>/dev/null || nginx"), ("nginx", "-s", "reload"))
