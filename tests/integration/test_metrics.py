"""/metrics on the shared server, through nginx over HTTPS: refused without the scrape
credential, read with it as metrics.scrape-config writes it, and moved by what clients do
(an upload, a wrong login, a page given again)."""

from __future__ import annotations

import json
import stat

import pytest
from invoke.vendor import yaml
from prometheus_client.parser import text_string_to_metric_families

from . import web
from .conftest import SERVER_NAME, password_of


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


def figures(response: web.Response) -> dict:
    """{(sample name, sorted labels): value}."""
    assert response.status == 200, response.body
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.body.decode())
            for sample in family.samples}


def test_the_scrape_config_names_what_prometheus_needs(scrape_job):
    job, folder = scrape_job
    token_file = folder / f"{SERVER_NAME}-metrics-token"
    assert job["authorization"]["credentials_file"] == str(token_file)
    assert job["tls_config"] == {"ca_file": str(folder / f"{SERVER_NAME}-ca.crt"),
                                 "server_name": SERVER_NAME}
    assert job["static_configs"] == [{"targets": [f"{SERVER_NAME}:443"]}]
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600


def test_metrics_are_read_with_the_credential_only(deployed, operator_home, scrape_job):
    token = (scrape_job[1] / f"{SERVER_NAME}-metrics-token").read_text()
    for refused in (None, "Bearer not-the-credential", f"Basic {token}"):
        answer = scrape(deployed, operator_home, refused)
        assert answer.status == 401, refused
        assert json.loads(answer.body)["message"] == "scrape with the index's metrics credential"
    read = scrape(deployed, operator_home, f"Bearer {token}")
    assert read.status == 200 and read.headers["content-type"].startswith("text/plain")
    assert token not in read.body.decode()


def test_what_clients_do_moves_the_series(deployed, operator_home, scrape_job, make_dists):
    token = (scrape_job[1] / f"{SERVER_NAME}-metrics-token").read_text()
    ca = operator_home / "state" / SERVER_NAME / "ca.crt"

    def index(path, auth=None, **kwargs):
        return web.request(deployed.host.address, path, ca=ca, sni=SERVER_NAME,
                           host=SERVER_NAME, auth=auth, **kwargs)

    before = figures(scrape(deployed, operator_home, f"Bearer {token}"))
    dev = ("dev", password_of(operator_home, "dev"))
    assert index("/simple/", ("dev", "not-the-password")).status == 401
    wheel = [path for path in make_dists("ppc-metrics", "1.0") if path.suffix == ".whl"][0]
    body, headers = web.upload_form({":action": "file_upload", "name": "ppc-metrics",
                                     "version": "1.0"}, wheel.name, wheel.read_bytes())
    assert index("/simple/", dev, method="POST", body=body, headers=headers).status == 200
    for _ in range(2):  # made, then given again
        assert index("/simple/ppc-metrics/", dev).status == 200
    after = figures(scrape(deployed, operator_home, f"Bearer {token}"))

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
