"""`certs`: the index's TLS certificate and the trust in it (manual step 6).

By default a small CA is made once on the operator's machine (mkcert's parameters, plus
name constraints so it can sign for this index's names only). Its key never leaves that
machine: only the server certificate and key go to the server, and only the CA
certificate goes into trust stores. Operators with a certificate from a company CA or
ACME bring their own instead (settings tls_cert/tls_key, or tls_host_cert/tls_host_key
for files that already live on the server).
"""

from __future__ import annotations

import datetime

from . import index, local
from .facts import PLATFORM
from .plan import Plan
from .plans.certs import (
    ca_to_trust,
    install_queries,
    plan_install,
    plan_metrics_copies,
    plan_trust,
    prepare,
    trust_queries,
)
from .settings import Settings
from .wiring import host_task


# -- tasks ---------------------------------------------------------------------------------
@host_task
def install(host):
    """Issue the server certificate (from the local CA, made once) and put it on the host.

    Copies of the certificate and the CA go into the config folder too, where the
    server reads their expiry for /metrics."""
    def asked(settings: Settings) -> list[str]:
        return [PLATFORM.query(), *index.queries(settings), *install_queries(settings)]

    facts = index.settle(host, host.read_facts(asked(host.settings)), asked)
    here = local.read(host.settings)
    tls = prepare(host.settings, datetime.datetime.now(datetime.timezone.utc), here=here)
    plan = Plan()
    plan.add(*tls.steps, index.identity_step(host.settings, facts, here.record),
             plan_install(host.settings, tls, facts),
             plan_metrics_copies(host.settings, tls, facts))
    host.carry_out(plan)


@host_task(for_server=False)
def trust(host):
    """Add the index's CA certificate to the host's system trust store.

    Example: ppc -H dev1 certs.trust

    Works on Debian and Ubuntu (update-ca-certificates), RHEL and Fedora
    (update-ca-trust), Arch (trust extract-compat), openSUSE (update-ca-certificates),
    Alpine (update-ca-certificates) and macOS (the System keychain); a host that already
    trusts it is left alone. The index is the one deployed from this machine; --index
    NAME picks one of several.
    """
    facts = host.read_facts([PLATFORM.query(), *trust_queries(host.settings)])
    plan = Plan()
    plan.add(plan_trust(host.settings, facts, ca_to_trust(host.settings), host.name))
    host.carry_out(plan)
