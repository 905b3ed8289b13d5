"""A real Prometheus for the tests: Debian's, in the test image ppc-test/prometheus, run
with the scrape jobs `metrics.scrape-config` printed and read back through its own HTTP
API, as an operator's would be."""

from __future__ import annotations

import contextlib
import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from invoke.vendor import yaml

from . import harness, testrun, web


@contextlib.contextmanager
def running(folder: Path, jobs: list[dict], hosts: dict[str, str],
            rule_files: tuple[Path, ...] = ()) -> Iterator[tuple[str, str]]:
    """Prometheus scraping `jobs` every second (the files they name are in `folder`),
    resolving `hosts` (name -> address), evaluating `rule_files` (in `folder`): its API's
    URL and its container's name."""
    (folder / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(path) for path in rule_files], "scrape_configs": jobs}))
    image = harness.ensure_built_image("prometheus")
    name = testrun.container_name("prometheus")
    harness.sh("docker", "run", "-d", "--name", name, *testrun.labels(),
               *(f"--add-host={host}:{address}" for host, address in hosts.items()),
               "-v", f"{folder}:{folder}:ro", "-p", "127.0.0.1::9090", image,
               "prometheus", f"--config.file={folder / 'prometheus.yml'}",
               "--storage.tsdb.path=/tmp/prometheus", "--web.listen-address=:9090")
    try:
        port = harness.sh("docker", "port", name, "9090/tcp").stdout.decode().split()[0]
        url = f"http://127.0.0.1:{port.rsplit(':', 1)[1]}"
        harness.wait_for(lambda: ready(url), "Prometheus answering", timeout=60)
        yield url, name
    finally:
        harness.sh("docker", "rm", "-f", name, check=False)


def ready(url: str) -> bool:
    try:
        with web.DIRECT.open(url + "/-/ready", timeout=5) as answer:
            return answer.status == 200
    except OSError:  # not listening yet, or not ready (503)
        return False


def api(url: str, path: str) -> dict:
    with web.DIRECT.open(url + path, timeout=10) as answer:
        return json.load(answer)["data"]


def query(url: str, expression: str) -> float:
    """The value of an instant query that sums to one series (0 when there is none)."""
    result = api(url, "/api/v1/query?query=" + urllib.parse.quote(expression))["result"]
    return float(result[0]["value"][1]) if result else 0.0


def all_targets_up(url: str, count: int) -> bool:
    """Whether Prometheus has `count` targets and last scraped each of them."""
    targets = api(url, "/api/v1/targets")["activeTargets"]
    return len(targets) == count and all(target["health"] == "up" for target in targets)
