"""What `balancer` decides, from the settings and a host's facts alone: the facts it
asks for, its steps and what they render (its tasks: ppc_tasks/balancer.py)."""

from __future__ import annotations

import datetime
import ipaddress

from .. import index, local, tls_paths
from ..errors import TaskError
from ..facts import PLATFORM, TEXT, Facts
from ..plan import Plan, Unchanged, file_step
from ..render import render
from ..settings import Settings
from . import certs, nginx

# The first line of the balancer's site: how deploy tells a balancer from an index host.
MARK = b"(balancer.deploy)"


def upstream(host: str) -> str:
    try:
        return f"[{host}]:443" if ipaddress.ip_address(host).version == 6 else f"{host}:443"
    except ValueError:
        return f"{host}:443"


def render_site(settings: Settings, ca_path: str) -> bytes:
    certificate_path, key_path = tls_paths.host_cert_paths(settings)
    return render("balancer-site.conf.j2", server_names=settings.server_names,
                  upstreams=[upstream(host) for host in settings.index_hosts],
                  certificate_path=certificate_path, key_path=key_path,
                  upstream_ca_path=ca_path, max_upload_size=settings.max_upload_size)


def is_balancer(facts: Facts) -> bool:
    site = facts.file(nginx.SITE_PATH)
    return site.state is not None and MARK in (site.content or b"").split(b"\n", 1)[0]


def upstream_trust(settings: Settings, facts: Facts) -> str:
    """The CA file nginx checks the index hosts against: the index's CA, or the system's
    bundle for a publicly trusted certificate."""
    if tls_paths.ca_path(settings) is None:
        return facts.platform.trust_store.bundle if facts.platform.trust_store else ""
    return tls_paths.upstream_ca_path(settings)


def queries(settings: Settings) -> list[str]:
    return [PLATFORM.query(), *index.queries(settings), *nginx.queries(settings),
            TEXT.query(tls_paths.upstream_ca_path(settings))]


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
    plan.add(*nginx.plan_nginx(settings, facts, host_name, render_site(settings, ca_path)))
    return plan
