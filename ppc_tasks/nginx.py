"""`nginx`: the TLS front door on the server (manual step 5)."""

from __future__ import annotations

from dataclasses import dataclass

from . import certs
from .host import Host, TaskError, host_task
from .render import render
from .settings import Settings

SITE_PATH = "/etc/nginx/conf.d/ppc-tasks.conf"  # read by Debian's and RHEL's nginx.conf
PREVIOUS_SITE_PATH = f"{SITE_PATH}.ppc-previous"

DETECT_PACKAGE_MANAGER = ("if command -v apt-get >/dev/null; then echo apt; "
                          "elif command -v dnf >/dev/null; then echo dnf; "
                          "elif command -v yum >/dev/null; then echo yum; fi")
INSTALL_COMMANDS = {
    "apt": "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx",
    "dnf": "dnf install -y nginx",
    "yum": "yum install -y nginx",
}


@dataclass(frozen=True)
class NginxService:
    is_running: str
    start: str
    reload: str


def service(systemd: bool) -> NginxService:
    """How to drive nginx: through systemd where it runs, else nginx itself (containers)."""
    if systemd:
        return NginxService("systemctl is-active --quiet nginx",
                            "systemctl enable --now nginx", "systemctl reload nginx")
    return NginxService("test -s /run/nginx.pid && kill -0 \"$(cat /run/nginx.pid)\"",
                        "nginx", "nginx -s reload")


def render_site(settings: Settings) -> bytes:
    certificate_path, key_path = certs.host_cert_paths(settings)
    return render("nginx-site.conf.j2", server_names=settings.server_names,
                  upstream_port=settings.port, certificate_path=certificate_path,
                  key_path=key_path)


def restore_command() -> str:
    """Put the previous site back (or remove a new one) after nginx -t rejected it."""
    return (f"if [ -f {PREVIOUS_SITE_PATH} ]; then mv -f {PREVIOUS_SITE_PATH} {SITE_PATH}; "
            f"else rm -f {SITE_PATH}; fi")


def nginx_error(output: str) -> str:
    lines = [line for line in output.splitlines() if "[emerg]" in line or "[crit]" in line]
    return (lines or output.strip().splitlines() or ["no output"])[0]


def ensure_installed(host: Host) -> None:
    if host.run("command -v nginx || test -x /usr/sbin/nginx", check=False).ok:
        host.report("nginx.install", False, "nginx is installed")
        return
    manager = host.run(DETECT_PACKAGE_MANAGER).stdout.strip()
    if manager not in INSTALL_COMMANDS:
        raise TaskError(f"cannot install nginx on {host.name}: no apt-get, dnf or yum; install it by hand")
    host.sudo(INSTALL_COMMANDS[manager])
    host.report("nginx.install", True, f"installed nginx ({manager})")


def configure_site(host: Host, certificate_changed: bool = False) -> None:
    """Write the site, test it with nginx -t, and reload only when something changed.

    A configuration nginx rejects never goes live: the previous site is put back.
    """
    site = render_site(host.settings)
    host.sudo(f"if [ -f {SITE_PATH} ]; then cp -p {SITE_PATH} {PREVIOUS_SITE_PATH}; fi")
    try:
        site_changed = host.put(SITE_PATH, site, mode="644")
        if site_changed or certificate_changed:
            test = host.sudo("nginx -t", check=False)
            if not test.ok:
                if site_changed:
                    host.sudo(restore_command())
                raise TaskError(f"nginx rejected the new configuration, the previous one stays "
                                f"live: {nginx_error(test.stderr + test.stdout)}")
    finally:
        host.sudo(f"rm -f {PREVIOUS_SITE_PATH}")
    host.report("nginx.site", site_changed, SITE_PATH)

    nginx = service(systemd=host.run("test -d /run/systemd/system", check=False).ok)
    if not host.sudo(nginx.is_running, check=False).ok:
        host.sudo(nginx.start)
        host.report("nginx.service", True, "started nginx")
    elif site_changed or certificate_changed:
        host.sudo(nginx.reload)
        host.report("nginx.service", True, "reloaded nginx")
    else:
        host.report("nginx.service", False, "nginx is running with this configuration")


def configure_nginx(host: Host, certificate_changed: bool = False) -> None:
    ensure_installed(host)
    configure_site(host, certificate_changed)


@host_task(docker=False)
def configure(host):
    """Install nginx if missing and serve the index over HTTPS; HTTP only redirects.

    The site proxies to pypicloud on 127.0.0.1, with TLS 1.2+, no upload size limit and
    the forwarded headers pypicloud needs for https:// links. It is checked with
    `nginx -t` before it goes live (a rejected one is rolled back), and nginx is
    reloaded only when the site or certificate changed. Needs the certificate from
    certs.install (or tls_host_cert/tls_host_key).
    """
    configure_nginx(host)
