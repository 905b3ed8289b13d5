"""`balancer`: nginx in front of several index hosts that serve one index.

The index hosts keep their packages in S3 and their cache in a shared database
(ppc.storage, ppc.cache_url), so any of them answers any request. The balancer holds
the index's certificate for the names clients use, forwards over TLS to the hosts in
ppc.index_hosts (verified against the index's CA), leaves a failing host out for a few
seconds and retries a failed download on the next host. Clients point at the shared
name, which resolves to the balancer.
"""

from __future__ import annotations

import datetime

from . import index
from .plans.balancer import plan_balancer, queries
from .wiring import host_task


@host_task
def deploy(host):
    """Put nginx in front of the index hosts (ppc.index_hosts), for the index's names.

    nginx comes from the distribution's packages. Clients reach the balancer over TLS
    with the index's certificate; it forwards to the index hosts over TLS, checked
    against the index's CA, leaves a failing host out for 5 s and retries a download
    that failed on the next host (never an upload). Point the index's name at this host.
    The index hosts need shared stores (ppc.storage = s3, ppc.cache_url).
    """
    facts = index.settle(host, host.read_facts(queries(host.settings)), queries)
    plan = plan_balancer(host.settings, facts, datetime.datetime.now(datetime.timezone.utc),
                         host.name)
    host.carry_out(plan)
