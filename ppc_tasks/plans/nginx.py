"""What `nginx` decides, from the settings and a host's facts alone: the facts it
asks for, its steps and what they render (its tasks: ppc_tasks/nginx.py)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from .. import tls_paths
from ..errors import TaskError
from ..facts import CONTAINER, NGINX, TEXT, UNIT, Facts
from ..plan import Change, Command, Handler, Step, Unchanged, boot_step, file_step
from ..render import render, script, script_argv
from ..settings import Settings
from ..system import nginx_service
from . import certs

SITE_PATH = "/etc/nginx/conf.d/ppc-tasks.conf"  # read by Debian's and RHEL's nginx.conf
# sha256sum of the site, certificate and key as nginx last read them (files/sh/reload-nginx.sh).
LOADED_PATH = "/var/lib/ppc-tasks/nginx-loaded"
UPSTREAM_SERVER = re.compile(rb"^\s*server 127\.0\.0\.1:(\d+);", re.MULTILINE)


def render_site(settings: Settings, upstream_port: int) -> bytes:
    certificate_path, key_path = tls_paths.host_cert_paths(settings)
    return render("nginx-site.conf.j2", server_names=settings.certificate_names,
                  upstream_port=upstream_port, certificate_path=certificate_path,
                  key_path=key_path, max_upload_size=settings.max_upload_size,
                  trusted_proxies=networks(settings.trusted_proxies))


def networks(written: tuple[str, ...]) -> list[str]:
    """Addresses and networks as nginx takes them: a network without host bits."""
    return [str(ipaddress.ip_network(network, strict=False)) for network in written]


def serving_port(settings: Settings, facts: Facts) -> int:
    """The port nginx should forward to: the live server container's."""
    live = facts.containers.get(settings.server_container)
    return live.port if live is not None and live.port else settings.port


def forwarded_port(facts: Facts) -> int | None:
    """The port the site on the host forwards to now, if there is a site."""
    site = facts.file(SITE_PATH)
    found = UPSTREAM_SERVER.search(site.content or b"") if site.state is not None else None
    return int(found[1]) if found else None


def queries(settings: Settings) -> list[str]:
    return [NGINX.query(), TEXT.query(SITE_PATH), UNIT.query(NGINX.query()), CONTAINER.query(settings.server_container),
            *certs.install_queries(settings), TEXT.query(LOADED_PATH)]


def loaded_files(settings: Settings) -> list[str]:
    """What nginx reads of ours: a change to any of them needs a reload."""
    return [SITE_PATH, *tls_paths.host_cert_paths(settings)]


def runs_files_as_they_are(settings: Settings, facts: Facts) -> bool:
    """Whether nginx last (re)loaded the site, certificate and key as they are now."""
    record = facts.file(LOADED_PATH).content or b""
    loaded = dict(reversed(line.split(maxsplit=1)) for line in record.decode().splitlines()
                  if len(line.split(maxsplit=1)) == 2)
    now = {path: facts.file(path).state for path in loaded_files(settings)}
    return all(state is not None and loaded.get(path) == state.sha256
               for path, state in now.items())


def plan_nginx(settings: Settings, facts: Facts, host_name: str, site: bytes, *,
               mode: str = "644", redact: Callable[[str], str] = lambda text: text) -> list[Step]:
    """nginx.install, nginx.site (the index's, or a balancer's: mode 0600 and redacted in
    previews when it holds a secret), nginx.service (reloaded when notified), nginx.boot."""
    installed, running = facts.nginx
    family = facts.platform.family
    if family is not None and family.install_nginx is None:
        raise TaskError(f"ppc-tasks serves an index from Debian/Ubuntu and RHEL/Fedora hosts; "
                        f"{host_name} is {facts.platform.os} ({family.name}): use it as a "
                        f"client (clients.configure, certs.trust)")
    if installed:
        steps: list[Step] = [Unchanged("nginx.install", "nginx is installed")]
    elif family is None:
        raise TaskError(f"cannot install nginx on {host_name} ({facts.platform.os}): "
                        f"install it by hand and run again")
    else:
        steps = [Change("nginx.install", done=f"installed nginx ({family.name} packages)",
                        would=f"install nginx ({family.name} packages)",
                        commands=[Command.of(*family.install_nginx)])]
    steps.append(site_step(facts, site, mode, redact))
    if running:
        steps.append(reload_step(settings, facts))
    else:
        start = nginx_service(facts.platform).start
        steps.append(Change("nginx.service", done="started nginx", would="start nginx",
                            commands=[load_command(settings, facts, start)]))
    return [*steps, boot_step("nginx.boot", "nginx", facts)]


def plan_switch(settings: Settings, facts: Facts, upstream_port: int) -> list[Step]:
    """For a server replaced on its own (server.deploy): point a running nginx's site at
    the new container. Without a site or a running nginx there is nothing to switch."""
    running = facts.nginx is not None and facts.nginx[1]
    if running and facts.file(SITE_PATH).state is not None:
        return [site_step(facts, render_site(settings, upstream_port)),
                reload_step(settings, facts)]
    return []


def reload_step(settings: Settings, facts: Facts) -> Handler:
    """A graceful reload when an earlier step asks for one (nginx.reload: the site, the
    certificate), or when nginx has not read the files as they are (a run stopped before
    its reload); it returns once the new configuration is live (files/sh/reload-nginx.sh)."""
    def reload(why: str) -> Change:
        return Change("nginx.service", done=f"reloaded nginx ({why})", would=f"reload nginx: {why}",
                      commands=[Command.of("nginx", "-t", failure="nginx rejects the new "
                                                                 "certificate"),
                                reload_command(settings, facts)])

    stale = not runs_files_as_they_are(settings, facts)
    return Handler("nginx.service", "nginx.reload", reload("its site or certificate changes"),
                   reload("it has not loaded the site or certificate as they are") if stale
                   else Unchanged("nginx.service", "nginx is running with this configuration"))


def reload_command(settings: Settings, facts: Facts) -> Command:
    return load_command(settings, facts, nginx_service(facts.platform).reload)


def load_command(settings: Settings, facts: Facts, command: tuple[str, ...]) -> Command:
    return Command.of(*script_argv("reload-nginx", LOADED_PATH, *loaded_files(settings), "--",
                                   *command))


def site_step(facts: Facts, site: bytes, mode: str = "644",
              redact: Callable[[str], str] = lambda text: text) -> Step:
    """The site, written only if `nginx -t` accepts it (else the previous one stays)."""
    step = file_step("nginx.site", SITE_PATH, site, facts.file(SITE_PATH), mode=mode,
                     owner="0:0", redact=redact, notifies=("nginx.reload",))
    if isinstance(step, Change):
        step.commands = [Command.of(*script_argv("put-checked", script("put-file"), SITE_PATH,
                                                 mode, "nginx", "-t"),
                                    stdin=site,
                                    failure="nginx rejected the new configuration, the "
                                            "previous one stays live")]
    return step
