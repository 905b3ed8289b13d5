"""The balancer's plan and site, from facts written by hand."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography import x509

from ppc_tasks import apply, credentials, tls_paths
from ppc_tasks.errors import TaskError
from ppc_tasks.facts import PLATFORM, PORTS, ContainerFacts, Facts, answered
from ppc_tasks.plan import Change, describe
from ppc_tasks.plans import balancer, certs, deploy, nginx
from ppc_tasks.settings import Settings

from .test_deploy import NOW, changed, fresh_facts, loaded, present

TOKEN = "sCrApe-t0ken_1"


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings.from_config({
        "server_names": ["pypi.example.com"], "state_dir": str(tmp_path),
        "index_hosts": ["pypi1.example.com", "fd00::7"], "storage": "s3",
        "s3_bucket": "pypi", "s3_access_key_id": "k", "cache_url": "redis://cache",
        "metrics_allow": ["10.0.0.5/24"]}, host=None)


def bare_host(settings: Settings, platform: tuple[str, ...] = ("debian", "1", "0:0", "/root")) -> Facts:
    """A host with nothing of the balancer yet, answering what balancer.deploy asks."""
    return answered(balancer.queries(settings), {PLATFORM.query(): platform, PORTS.query(): ("16",)})


def with_credential(settings: Settings) -> None:
    """The index's secrets here hold a scrape credential (its first deploy made one)."""
    credentials.save(settings.secrets_path, credentials.Credentials(metrics_token=TOKEN))


def test_the_site_forwards_to_every_index_host_over_verified_tls(settings):
    site = balancer.render_site(settings, "/etc/ssl/ppc-tasks/pypi.example.com-ca.crt",
                                TOKEN, True).decode()
    assert "server pypi1.example.com:443 max_fails=1 fail_timeout=5s;" in site
    assert "server [fd00::7]:443 max_fails=1 fail_timeout=5s;" in site
    for line in ("proxy_pass https://ppc_index_hosts;", "proxy_ssl_verify on;",
                 "proxy_ssl_trusted_certificate /etc/ssl/ppc-tasks/pypi.example.com-ca.crt;",
                 "proxy_ssl_name pypi.example.com;",
                 "proxy_next_upstream error timeout http_502 http_503 http_504;",
                 f"client_max_body_size {1024 ** 3};", "return 301 https://$host$request_uri;",
                 "if ($ppc_tasks_own_name = 0) {", 'add_header X-Frame-Options "DENY" always;',
                 "location = /metrics {"):
        assert line in site
    # The index hosts' own security headers are not passed on beside the balancer's.
    for header in ("Strict-Transport-Security", "X-Content-Type-Options", "X-Frame-Options",
                   "Content-Security-Policy"):
        assert f"proxy_hide_header {header};" in site
    # Clients use the index's names; the index hosts' own names are not served here.
    assert "server_name pypi.example.com;" in site


def test_the_balancer_serves_its_own_figures_to_the_credential_and_the_allowed_addresses(settings):
    site = balancer.render_site(settings, "/ca.crt", TOKEN, True).decode()
    # The exact credential, case and all (a map's plain strings would ignore case).
    assert f'"~^Bearer {TOKEN}$" 1;' in site
    assert "    10.0.0.0/24 1;" in site  # as nginx wants a network: no host bits
    start = site.index("location = /metrics {")
    metrics = site[start:site.index("location / {", start)]
    assert metrics.index("if ($ppc_metrics_refused) {") < metrics.index("return 401")
    assert "proxy_pass http://127.0.0.1:9113/metrics;" in metrics
    # nginx's counters only on the loopback address, for the exporter.
    assert "listen 127.0.0.1:9112;" in site and "stub_status;" in site
    assert site.count("listen ") == 4  # 80, 443 (other names), 443, stub_status
    assert b"-web.listen-address=127.0.0.1:9113 " in balancer.render_exporter_defaults()
    # Without an exporter (the system packages none) /metrics says so; no credential is kept.
    bare = balancer.render_site(settings, "/ca.crt", TOKEN, False).decode()
    assert TOKEN not in bare and "stub_status" not in bare
    assert "return 404 '{\"message\": \"this balancer has no nginx exporter" in bare
    # Previews show the site without the credential.
    assert TOKEN not in balancer.hide_credential(site)
    # A credential that is not what a deploy makes would be regular-expression syntax.
    with pytest.raises(TaskError, match="metrics_token must be letters, digits"):
        balancer.render_site(settings, "/ca.crt", ".*", True)


def test_a_bare_host_gets_nginx_the_certificate_the_ca_and_the_exporter_then_nothing(settings):
    with_credential(settings)
    facts = bare_host(settings)
    ca_path = tls_paths.upstream_ca_path(settings)
    plan = balancer.plan_balancer(settings, facts, NOW, "lb1")
    # The exporter's arguments are in place before its package starts it, after nginx
    # serves stub_status.
    assert changed(plan) == ["certs.ca", "certs.server", "index.identity", "certs.install",
                             "balancer.ca", "nginx.install", "nginx.site", "nginx.service",
                             "nginx.boot", "exporter.config", "exporter.install",
                             "exporter.service", "exporter.boot"]
    # The site holds the credential: 0600, and never shown.
    site_step = next(step for step in plan.steps if step.step == "nginx.site")
    assert site_step.commands[0].argv[5:8] == (nginx.SITE_PATH, "600", "nginx")
    shown = "\n".join(line for _, _, _, details in describe(plan, " ".join) for line in details)
    assert "+    \"~^Bearer (the metrics credential)$\" 1;" in shown and TOKEN not in shown
    for step in plan.steps:
        if isinstance(step, Change):
            apply.do_here(step.local)
    # The host as that plan left it: a second run changes nothing.
    tls = certs.prepare(settings, NOW)
    cert_path, key_path = tls_paths.host_cert_paths(settings)
    site = balancer.render_site(settings, ca_path, TOKEN, True)
    facts.files.update({
        "/etc/ppc-tasks/index": present(b"pypi.example.com\n"),
        cert_path: present(tls.certificate), key_path: present(tls.key, "600"),
        ca_path: present(tls.ca), nginx.SITE_PATH: present(site, "600"),
        balancer.EXPORTER_DEFAULTS: present(balancer.render_exporter_defaults())})
    facts.nginx = (True, True)
    facts.units.update({"nginx": ("enabled", "active"), balancer.EXPORTER: ("enabled", "active")})
    facts.commands[balancer.EXPORTER] = True
    loaded(settings, facts)
    assert changed(balancer.plan_balancer(settings, facts, NOW, "lb1")) == []
    # Its arguments edited by hand: written again, and the exporter restarted with them.
    facts.files[balancer.EXPORTER_DEFAULTS] = present(b'ARGS=""\n')
    again = balancer.plan_balancer(settings, facts, NOW, "lb1")
    assert changed(again) == ["exporter.config", "exporter.service"]
    restart = next(step for step in again.changes() if step.step == "exporter.service")
    assert restart.commands[0].argv[3:] == ("wait-listening", "9113", "30", "--", "systemctl",
                                            "restart", balancer.EXPORTER)
    # Stopped, it is started (and waited for).
    facts.files[balancer.EXPORTER_DEFAULTS] = present(balancer.render_exporter_defaults())
    facts.units[balancer.EXPORTER] = ("enabled", "failed")
    assert [step.done for step in balancer.plan_balancer(settings, facts, NOW, "lb1").changes()] == [
        f"started {balancer.EXPORTER}"]
    # The certificate covers the shared name and each index host's own.
    certificate = x509.load_pem_x509_certificate(tls.certificate)
    assert certs.reissue_reason(certificate, x509.load_pem_x509_certificate(tls.ca),
                                settings.certificate_names, NOW) is None
    assert "pypi1.example.com" in certificate.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)


def test_a_balancer_and_an_index_never_share_a_host(settings):
    index_host = fresh_facts(settings)
    index_host.containers[settings.server_container] = ContainerFacts("spec", True, 3031)
    with pytest.raises(TaskError, match="^lb1 is an index host .*a balancer needs a host of its own"):
        balancer.plan_balancer(settings, index_host, NOW, "lb1")
    a_balancer = fresh_facts(settings)
    a_balancer.files[nginx.SITE_PATH] = present(balancer.render_site(settings, "/ca.crt", "", True))
    with pytest.raises(TaskError, match="^lb1 is the index's balancer"):
        deploy.plan_deploy(settings, a_balancer, NOW, "lb1")
    without_hosts = dataclasses.replace(settings, index_hosts=())
    with pytest.raises(TaskError, match="^ppc.index_hosts: list the index hosts"):
        balancer.plan_balancer(without_hosts, fresh_facts(settings), NOW, "lb1")


def test_without_a_packaged_exporter_or_a_credential_the_balancer_says_why(settings):
    rocky = bare_host(settings, ("rocky rhel centos fedora", "1", "0:0", "/root"))
    plan = balancer.plan_balancer(settings, rocky, NOW, "lb1")
    notes = {step.step: step.detail for step in plan.steps if not isinstance(step, Change)}
    assert notes["exporter.install"] == ("rocky packages no nginx exporter: the balancer's "
                                         "/metrics answers 404")
    # No deploy of the index made a credential yet: allowed addresses only, until the next run.
    assert "no metrics credential yet" in notes["balancer.metrics"]
    # The index hosts are not told the balancer's address: every client is counted as it.
    assert "name its address in ppc.trusted_proxies" in notes["balancer.clients"]
    told = dataclasses.replace(settings, trusted_proxies=("10.0.0.9",))
    assert "balancer.clients" not in [step.step for step in
                                      balancer.plan_balancer(told, rocky, NOW, "lb1").steps]
    assert not any(step.step.startswith("exporter.") for step in plan.changes())
