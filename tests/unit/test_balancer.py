"""The balancer's plan and site, from facts written by hand."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography import x509

from ppc_tasks import apply, tls_paths
from ppc_tasks.errors import TaskError
from ppc_tasks.facts import ContainerFacts, FileFacts
from ppc_tasks.plan import Change
from ppc_tasks.plans import balancer, certs, deploy, nginx
from ppc_tasks.settings import Settings

from .test_deploy import NOW, changed, fresh_facts, loaded, present


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings.from_config({
        "server_names": ["pypi.example.com"], "state_dir": str(tmp_path),
        "index_hosts": ["pypi1.example.com", "fd00::7"], "storage": "s3",
        "s3_bucket": "pypi", "s3_access_key_id": "k", "cache_url": "redis://cache"}, host=None)


def test_the_site_forwards_to_every_index_host_over_verified_tls(settings):
    site = balancer.render_site(settings, "/etc/ssl/ppc-tasks/pypi.example.com-ca.crt").decode()
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


def test_a_bare_host_gets_nginx_the_certificate_and_the_ca_then_nothing(settings):
    facts = fresh_facts(settings)
    ca_path = tls_paths.upstream_ca_path(settings)
    facts.files[ca_path] = FileFacts(None)
    plan = balancer.plan_balancer(settings, facts, NOW, "lb1")
    assert changed(plan) == ["certs.ca", "certs.server", "index.identity", "certs.install",
                             "balancer.ca", "nginx.install", "nginx.site", "nginx.service",
                             "nginx.boot"]
    for step in plan.steps:
        if isinstance(step, Change):
            apply.do_here(step.local)
    # The host as that plan left it: a second run changes nothing.
    tls = certs.prepare(settings, NOW)
    cert_path, key_path = tls_paths.host_cert_paths(settings)
    facts.files.update({
        "/etc/ppc-tasks/index": present(b"pypi.example.com\n"),
        cert_path: present(tls.certificate), key_path: present(tls.key, "600"),
        ca_path: present(tls.ca), nginx.SITE_PATH: present(balancer.render_site(settings, ca_path))})
    facts.nginx = (True, True)
    facts.units["nginx"] = ("enabled", "active")
    loaded(settings, facts)
    assert changed(balancer.plan_balancer(settings, facts, NOW, "lb1")) == []
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
    a_balancer.files[nginx.SITE_PATH] = present(balancer.render_site(settings, "/ca.crt"))
    with pytest.raises(TaskError, match="^lb1 is the index's balancer"):
        deploy.plan_deploy(settings, a_balancer, NOW, "lb1")
    without_hosts = dataclasses.replace(settings, index_hosts=())
    with pytest.raises(TaskError, match="^ppc.index_hosts: list the index hosts"):
        balancer.plan_balancer(without_hosts, fresh_facts(settings), NOW, "lb1")
