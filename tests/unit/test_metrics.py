"""/metrics: what the guard counts and who may read it (docker/server/ppc_guard/metrics.py),
and what ppc-tasks writes for it (config.ini, the scrape job)."""

from __future__ import annotations

import hashlib
import sys

import pytest
from invoke.vendor import yaml
from prometheus_client.parser import text_string_to_metric_families

from ppc_tasks import config_ini, credentials
from ppc_tasks import metrics as ppc_metrics
from ppc_tasks.render import DOCKER_DIR
from ppc_tasks.settings import Settings, SettingsError

sys.path.insert(0, str(DOCKER_DIR / "server"))
from ppc_guard import metrics  # noqa: E402  (the image's, not ours)

sys.path.remove(str(DOCKER_DIR / "server"))


@pytest.mark.parametrize("method, path, kind", [
    ("GET", "/simple/", "simple"), ("GET", "/simple/acme-tools/", "simple"),
    ("GET", "/pypi/acme-tools/", "simple"), ("GET", "/pypi/acme-tools/json", "api"),
    ("POST", "/simple/", "upload"), ("POST", "/pypi/", "upload"),
    ("GET", "/api/package/acme-tools/acme_tools-1.0-py3-none-any.whl", "file"),
    ("GET", "/api/package/acme-tools/acme_tools-1.0-py3-none-any.whl.metadata", "metadata"),
    ("GET", "/api/package/", "api"), ("GET", "/admin/yank/a/1", "admin"),
    ("GET", "/health", "other"), ("POST", "/_/oidc/mint-token", "other"),
    ("GET", "/metrics", "other"), ("GET", "/", "other"),
])
def test_every_request_has_a_route_kind_and_no_name(method, path, kind):
    assert metrics.route_kind(method, path) == kind


def families(exposition: bytes) -> dict:
    return {family.name: family for family in text_string_to_metric_families(exposition.decode())}


def value(found: dict, family: str, sample: str, **labels) -> float:
    return next(item.value for item in found[family].samples
                if item.name == sample and item.labels == labels)


def test_the_series_count_time_and_figure_with_kinds_for_labels():
    counted = metrics.Metrics(lambda: {"store_projects": 2, "store_files": 5, "store_bytes": 900,
                                       "volume_free_bytes": 10, "volume_size_bytes": 100,
                                       "cache_connections_in_use": 1, "cache_pool_size": 5},
                              {"image": "ppc/pypicloud:1.3.12", "release": "0.1.0"})
    counted.request("GET", "/simple/acme-tools/", 200, 0.004)
    counted.request("POST", "/simple/", 403, 0.2)
    counted.logins.labels("wrong").inc()
    counted.uploads.labels("not_allowed").inc()
    found = families(counted.exposition())
    assert value(found, "ppc_http_requests", "ppc_http_requests_total", route="simple",
                 status_class="2xx") == 1
    assert value(found, "ppc_http_requests", "ppc_http_requests_total", route="upload",
                 status_class="4xx") == 1
    assert value(found, "ppc_http_request_duration_seconds",
                 "ppc_http_request_duration_seconds_bucket", route="simple", le="0.005") == 1
    assert value(found, "ppc_logins", "ppc_logins_total", outcome="wrong") == 1
    assert value(found, "ppc_logins", "ppc_logins_total", outcome="ok") == 0  # there, at 0
    assert value(found, "ppc_uploads", "ppc_uploads_total", outcome="not_allowed") == 1
    assert value(found, "ppc_store_files", "ppc_store_files") == 5
    assert value(found, "ppc_volume_free_bytes", "ppc_volume_free_bytes") == 10
    assert value(found, "ppc_cache_connections_in_use", "ppc_cache_connections_in_use") == 1
    assert value(found, "ppc_build_info", "ppc_build_info", image="ppc/pypicloud:1.3.12",
                 release="0.1.0") == 1
    assert all(found[name].documentation for name in found)  # each with its help text
    labels = {key for family in found.values() for sample in family.samples
              for key in sample.labels}
    assert labels <= {"route", "status_class", "outcome", "result", "le", "image", "release"}


def test_the_last_hour_counts_the_answers_clients_got_minute_by_minute():
    now = [10_000.0]
    counted = metrics.Metrics()
    counted.last_hour = metrics.LastHour(clock=lambda: now[0])
    for status in (200, 200, 502, 500):
        counted.request("GET", "/simple/acme-tools/", status, 0.01)
    counted.request("GET", "/health", 500, 0.01)  # the container's own checks
    counted.request("GET", "/metrics", 200, 0.01)  # and scrapes are not among them
    assert counted.last_hour.figures() == {"answers": 4, "server_errors": 2}
    now[0] += 59 * 60
    counted.request("POST", "/simple/", 200, 0.3)
    assert counted.last_hour.figures() == {"answers": 5, "server_errors": 2}
    now[0] += 60  # the first minute has left the hour
    assert counted.last_hour.figures() == {"answers": 1, "server_errors": 0}
    now[0] += 3 * 3600
    counted.request("GET", "/simple/", 200, 0.01)
    assert counted.last_hour.figures() == {"answers": 1, "server_errors": 0}
    assert len(counted.last_hour.minutes) == 1  # what left the hour is dropped


def test_figures_that_cannot_be_read_leave_the_rest():
    counted = metrics.Metrics(lambda: {}, {})
    found = families(counted.exposition())
    assert "ppc_store_files" not in found and "ppc_http_requests" in found


def test_only_the_credential_or_an_allowed_address_reads_the_metrics():
    token = "the-scrape-credential"
    sha = hashlib.sha256(token.encode()).hexdigest()
    allowed_networks = metrics.networks("10.0.0.5 192.168.7.0/24 fd00::/8")
    assert metrics.allowed("172.17.0.1", f"Bearer {token}", sha, ())
    assert metrics.allowed("172.17.0.1", f"bearer {token}", sha, ())
    assert not metrics.allowed("172.17.0.1", "Bearer wrong", sha, ())
    assert not metrics.allowed("172.17.0.1", f"Basic {token}", sha, ())
    assert not metrics.allowed("172.17.0.1", None, sha, allowed_networks)
    assert not metrics.allowed("172.17.0.1", "Bearer ", "", ())  # no credential made yet
    assert metrics.allowed("10.0.0.5", None, sha, allowed_networks)
    assert metrics.allowed("192.168.7.77", None, sha, allowed_networks)
    assert metrics.allowed("fd00::1", None, sha, allowed_networks)
    assert not metrics.allowed("10.0.0.6", None, sha, allowed_networks)
    assert not metrics.allowed("not an address", None, sha, allowed_networks)


def test_config_ini_carries_the_credential_s_hash_and_the_allowed_networks():
    settings = Settings.from_config({"metrics_allow": ["10.0.0.0/24", "10.1.2.3"]},
                                    host="pypi.test")
    creds = credentials.Credentials()
    credentials.complete(creds, settings.accounts)
    assert len(creds.metrics_token) >= 40
    config = config_ini.render_config(settings, creds).decode()
    assert f"ppc_guard.metrics_token_sha256 = " \
           f"{hashlib.sha256(creds.metrics_token.encode()).hexdigest()}" in config
    assert creds.metrics_token not in config
    assert "ppc_guard.metrics_allow = 10.0.0.0/24 10.1.2.3" in config
    assert "ppc_guard.build_info = image=ppc/pypicloud:1.3.12 release=" in config
    assert "metrics_token_sha256 = <redacted>" in config_ini.redact_config(config)


def test_a_network_that_is_none_is_one_line():
    with pytest.raises(SettingsError, match=r"ppc.metrics_allow: '10.0.0.300' is no IP address"):
        Settings.from_config({"metrics_allow": "10.0.0.300"}, host="pypi.test")


@pytest.mark.parametrize("ca_file", ["/etc/prometheus/ppc/pypi.test-ca.crt", None])
def test_the_scrape_jobs_are_prometheus_yaml(ca_file, tmp_path):
    cluster = Settings.from_config({
        "server_names": ["pypi.test"], "state_dir": str(tmp_path), "storage": "s3",
        "index_hosts": ["pypi1.test", "pypi2.test"], "s3_bucket": "pypi",
        "s3_access_key_id": "k", "cache_url": "redis://cache"}, host=None)
    jobs = yaml.safe_load(ppc_metrics.scrape_jobs(
        cluster, "/etc/prometheus/ppc/pypi.test-metrics-token", ca_file))
    # Each index host, and the balancer at the index's name: all with one credential and CA.
    assert [(job["job_name"], job["static_configs"]) for job in jobs] == [
        ("ppc-pypi.test", [{"targets": ["pypi1.test:443", "pypi2.test:443"]}]),
        ("ppc-pypi.test-balancer", [{"targets": ["pypi.test:443"]}])]
    for scrape in jobs:
        assert scrape["scheme"] == "https" and scrape["metrics_path"] == "/metrics"
        assert scrape["authorization"] == {
            "type": "Bearer", "credentials_file": "/etc/prometheus/ppc/pypi.test-metrics-token"}
        assert scrape["tls_config"].get("ca_file") == ca_file
        assert scrape["tls_config"]["server_name"] == "pypi.test"
    one_host = Settings.from_config({"server_names": ["pypi.test"]}, host=None)
    [job] = yaml.safe_load(ppc_metrics.scrape_jobs(one_host, "/token", ca_file))
    assert job["static_configs"] == [{"targets": ["pypi.test:443"]}]


def test_the_certificate_the_ca_and_the_last_backup_are_read_from_their_files(tmp_path):
    import datetime

    from ppc_tasks.plans import certs

    now = datetime.datetime(2026, 12, 6, tzinfo=datetime.timezone.utc)
    ca, ca_key = certs.new_ca(("pypi.test",), constrained=True, now=now)
    certificate, _ = certs.new_server_certificate(ca, ca_key, ("pypi.test",), now)
    (tmp_path / "tls").mkdir()
    (tmp_path / "tls" / "certificate.pem").write_bytes(certs.pem(certificate))
    (tmp_path / "tls" / "ca.pem").write_bytes(certs.pem(ca))
    (tmp_path / "last-verified-backup").write_text("2026-12-05T03:00:00Z\n")
    found = metrics.file_figures(str(tmp_path / "tls"), str(tmp_path / "last-verified-backup"))
    assert found == {
        "certificate_expiry_seconds": certificate.not_valid_after_utc.timestamp(),
        "ca_expiry_seconds": ca.not_valid_after_utc.timestamp(),
        "backup_verified_seconds": datetime.datetime(
            2026, 12, 5, 3, tzinfo=datetime.timezone.utc).timestamp()}
    (tmp_path / "last-verified-backup").write_text("garbage")
    (tmp_path / "tls" / "ca.pem").write_text("not a certificate")
    assert set(metrics.file_figures(str(tmp_path / "tls"), str(tmp_path / "nothing"))) == {
        "certificate_expiry_seconds"}
