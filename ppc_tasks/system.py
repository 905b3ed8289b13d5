"""What differs between hosts, detected once per host: init system, package manager,
trust store. One table per OS family; everything else asks the Platform."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrustStore:
    """Where a local CA goes, and how the system learns of it (as mkcert's
    truststore_linux.go and truststore_darwin.go do it). In commands, {path} stands for
    the CA certificate's file."""

    family: str
    directory: str  # where local CA certificates go
    refresh: tuple[str, ...]  # rebuilds the bundle from them, after a CA comes or goes
    bundle: str  # the system bundle: every trusted CA in one PEM file
    add: tuple[str, ...] = ()  # run once the file is in place (a keychain, not a folder)
    remove: tuple[str, ...] = ()  # run before the file goes
    # False: the bundle never holds a local CA (macOS's /etc/ssl/cert.pem), so pip and
    # twine get a bundle of the user's own, the system's CAs plus the index's.
    bundle_holds_local: bool = True

    @staticmethod
    def fill(command: tuple[str, ...], path: str) -> tuple[str, ...]:
        return tuple(path if part == "{path}" else part for part in command)


@dataclass(frozen=True)
class Family:
    name: str
    install_nginx: tuple[str, ...] | None  # None: ppc-tasks serves no index from it
    trust_store: TrustStore
    # The Docker engine from the distribution's own packages (host.bootstrap).
    install_docker: tuple[str, ...] | None = None
    # nginx's Prometheus exporter for a balancer's own figures; None: not packaged.
    install_nginx_exporter: tuple[str, ...] | None = None


def apt_install(package: str) -> tuple[str, ...]:
    # A configuration file written before the package (its /etc/default file) is kept:
    # the package's first start already runs with it.
    return ("sh", "-c", (f"apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
                         f"apt-get install -y -qq -o Dpkg::Options::=--force-confdef "
                         f"-o Dpkg::Options::=--force-confold {package}"))


def dnf_install(package: str) -> tuple[str, ...]:
    return ("sh", "-c", (f"if command -v dnf >/dev/null; then dnf install -y {package}; "
                         f"else yum install -y {package}; fi"))

MACOS_KEYCHAIN = "/Library/Keychains/System.keychain"
FAMILIES = {
    "debian": Family("debian", apt_install("nginx"), TrustStore(
        "debian", "/usr/local/share/ca-certificates", ("update-ca-certificates",),
        "/etc/ssl/certs/ca-certificates.crt"), install_docker=apt_install("docker.io"),
        install_nginx_exporter=apt_install("prometheus-nginx-exporter")),
    # Fedora packages the engine as moby-engine; RHEL itself has none. Neither packages
    # nginx's Prometheus exporter.
    "rhel": Family("rhel", dnf_install("nginx"), TrustStore(
        "rhel", "/etc/pki/ca-trust/source/anchors", ("update-ca-trust", "extract"),
        "/etc/pki/tls/certs/ca-bundle.crt"), install_docker=dnf_install("moby-engine")),
    # Developer machines only: their nginx packages read no /etc/nginx/conf.d.
    "arch": Family("arch", None, TrustStore(
        "arch", "/etc/ca-certificates/trust-source/anchors", ("trust", "extract-compat"),
        "/etc/ssl/certs/ca-certificates.crt")),
    "suse": Family("suse", None, TrustStore(
        "suse", "/usr/share/pki/trust/anchors", ("update-ca-certificates",),
        "/etc/ssl/ca-bundle.pem")),
    "alpine": Family("alpine", None, TrustStore(
        "alpine", "/usr/local/share/ca-certificates", ("update-ca-certificates",),
        "/etc/ssl/certs/ca-certificates.crt")),
    "macos": Family("macos", None, TrustStore(
        "macos", "/usr/local/share/ppc-tasks", (), "/etc/ssl/cert.pem",
        add=("security", "add-trusted-cert", "-d", "-r", "trustRoot", "-k", MACOS_KEYCHAIN,
             "{path}"),
        remove=("security", "remove-trusted-cert", "-d", "{path}"),
        bundle_holds_local=False)),
}
# os-release IDs (and ID_LIKE words) of each family; facts.sh says "macos" for Darwin.
FAMILY_OF_ID = {"debian": "debian", "ubuntu": "debian", "rhel": "rhel", "fedora": "rhel",
                "centos": "rhel", "rocky": "rhel", "almalinux": "rhel", "arch": "arch",
                "manjaro": "arch", "endeavouros": "arch", "opensuse": "suse",
                "opensuse-leap": "suse", "opensuse-tumbleweed": "suse", "sles": "suse",
                "suse": "suse", "alpine": "alpine", "macos": "macos"}


@dataclass(frozen=True)
class Platform:
    family: Family | None  # None: a system ppc-tasks has no table for
    os: str  # os-release ID, as the host says it
    systemd: bool

    @property
    def trust_store(self) -> TrustStore | None:
        return self.family.trust_store if self.family else None


def parse_platform(output: str) -> Platform:
    """From what facts.sh answers for `platform`: lines "os=ID ID_LIKE..." and "systemd=1"."""
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
