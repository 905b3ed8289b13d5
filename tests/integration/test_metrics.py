"""/metrics on the shared server, through nginx over HTTPS: refused without the scrape
credential, read with it as metrics.scrape-config writes it, and moved by what clients do
(an upload, a wrong login, a page given again); then a real Prometheus (Debian's) scrapes
it with the job scrape-config printed, the shipped alert rules pass promtool, and an
alert fires for real."""

from __future__ import annotations

import json
import stat
import time

import pytest
from invoke.vendor import yaml

from . import harness, web
from . import prometheus as prometheus_server
from .conftest import REPO, SERVER_NAME, password_of

ALERTS = REPO / "files" / "prometheus-alerts.yml"
# The shipped backup alert with a threshold a test can pass: it fires within seconds.
TEST_RULES = """
groups:
  - name: ppc-tasks-test
    rules:
      - alert: PpcNoVerifiedBackupTest
        expr: time() - ppc_backup_last_verified_timestamp_seconds > 1
        annotations: {runbook: "ppc -H <host> backup"}
"""


@pytest.fixture(scope="module")
def scrape_job(fab, deployed, tmp_path_factory):
    """metrics.scrape-config, run as an operator runs it: (the job, the folder it wrote)."""
    folder = tmp_path_factory.mktemp("prometheus")
    made = fab("metrics.scrape-config", "--directory", str(folder), settings=deployed.settings())
    assert made.returncode == 0, made.stdout + made.stderr
    return yaml.safe_load(made.stdout)[0], folder


def scrape(deployed, operator_home, authorization: str | None) -> web.Response:
    headers = {"Authorization": authorization} if authorization else {}
    return web.request(deployed.host.address, "/metrics", headers=headers, sni=SERVER_NAME,
                       host=SERVER_NAME, ca=operator_home / "state" / SERVER_NAME / "ca.crt")


def test_the_scrape_config_names_what_prometheus_needs(scrape_job):
    job, folder = scrape_job
    token_file = folder / f"{SERVER_NAME}-metrics-token"
    assert job["authorization"]["credentials_file"] == str(token_file)
    assert job["tls_config"] == {"ca_file": str(folder / f"{SERVER_NAME}-ca.crt"),
                                 "server_name": SERVER_NAME}
    assert job["static_configs"] == [{"targets": [f"{SERVER_NAME}:443"]}]
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600


def test_metrics_are_read_with_the_credential_or_from_an_allowed_address_only(
        deployed, operator_home, scrape_job, client):
    """From the client (an address metrics_allow does not name): the credential only.
    From this machine (named): without it too."""
    token = (scrape_job[1] / f"{SERVER_NAME}-metrics-token").read_text()
    client.copy_in([operator_home / "state" / SERVER_NAME / "ca.crt"], "/tmp/metrics-ca")

    def from_client(authorization: str | None) -> int:
        return web.from_host(client, f"https://{SERVER_NAME}/metrics", "/tmp/metrics-ca/ca.crt",
                             headers={"Authorization": authorization} if authorization else {})[0]

    for refused in (None, "Bearer not-the-credential", f"Basic {token}"):
        assert from_client(refused) == 401, refused
    assert from_client(f"Bearer {token}") == 200
    read = scrape(deployed, operator_home, None)  # this machine: allowed by address
    assert read.status == 200 and read.headers["content-type"].startswith("text/plain")
    assert token not in read.body.decode()
    wrong = scrape(deployed, operator_home, "Bearer not-the-credential")
    assert wrong.status == 200  # the address lets it in; the header changes nothing


def test_what_clients_do_moves_the_series(deployed, operator_home, scrape_job, make_dists):
    token = (scrape_job[1] / f"{SERVER_NAME}-metrics-token").read_text()
    ca = operator_home / "state" / SERVER_NAME / "ca.crt"

    def index(path, auth=None, **kwargs):
        return web.request(deployed.host.address, path, ca=ca, sni=SERVER_NAME,
                           host=SERVER_NAME, auth=auth, **kwargs)

    before = web.figures(scrape(deployed, operator_home, f"Bearer {token}"))
    dev = ("dev", password_of(operator_home, "dev"))
    assert index("/simple/", ("dev", "not-the-password")).status == 401
    wheel = [path for path in make_dists("ppc-metrics", "1.0") if path.suffix == ".whl"][0]
    assert web.upload_dist(index, dev, wheel).status == 200
    for _ in range(2):  # made, then given again
        assert index("/simple/ppc-metrics/", dev).status == 200
    after = web.figures(scrape(deployed, operator_home, f"Bearer {token}"))

    def moved(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert moved("ppc_logins_total", outcome="wrong") == 1
    assert moved("ppc_logins_total", outcome="ok") >= 3
    assert moved("ppc_uploads_total", outcome="ok") == 1
    assert moved("ppc_http_requests_total", route="upload", status_class="2xx") == 1
    assert moved("ppc_kept_answers_total", result="hit") >= 1
    assert moved("ppc_store_files") == 1
    assert after[("ppc_volume_free_bytes", ())] > 0
    assert any(name == "ppc_build_info" for name, _ in after)
    names = " ".join(f"{name}{labels}" for name, labels in after)
    assert "ppc-metrics" not in names and "dev" not in names  # no project, no account


def test_the_certificate_the_ca_and_the_last_backup_are_in_the_figures(
        deployed, operator_home, scrape_job, fab):
    token = (scrape_job[1] / f"{SERVER_NAME}-metrics-token").read_text()
    backup = fab("backup", host=deployed.host, settings=deployed.settings())
    assert backup.returncode == 0, backup.stdout + backup.stderr
    found = web.figures(scrape(deployed, operator_home, f"Bearer {token}"))
    days = 86400
    now = time.time()
    assert 800 * days < found[("ppc_tls_certificate_expiry_timestamp_seconds", ())] - now < 826 * days
    assert 3600 * days < found[("ppc_tls_ca_expiry_timestamp_seconds", ())] - now
    assert now - found[("ppc_backup_last_verified_timestamp_seconds", ())] < 600



def test_status_pages_when_the_last_verified_backup_is_too_old(deployed, fab):
    """As cron would run it: exit 1, one line naming the problem; --json has the figures."""
    record = "/etc/pypicloud/last-verified-backup"  # the default config_dir's
    kept = deployed.host.out(f"cat {record}")
    deployed.host.exec(f"echo 2026-01-01T00:00:00Z > {record}")
    try:
        paged = fab("status", host=deployed.host, settings=deployed.settings())
        assert paged.returncode == 1
        [line] = [line for line in paged.stderr.splitlines() if line.strip()]
        assert ": backup: the last verified backup was made " in line
        assert "over 26 hours: fab -H <host> backup" in line
        figures = fab("status", "--json", host=deployed.host, settings=deployed.settings())
        [host] = json.loads(figures.stdout)
        found = {check["part"]: check["figures"] for check in host["checks"]}
        assert found["backup"]["made"] == "2026-01-01T00:00:00+00:00"
        assert found["certificate"]["days_left"] > 800 and found["ca"]["days_left"] > 3600
        assert found["data"]["free_bytes"] > 0 and found["data"]["size_bytes"] > 0
        # What clients got in the last hour, as the server counted it (not the checks).
        assert found["server"]["answers_last_hour"] > 0
        assert "server_errors_last_hour" in found["server"]
    finally:
        deployed.host.exec(f"echo {kept} > {record}")
    assert fab("status", host=deployed.host, settings=deployed.settings()).returncode == 0


@pytest.fixture(scope="module")
def prometheus(deployed, scrape_job):
    """Prometheus, scraping every second with the job scrape-config printed (its files at
    the paths it names), the shipped rules and TEST_RULES: its query API's URL."""
    job, folder = scrape_job
    (folder / "alerts.yml").write_bytes(ALERTS.read_bytes())
    (folder / "test-rules.yml").write_text(TEST_RULES)
    with prometheus_server.running(folder, [job], {SERVER_NAME: deployed.host.address},
                                   (folder / "alerts.yml", folder / "test-rules.yml")) as server:
        yield server


def test_promtool_passes_the_shipped_alert_rules(prometheus, scrape_job):
    checked = harness.sh("docker", "exec", prometheus[1], "promtool", "check", "rules",
                         str(scrape_job[1] / "alerts.yml"), check=False)
    output = (checked.stdout + checked.stderr).decode()
    [group] = yaml.safe_load(ALERTS.read_text())["groups"]
    assert checked.returncode == 0 and f"SUCCESS: {len(group['rules'])} rules found" in output, output


def test_prometheus_scrapes_the_index_and_an_alert_fires(prometheus, deployed, operator_home,
                                                         make_dists):
    url, _ = prometheus
    harness.wait_for(lambda: prometheus_server.all_targets_up(url, 1),
                     "Prometheus scraping the index over TLS", timeout=60)
    uploads = 'sum(ppc_uploads_total{outcome="ok"})'
    wrong = 'sum(ppc_logins_total{outcome="wrong"})'
    before = {expression: prometheus_server.query(url, expression)
              for expression in (uploads, wrong)}
    ca = operator_home / "state" / SERVER_NAME / "ca.crt"

    def index(path, auth, **kwargs):
        return web.request(deployed.host.address, path, ca=ca, sni=SERVER_NAME,
                           host=SERVER_NAME, auth=auth, **kwargs)

    assert index("/simple/", ("dev", "wrong")).status == 401
    wheel = [path for path in make_dists("ppc-prometheus", "1.0") if path.suffix == ".whl"][0]
    assert web.upload_dist(index, ("dev", password_of(operator_home, "dev")), wheel).status == 200
    for expression in (uploads, wrong):
        harness.wait_for(lambda: prometheus_server.query(url, expression) > before[expression],
                         f"{expression} moving in Prometheus", timeout=30)

    def firing():
        return [alert for alert in prometheus_server.api(url, "/api/v1/alerts")["alerts"]
                if alert["labels"]["alertname"] == "PpcNoVerifiedBackupTest"
                and alert["state"] == "firing"]

    harness.wait_for(firing, "the backup alert firing", timeout=60)
    assert firing()[0]["annotations"]["runbook"] == "ppc -H <host> backup"
