"""`nginx`: the TLS front door on the server (manual step 5)."""

from __future__ import annotations

from . import certs
from .errors import TaskError
from .host import Host, host_task
from .render import render
from .settings import Settings
from .system import nginx_service

SITE_PATH = "/etc/nginx/conf.d/ppc-tasks.conf"  # read by Debian's and RHEL's nginx.conf


def render_site(settings: Settings) -> bytes:
    certificate_path, key_path = certs.host_cert_paths(settings)
    return render("nginx-site.conf.j2", server_names=settings.server_names,
                  upstream_port=settings.port, certificate_path=certificate_path,
                  key_path=key_path)


def nginx_error(output: str) -> str:
    lines = [line for line in output.splitlines() if "[emerg]" in line or "[crit]" in line]
    return (lines or output.strip().splitlines() or ["no output"])[0]


def ensure_installed(host: Host) -> None:
    if host.run(["sh", "-c", "command -v nginx || test -x /usr/sbin/nginx"], check=False).ok:
        host.report("nginx.install", False, "nginx is installed")
        return
    family = host.platform.family
    if family is None:
        raise TaskError(f"cannot install nginx on {host.name} ({host.platform.os}): "
                        f"install it by hand and run again")
    host.run(family.install_nginx, root=True)
    host.report("nginx.install", True, f"installed nginx ({family.name} packages)")


def configure_site(host: Host, certificate_changed: bool = False) -> None:
    """Write the site, test it with nginx -t, and reload only when something changed.

    A configuration nginx rejects never goes live: the previous site is put back.
    """
    site_changed = host.put(SITE_PATH, render_site(host.settings), mode="644", keep_previous=True)
    if site_changed or certificate_changed:
        test = host.run(["nginx", "-t"], root=True, check=False)
        if not test.ok:
            if site_changed:
                host.restore_previous(SITE_PATH)
            raise TaskError(f"nginx rejected the new configuration, the previous one stays "
                            f"live: {nginx_error(test.stderr + test.stdout)}")
    if site_changed:
        host.forget_previous(SITE_PATH)
    host.report("nginx.site", site_changed, SITE_PATH)

    nginx = nginx_service(host.platform)
    if not host.run(nginx.is_running, root=True, check=False).ok:
        host.run(nginx.start, root=True)
        host.report("nginx.service", True, "started nginx")
    elif site_changed or certificate_changed:
        host.run(nginx.reload, root=True)
        host.report("nginx.service", True, "reloaded nginx")
    else:
        host.report("nginx.service", False, "nginx is running with this configuration")
    host.start_at_boot("nginx", "nginx.boot")


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
