"""`nginx`: the TLS front door on the server (manual step 5).

nginx forwards to the port of the live server container. A replacement container
starts on the other of the two ports (`port`, `port + 1`); the site is then switched
to it and nginx reloaded gracefully, so no request ever meets a server that is going.
"""

from __future__ import annotations

from .facts import DOCKER, PLATFORM
from .plan import Plan
from .plans.nginx import plan_nginx, queries, render_site, serving_port
from .wiring import host_task


@host_task
def configure(host):
    """Install nginx if missing and serve the index over HTTPS; HTTP only redirects.

    The site proxies to pypicloud on 127.0.0.1, with TLS 1.2+, the upload size limit
    (max_upload_size), security headers (HSTS, nosniff, no framing) and the forwarded
    headers pypicloud needs for https:// links; other names get no answer. It is checked with
    `nginx -t` before it goes live (a rejected one is rolled back), and nginx is
    reloaded only when the site changed. Needs the certificate from certs.install (or
    tls_host_cert/tls_host_key).
    """
    facts = host.read_facts([PLATFORM.query(), DOCKER.query(), *queries(host.settings)])
    host.carry_out(Plan(plan_nginx(host.settings, facts, host.name,
                                   render_site(host.settings, serving_port(host.settings, facts)))))
