"""status decides from facts alone: each check, with facts written by hand."""

from __future__ import annotations

import base64
import datetime
import hashlib

from ppc_tasks import tls_paths
from ppc_tasks.facts import (
    ContainerFacts,
    Facts,
    FileFacts,
    FileState,
    LastHour,
    VolumeUsage,
    parse_health_report,
)
from ppc_tasks.plans import balancer, certs, nginx, server, status
from ppc_tasks.settings import Settings
from ppc_tasks.system import parse_platform

NOW = datetime.datetime(2026, 11, 25, 12, 0, tzinfo=datetime.timezone.utc)


def settings(tmp_path) -> Settings:
    return Settings.from_config({"server_names": ["pypi.test"], "state_dir": str(tmp_path)},
                                host=None)


def certificate_facts(settings: Settings, issued: datetime.datetime, names=None) -> Facts:
    names = tuple(names or settings.certificate_names)
    ca, ca_key = certs.new_ca(names, "*" not in "".join(names), issued)
    certificate, _ = certs.new_server_certificate(ca, ca_key, names, issued)
    content = certs.pem(certificate)
    path, _ = tls_paths.host_cert_paths(settings)
    return Facts(platform=parse_platform("os=debian\nsystemd=1"),
                 files={path: FileFacts(FileState(hashlib.sha256(content).hexdigest(), "644",
                                                  "0:0"), content=content)})


def test_a_certificate_that_expires_within_30_days_is_a_problem(tmp_path):
    current = settings(tmp_path)
    fresh = status.check_certificate(current, certificate_facts(current, NOW), NOW)
    assert fresh.detail.startswith("pypi.test; 825 days left; issuer CN=ppc-tasks CA for pypi.test")
    almost = NOW - certs.SERVER_VALIDITY + datetime.timedelta(days=12)
    expiring = status.check_certificate(current, certificate_facts(current, almost), NOW)
    assert not expiring.ok and "expires in 12 days" in expiring.detail


def test_a_wildcard_certificate_covers_as_it_does_for_the_settings(tmp_path):
    """The settings accept an own certificate for *.example.com (tests/unit/test_settings.py);
    status says the same of it, and names what it does not cover."""
    current = Settings.from_config({"server_names": ["pypi.example.com"],
                                    "state_dir": str(tmp_path)}, host=None)
    wildcard = status.check_certificate(current, certificate_facts(current, NOW, ("*.example.com",)),
                                        NOW)
    assert "does not cover" not in wildcard.detail
    elsewhere = Settings.from_config({"server_names": ["pypi.other.org"],
                                      "state_dir": str(tmp_path)}, host=None)
    other = status.check_certificate(elsewhere, certificate_facts(elsewhere, NOW, ("*.example.com",)),
                                     NOW)
    assert not other.ok and "does not cover pypi.other.org" in other.detail


def test_the_server_is_healthy_only_running_and_answering():
    current = Settings.from_config({}, host="pypi.test")
    running = ContainerFacts("spec", True, 3031, restarts=2, started_at="2026-11-25T09:59:00.123Z")
    facts = Facts(containers={"pypicloud": running}, health={"pypicloud": True})
    check = status.check_server(current, facts, NOW)
    assert check.ok and check.detail == "pypicloud up 2h, /health answers, restarted 2 times"
    facts.health["pypicloud"] = False
    assert not status.check_server(current, facts, NOW).ok


def test_the_server_pages_when_over_5_percent_of_the_last_hour_were_server_errors():
    current = Settings.from_config({}, host="pypi.test")
    running = ContainerFacts("spec", True, 3031, started_at="2026-11-25T09:59:00.123Z")
    facts = Facts(containers={"pypicloud": running}, health={"pypicloud": True},
                  last_hour={"pypicloud": LastHour(answers=400, server_errors=20)})
    check = status.check_server(current, facts, NOW)
    assert check.ok and check.detail.endswith(
        "; 20 of 400 answers in the last hour were server errors (5xx)")
    assert check.figures == {"answers_last_hour": 400, "server_errors_last_hour": 20}
    facts.last_hour["pypicloud"] = LastHour(answers=400, server_errors=21)
    paged = status.check_server(current, facts, NOW)
    assert not paged.ok and paged.detail.endswith("were server errors (5xx): ppc -H <host> logs "
                                                  "says why")
    # One failure of a quiet hour pages no one; a server up for minutes says so.
    facts.last_hour["pypicloud"] = LastHour(answers=2, server_errors=1)
    assert status.check_server(current, facts, NOW).ok
    young = ContainerFacts("spec", True, 3031, started_at="2026-11-25T11:50:00Z")
    facts.containers["pypicloud"] = young
    assert "1 of 2 answers since it started" in status.check_server(current, facts, NOW).detail


def test_little_disk_left_where_packages_live_is_a_problem():
    current = Settings.from_config({}, host="pypi.test")
    facts = Facts(volumes={"pypicloud-data": "data"},
                  data_containers={"pypi_data:/var/lib/pypicloud": ("pypicloud-data", "data")},
                  volume_usage={"pypicloud-data": VolumeUsage(5_000_000, 40, 12, 200_000_000)})
    check = status.check_data(current, facts)
    assert not check.ok and "12 projects, 40 files" in check.detail and "less than 1 GB" in check.detail


def test_rollback_says_what_runs_and_what_rollback_would_return_to():
    settings = Settings.from_config({"server_names": ["pypi.test"]}, host=None)
    running = ContainerFacts("spec", True, 3031, image="ppc/pypicloud:1.3.12-new")
    record = b"ppc/pypicloud:1.3.12-old|oldspec\n"
    facts = Facts(containers={"pypicloud": running},
                  files={server.ROLLBACK_CONTAINER: FileFacts(None)})
    assert status.check_rollback(settings, facts).detail == (
        "runs ppc/pypicloud:1.3.12-new; rollback target: none yet")
    facts.files[server.ROLLBACK_CONTAINER] = FileFacts(
        FileState(hashlib.sha256(record).hexdigest(), "600", "0:0"), content=record)
    assert status.check_rollback(settings, facts).detail == (
        "runs ppc/pypicloud:1.3.12-new; rollback target: ppc/pypicloud:1.3.12-old (ppc rollback)")


def test_s3_and_a_shared_cache_are_checked_as_the_server_sees_them(tmp_path):
    shared = Settings.from_config({"server_names": ["pypi.test"], "state_dir": str(tmp_path),
                                   "storage": "s3", "s3_bucket": "pypi", "s3_access_key_id": "k",
                                   "s3_endpoint_url": "http://s3.test:8080",
                                   "cache_url": "redis://cache.test"}, host=None)
    healthy = Facts(health_report={"pypicloud": {"access": "", "cache": "", "storage": ""}})
    assert [(check.part, check.ok, check.detail)
            for check in status.check_shared_stores(shared, healthy)] == [
        ("storage", True, "s3 bucket pypi at http://s3.test:8080: ok"),
        ("cache", True, "redis://cache.test:6379/0: ok")]
    failing = Facts(health_report={"pypicloud": {"cache": "Error 111 connecting", "storage": ""}})
    assert [check.ok for check in status.check_shared_stores(shared, failing)] == [True, False]
    silent = status.check_shared_stores(shared, Facts())
    assert silent[0].detail == "s3 bucket pypi at http://s3.test:8080: unknown (the server does not answer)"
    # An index on its own file store and sqlite has the data row instead.
    assert status.check_shared_stores(settings(tmp_path), healthy) == []
    # With nothing kept on the host, its empty volume is what is expected.
    empty = Facts(volumes={"pypicloud-data": "empty"},
                  data_containers={"pypi_data:/var/lib/pypicloud": ("pypicloud-data", "data")})
    assert status.check_data(shared, empty).ok
    assert not status.check_data(settings(tmp_path), empty).ok


def test_the_health_report_survives_what_a_server_may_print():
    assert parse_health_report("") == ({}, None)
    assert parse_health_report("bm90IGpzb24=") == ({}, None)  # "not json"
    assert parse_health_report("eyJjYWNoZSI6ICIifQ==") == ({"cache": ""}, None)  # an older guard
    # The guard's figures of the last hour, beside the parts.
    assert parse_health_report("eyJjYWNoZSI6ICIiLCAicHBjX2xhc3RfaG91ciI6IHsiYW5zd2VycyI6IDcsICJzZXJ2ZXJfZXJyb3JzIjogMX19") == ({"cache": ""}, LastHour(7, 1))
    odd = base64.b64encode(b'{"cache": "", "ppc_last_hour": {"answers": "many"}}').decode()
    assert parse_health_report(odd) == ({"cache": ""}, None)


def test_a_balancer_is_checked_for_its_certificate_nginx_and_exporter_not_for_an_index(tmp_path):
    cluster = Settings.from_config({"server_names": ["pypi.test"], "state_dir": str(tmp_path),
                                    "index_hosts": ["idx1", "idx2"], "storage": "s3",
                                    "s3_bucket": "packages", "s3_access_key_id": "key",
                                    "cache_url": "redis://cache/0"},
                                   host=None)
    facts = certificate_facts(cluster, NOW)
    site = balancer.render_site(cluster, balancer.upstream_trust(cluster, facts), "t0ken", True)
    facts.files[nginx.SITE_PATH] = FileFacts(FileState(hashlib.sha256(site).hexdigest(), "600",
                                                       "0:0"), content=site)
    facts.nginx, facts.nginx_test = (True, True), (True, "")
    facts.units["nginx"] = ("enabled", "active")
    facts.files[tls_paths.host_cert_paths(cluster)[1]] = FileFacts(FileState("1" * 64, "600", "0:0"))
    facts.files[nginx.LOADED_PATH] = FileFacts(None, content="".join(
        f"{facts.file(path).state.sha256} {path}\n" for path in nginx.loaded_files(cluster)
    ).encode())
    defaults = balancer.render_exporter_defaults()
    facts.files[balancer.EXPORTER_DEFAULTS] = FileFacts(FileState(
        hashlib.sha256(defaults).hexdigest(), "644", "0:0"), content=defaults)
    facts.commands[balancer.EXPORTER] = True
    facts.units[balancer.EXPORTER] = ("enabled", "active")
    assert balancer.is_balancer(facts)
    checks = {check.part: check for check in status.balancer_checks(cluster, facts, NOW, "t0ken")}
    assert list(checks) == ["role", "certificate", "nginx", "metrics", "upstreams"]
    # The certificate's CA need not be in a balancer's own trust store.
    assert all(check.ok for check in checks.values()), checks
    assert checks["upstreams"].detail.startswith("forwards to idx1, idx2")
    # Another credential in the settings' state is drift; so is a stopped exporter.
    drifted = {check.part: check for check in status.balancer_checks(cluster, facts, NOW, "other")}
    assert drifted["nginx"].detail == "the site differs from what the settings render"
    facts.units[balancer.EXPORTER] = ("disabled", "failed")
    stopped = {check.part: check for check in status.balancer_checks(cluster, facts, NOW, "t0ken")}
    assert stopped["metrics"].detail == "not running; not enabled at boot"
    # A system that packages no exporter is no problem: status says why there is none.
    facts.platform = parse_platform("os=rocky rhel\nsystemd=1")
    rocky = {check.part: check for check in status.balancer_checks(cluster, facts, NOW, "t0ken")}
    assert rocky["metrics"].ok and "packages no nginx exporter" in rocky["metrics"].detail


def test_the_publishing_line_says_what_the_index_promises(tmp_path):
    settings = Settings.from_config({"server_names": ["pypi.test"], "state_dir": str(tmp_path),
                                     "users": ["ci"], "private_names": ["acme-*"],
                                     "owners": {"acme-*": ["ci"]},
                                     "release_window": "90m", "account_quota": "500m"}, host=None)
    check = status.check_publishing(settings)
    assert check.ok and check.detail == (
        "fallback redirect: a name the index never held is redirected to PyPI; private names: "
        "acme-*, and every project ever published here; a release closes 90 min after its "
        "first file; owners granted: acme-*: ci; an account's projects hold at most 500 MiB")
    assert status.size_text(0) == "anything (no cap)" and status.size_text(20 * 1024 ** 3) == "20 GiB"


def test_status_counts_the_valid_tokens_and_names_the_next_to_expire():
    current = Settings.from_config({"server_names": ["pypi.example.com"]}, host=None)

    def token(token_id: str, expires: str) -> dict:
        return {"id": token_id, "account": "client", "scope": ["acme-*"], "note": "",
                "created": "2026-11-01T00:00:00+00:00", "expires": expires, "last_used": ""}

    facts = Facts(api_tokens={"pypicloud": (
        token("aaaa0001", ""), token("aaaa0002", "2026-11-20T00:00:00+00:00"),
        token("aaaa0003", (NOW + datetime.timedelta(days=3)).isoformat()),
        token("aaaa0004", (NOW + datetime.timedelta(days=40)).isoformat()))})
    check = status.check_tokens(current, facts, NOW)
    assert check.ok and check.detail == ("3 valid, 1 expired (tokens.revoke removes them); the "
                                         "next to expire: aaaa0003 in 3d")
    assert status.check_tokens(current, Facts(api_tokens={"pypicloud": ()}), NOW).detail == \
        "none (tokens.create makes one)"


def test_the_ca_expiring_within_30_days_pages(tmp_path):
    current = settings(tmp_path)
    path = tls_paths.ca_path(current)
    path.parent.mkdir(parents=True, exist_ok=True)
    for issued, ok in ((NOW, True), (NOW - datetime.timedelta(days=3650 - 20), False)):
        ca, _ = certs.new_ca(current.certificate_names, True, issued)
        path.write_bytes(certs.pem(ca))
        check = status.check_ca(current, NOW)
        assert check.ok is ok, check
        assert check.figures["days_left"] == (ca.not_valid_after_utc - NOW).days
    assert "deploy --new-identity" in check.detail
    path.unlink()
    assert status.check_ca(current, NOW).ok  # nothing kept here to tell


def backup_facts(current: Settings, content: bytes | None) -> Facts:
    state = FileState(hashlib.sha256(content).hexdigest(), "644", "0:0") if content else None
    return Facts(files={current.verified_backup_path: FileFacts(state, content=content)})


def test_no_verified_backup_for_26_hours_pages_once_there_was_one(tmp_path):
    current = settings(tmp_path)
    assert status.check_backup(current, backup_facts(current, None), NOW).ok
    recent = status.check_backup(current, backup_facts(current, b"2026-11-25T03:00:00Z\n"), NOW)
    assert recent.ok and recent.detail == "the last verified backup was made 9h ago"
    assert recent.figures == {"age_seconds": 9 * 3600, "made": "2026-11-25T03:00:00+00:00"}
    old = status.check_backup(current, backup_facts(current, b"2026-11-24T09:00:00Z\n"), NOW)
    assert not old.ok and "made 1d ago, over 26 hours: " in old.detail and "backup" in old.detail
    assert not status.check_backup(current, backup_facts(current, b"garbage"), NOW).ok


def test_a_disk_over_90_percent_full_pages(tmp_path):
    current = settings(tmp_path)

    def data(free: int, size: int):
        facts = Facts(volumes={"pypicloud-data": "data"},
                      data_containers={"pypi_data:/var/lib/pypicloud": ("pypicloud-data", "data")},
                      volume_usage={"pypicloud-data": VolumeUsage(10, 2, 1, free, size)})
        return status.check_data(current, facts)

    roomy = data(50 << 30, 100 << 30)
    assert roomy.ok and roomy.figures["size_bytes"] == 100 << 30
    full = data(5 << 30, 100 << 30)
    assert not full.ok and full.detail.endswith("the disk is over 90% full")
