"""`deploy`: the whole server, in the order of the manual procedure."""

from __future__ import annotations

from . import certs, data, image, index, nginx, server
from .host import Host, host_task


@host_task
def deploy(host, skip_build=False, rebuild=False, new_identity=False):
    """Turn the host into an HTTPS package index: images, data, server, TLS, nginx.

    Every step is skipped when already done; the recap counts what changed and says
    where the admin passwords and the CA certificate are on this machine. Docker and
    nginx are enabled at boot (with systemd), so the index comes back by itself after
    a reboot. --skip-build uses the images already on the host; --rebuild rebuilds
    them from scratch.

    The index keeps its CA and passwords when names are added or reordered. For a host
    that serves an index whose CA and passwords are not on this machine, deploy
    refuses; --new-identity makes new ones (the old ones are set aside, never deleted;
    every client must then be configured again).
    """
    # What can be checked is checked before the host changes; these touch only this machine.
    index.check_identity(host, new_identity)
    server.check_port_free(host)
    if new_identity:
        index.set_aside(host)
    certificate = certs.prepare(host)
    creds = server.load_credentials(host)
    index.record_identity(host)
    host.start_at_boot("docker", "docker.boot")
    if not skip_build:
        image.build_images(host, force=rebuild)
    data.ensure_data(host)
    server.deploy_server(host, creds)
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
