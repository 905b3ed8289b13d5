"""`deploy`: the whole server, in the order of the manual procedure."""

from __future__ import annotations

from . import certs, data, image, nginx, server
from .host import Host, host_task


@host_task
def deploy(host, skip_build=False, rebuild=False):
    """Turn the host into an HTTPS package index: images, data, server, TLS, nginx.

    Every step is skipped when already done; the recap counts what changed and says
    where the admin passwords and the CA certificate are on this machine.
    --skip-build uses the images already on the host; --rebuild rebuilds them
    from scratch.
    """
    server.check_port_free(host)
    certificate = certs.prepare(host)  # local only: fails before the host is touched
    if not skip_build:
        image.build_images(host, force=rebuild)
    data.ensure_data_container(host)
    server.deploy_server(host)
    certificate_changed = certs.install_certificate(host, certificate)
    certs.trust_ca(host, certs.ca_to_trust(host.settings))
    nginx.configure_nginx(host, certificate_changed)
    recap(host)


def recap(host: Host) -> None:
    settings = host.settings
    host.note(f"index:       {settings.index_url}")
    host.note(f"admins:      {', '.join(settings.admins)}; passwords in "
              f"{settings.secrets_path}")
    ca = certs.ca_path(settings)
    if ca:
        host.note(f"CA:          {ca} (trust it on clients: fab -H CLIENT certs.trust)")
