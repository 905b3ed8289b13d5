"""A CI farm at once: 100 clients download through nginx+TLS, none fails.

Bounded to a few seconds; the figures (requests per second, latencies, 100 real pip
processes) come from benchmarks/run, recorded in docs/performance.md.
"""

from __future__ import annotations

import concurrent.futures

import pytest

from . import web
from .conftest import SERVER_NAME, password_of

CLIENTS = 100
# Each request may take as long as pip waits for an answer by default (--timeout 15): a
# farm of pips with their defaults sees no failure.
PIP_TIMEOUT = 15
PACKAGES = [f"ppc-load-{number:02}" for number in range(1, 6)]


@pytest.fixture(scope="module")
def packages(deployed, operator_home, make_dists) -> dict[str, bytes]:
    """Five releases, uploaded once: {download path: the wheel's bytes}."""
    ca = operator_home / "state" / SERVER_NAME / "ca.crt"
    wheels = {}
    for name in PACKAGES:
        wheel = make_dists(name, "1.0")[1]
        body, headers = web.upload_form({":action": "file_upload", "name": name, "version": "1.0"},
                                        wheel.name, wheel.read_bytes())
        response = web.request(deployed.host.address, "/simple/", ca=ca, sni=SERVER_NAME,
                               host=SERVER_NAME, method="POST", body=body, headers=headers,
                               auth=("dev", password_of(operator_home, "dev")))
        assert response.status == 200, response
        wheels[f"/api/package/{name}/{wheel.name}"] = wheel.read_bytes()
    return wheels


def test_a_hundred_clients_at_once_all_get_every_release(deployed, operator_home, packages):
    ca = operator_home / "state" / SERVER_NAME / "ca.crt"
    auth = ("dev", password_of(operator_home, "dev"))

    def client(_) -> list[str]:
        """What pip does for each release: the project's page, then the file."""
        failures = []
        for name, (path, wheel) in zip(PACKAGES, packages.items()):
            for url, expected in ((f"/simple/{name}/", None), (path, wheel)):
                try:
                    response = web.request(deployed.host.address, url, ca=ca, sni=SERVER_NAME,
                                           host=SERVER_NAME, auth=auth, timeout=PIP_TIMEOUT)
                except OSError as error:
                    failures.append(f"{url}: {error}")
                    continue
                if response.status != 200 or (expected and response.body != expected):
                    failures.append(f"{url}: {response.status}")
        return failures

    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        failures = [failure for result in pool.map(client, range(CLIENTS)) for failure in result]

    assert failures == [], f"{len(failures)} of {CLIENTS * len(PACKAGES) * 2} failed: {failures[:5]}"
