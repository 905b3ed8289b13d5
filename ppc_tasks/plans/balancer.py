"""What `balancer` decides, from the settings and a host's facts alone: the facts it
asks for, its steps and what they render (its tasks: ppc_tasks/balancer.py)."""

from __future__ import annotations

import datetime
import ipaddress
import re

from .. import index, local, tls_paths
from ..errors import TaskError
from ..facts import COMMAND, PLATFORM, PORTS, TEXT, UNIT, Facts
from ..plan import Change, Command, Handler, Plan, Step, Unchanged, boot_step, file_step
from ..render import render, script_argv
from ..settings import Settings
from . import certs, nginx

# The first line of the balancer's site: how deploy tells a balancer from an index host.
MARK = b"(balancer.deploy)"
# The balancer's own figures: nginx's counters (stub_status) for its Prometheus exporter,
# which serves them where only nginx reaches it; nginx answers them as /metrics.
EXPORTER = "prometheus-nginx-exporter"
EXPORTER_DEFAULTS = f"/etc/default/{EXPORTER}"  # its arguments (read by its unit)
STUB_STATUS_ADDRESS = "127.0.0.1:9112"
EXPORTER_PORT = 9113
EXPORTER_ADDRESS = f"127.0.0.1:{EXPORTER_PORT}"
TOKEN = re.compile(r"[A-Za-z0-9_-]+")  # secrets.token_urlsafe's alphabet: no regex syntax


def upstream(host: str) -> str:
    try:
        return f"[{host}]:443" if ipaddress.ip_address(host).version == 6 else f"{host}:443"
    except ValueError:
        return f"{host}:443"


def has_exporter(facts: Facts) -> bool:
    """Whether the host's system packages nginx's exporter (Debian and Ubuntu do)."""
    family = facts.platform.family
    return family is not None and family.install_nginx_exporter is not None


def render_site(settings: Settings, ca_path: str, metrics_token: str, exporter: bool) -> bytes:
    """The site; with the exporter, /metrics answers the balancer's figures to the scrape
    credential (metrics_token, "" while the index has none) and ppc.metrics_allow. It
    holds the credential: written 0600 (nginx reads it as root)."""
    if metrics_token and not TOKEN.fullmatch(metrics_token):
        raise TaskError(f"{settings.secrets_path}: metrics_token must be letters, digits, "
                        f"'-' and '_': delete it and deploy again for a new one")
    certificate_path, key_path = tls_paths.host_cert_paths(settings)
    return render("balancer-site.conf.j2", server_names=settings.server_names,
                  upstreams=[upstream(host) for host in settings.index_hosts],
                  certificate_path=certificate_path, key_path=key_path,
                  upstream_ca_path=ca_path, max_upload_size=settings.max_upload_size,
                  exporter_address=EXPORTER_ADDRESS if exporter else "",
                  stub_status_address=STUB_STATUS_ADDRESS, metrics_token=metrics_token,
                  metrics_allow=nginx.networks(settings.metrics_allow))


def hide_credential(text: str) -> str:
    """The site as previews show it: without the scrape credential."""
    return re.sub(r'"~\^Bearer [^"]*"', '"~^Bearer (the metrics credential)$"', text)


def render_exporter_defaults() -> bytes:
    return render("nginx-exporter.default.j2", stub_status_address=STUB_STATUS_ADDRESS,
                  exporter_address=EXPORTER_ADDRESS)


def is_balancer(facts: Facts) -> bool:
    site = facts.file(nginx.SITE_PATH)
    return site.state is not None and MARK in (site.content or b"").split(b"\n", 1)[0]


def upstream_trust(settings: Settings, facts: Facts) -> str:
    """The CA file nginx checks the index hosts against: the index's CA, or the system's
    bundle for a publicly trusted certificate."""
    if tls_paths.ca_path(settings) is None:
        return facts.platform.trust_store.bundle if facts.platform.trust_store else ""
    return tls_paths.upstream_ca_path(settings)


def exporter_queries() -> list[str]:
    return [COMMAND.query(EXPORTER), UNIT.query(EXPORTER), PORTS.query(), TEXT.query(EXPORTER_DEFAULTS)]


def queries(settings: Settings) -> list[str]:
    return [PLATFORM.query(), *index.queries(settings), *nginx.queries(settings),
            TEXT.query(tls_paths.upstream_ca_path(settings)), *exporter_queries()]


def plan_balancer(settings: Settings, facts: Facts, now: datetime.datetime,
                  host_name: str) -> Plan:
    """The index's certificate, the CA it checks the index hosts against, and nginx."""
    if not settings.index_hosts:
        raise TaskError("ppc.index_hosts: list the index hosts the balancer forwards to")
    if facts.containers.get(settings.server_container) is not None:
        raise TaskError(f"{host_name} is an index host (it runs {settings.server_container}): "
                        f"a balancer needs a host of its own")
    here = local.read(settings)
    tls = certs.prepare(settings, now, here=here)
    plan = Plan()
    plan.add(*tls.steps, index.identity_step(settings, facts, here.record),
             certs.plan_install(settings, tls, facts))
    ca_path = upstream_trust(settings, facts)
    if tls.ca is None:  # a publicly trusted certificate: the system's bundle checks it
        plan.add(Unchanged("balancer.ca", f"index hosts are checked against {ca_path}"))
    else:
        plan.add(file_step("balancer.ca", ca_path, tls.ca, facts.file(ca_path), mode="644",
                           owner="0:0", notifies=("nginx.reload",)))
    site = render_site(settings, ca_path, here.credentials.metrics_token, has_exporter(facts))
    plan.add(*nginx.plan_nginx(settings, facts, host_name, site, mode="600",
                               redact=hide_credential))
    if not settings.trusted_proxies:
        plan.add(Unchanged("balancer.clients", "the index hosts see every client as this "
                                               "host: name its address in ppc.trusted_proxies "
                                               "and deploy them (docs/scaling.md)"))
    if not here.credentials.metrics_token:
        plan.add(Unchanged("balancer.metrics", "the index has no metrics credential yet: "
                                               "deploy its hosts, then balancer.deploy again"))
    plan.add(*plan_exporter(facts))
    return plan


def exporter_running(facts: Facts) -> bool:
    if facts.platform.systemd:
        return facts.unit_active(EXPORTER)
    return EXPORTER_PORT in facts.ports


def plan_exporter(facts: Facts) -> list[Step]:
    """exporter.config, exporter.install, exporter.service, exporter.boot: nginx's
    exporter from the system's packages, started with its arguments already in place
    (so it never listens beyond the loopback address), after nginx serves stub_status."""
    family = facts.platform.family
    if not has_exporter(facts):
        return [Unchanged("exporter.install", f"{facts.platform.os} packages no nginx exporter: "
                                              f"the balancer's /metrics answers 404")]
    config = file_step("exporter.config", EXPORTER_DEFAULTS, render_exporter_defaults(),
                       facts.file(EXPORTER_DEFAULTS), mode="644", owner="0:0",
                       notifies=("exporter.restart",))
    if facts.commands.get(EXPORTER):
        install: Step = Unchanged("exporter.install", f"{EXPORTER} is installed")
    else:
        install = Change("exporter.install", done=f"installed {EXPORTER} ({family.name} packages)",
                         would=f"install {EXPORTER} ({family.name} packages)",
                         commands=[Command.of(*family.install_nginx_exporter)],
                         notifies=("exporter.restart",))
    command = (("systemctl", "restart", EXPORTER) if facts.platform.systemd
               else ("service", EXPORTER, "restart"))

    def start(done: str, would: str) -> Change:
        return Change("exporter.service", done=done, would=would, commands=[Command.of(
            *script_argv("wait-listening", str(EXPORTER_PORT), "30", "--", *command),
            failure=f"{EXPORTER} does not serve on {EXPORTER_ADDRESS} (journalctl -u "
                    f"{EXPORTER} says why)")])

    if exporter_running(facts):
        unasked: Change | Unchanged = Unchanged("exporter.service",
                                                f"{EXPORTER} serves on {EXPORTER_ADDRESS}")
    else:
        unasked = start(f"started {EXPORTER}", f"start {EXPORTER}: it is not running")
    service = Handler("exporter.service", "exporter.restart",
                      start(f"restarted {EXPORTER} (its arguments or package changed)",
                            f"restart {EXPORTER}: its arguments or package change"), unasked)
    return [config, install, service, boot_step("exporter.boot", EXPORTER, facts)]
