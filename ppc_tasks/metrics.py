"""`metrics`: what an operator's Prometheus needs to scrape the index.

Every index host answers /metrics (the server's guard: docker/server/ppc_guard/metrics.py),
and a balancer its nginx's figures (plans/balancer.py), to a scraper that sends the
index's metrics credential as a bearer token, or comes from an address the setting
metrics_allow names; anyone else gets 401. The first deploy makes
the credential and keeps it in secrets.json, beside the passwords.
"""

from __future__ import annotations

from pathlib import Path

from fabric import task

from . import credentials, state
from .errors import TaskError, program
from .plans import certs
from .render import render
from .settings import Settings
from .wiring import OPTION_HELP, expected_failures, settings_of


@task(auto_shortflags=False, help={
    "directory": "where to write the credential and the CA (default: here)",
    "index": OPTION_HELP["index"]})
def scrape_config(c, directory=".", index=""):
    """Write the scrape credential (and the index's CA) for Prometheus; print its job.

    Example: ppc metrics.scrape-config --directory /etc/prometheus/ppc

    Writes <index>-metrics-token and <index>-ca.crt (0600: give them to the user
    Prometheus runs as) and prints the scrape job for prometheus.yml: HTTPS to each index
    host, the CA, the server name, the credential as a bearer token; with index_hosts, a
    second job for the balancer's own figures (nginx's, at the index's name). No -H: it reads this
    machine's state of the index (--index NAME picks one when several were deployed).
    """
    with expected_failures():
        settings = settings_of(c, for_server=False, index_option=index)
        token = credentials.load(settings.secrets_path).metrics_token
        if not token:
            raise TaskError(f"the index {settings.index_name} has no metrics credential yet: "
                            f"deploy it (a deploy makes one)")
        folder = Path(directory).expanduser().resolve()
        token_file = folder / f"{settings.index_name}-metrics-token"
        state.write(token_file, token.encode(), private_folder=False)
        ca = certs.ca_to_trust(settings)
        ca_file = folder / f"{settings.index_name}-ca.crt" if ca else None
        if ca_file:
            state.write(ca_file, ca, private_folder=False)
    print(scrape_jobs(settings, token_file, ca_file).decode(), end="")


def scrape_jobs(settings: Settings, token_file: Path, ca_file: Path | None) -> bytes:
    """The jobs for prometheus.yml: the index's hosts, and with index_hosts its balancer
    (which the index's first name reaches)."""
    jobs = [(f"ppc-{settings.index_name}", settings.index_hosts or settings.server_names[:1])]
    if settings.index_hosts:
        jobs.append((f"ppc-{settings.index_name}-balancer", settings.server_names[:1]))
    return render("prometheus-scrape.yml.j2", index=settings.index_name, program=program(),
                  token_file=token_file, ca_file=ca_file, jobs=jobs,
                  balancer=bool(settings.index_hosts))
