"""How a run of the suite is organised (tests/run runs it on several pytest-xdist workers):

- The process that starts a run names it and removes what it made at the end
  (tests/integration/testrun.py); before any worker starts, it builds the test images
  that integration tests need, so that no two workers build one.
- A module's tests stay together on one worker, in their order (`--dist loadscope`): its
  module-scoped hosts are made once, and its tests may build on each other.
- The modules that take longest go to the workers first (`--no-loadscope-reorder` keeps
  the order set here): no worker then ends the run alone with one of them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.integration import harness, testrun

INTEGRATION = Path(__file__).parent / "integration"
# Every image the integration tests start containers from.
TEST_IMAGES = ("host", "client", "nodocker", "s3", "postgres", "redis")
# Longest first, as a run of tests/run measured them (seconds on 2 cores, 4 workers):
# supply_chain 241, balancer 207, image 191, resilience 188, zero_downtime 185,
# backup 149, clients 116, scale_out 101, demo 85, simple_api 84, preview 83,
# trusted_publishing 70, storage_migrate 72, server 53, bootstrap 50, installed 39; then the
# rest, unit tests last.
LONGEST_FIRST = ("test_supply_chain", "test_balancer", "test_image", "test_resilience",
                 "test_zero_downtime", "test_backup", "test_clients", "test_scale_out",
                 "test_quickstart", "test_demo", "test_simple_api", "test_preview",
                 "test_trusted_publishing",
                 "test_storage_migrate", "test_server", "test_bootstrap", "test_installed")


def pytest_configure(config) -> None:
    if not hasattr(config, "workerinput"):
        testrun.begin()


def pytest_unconfigure(config) -> None:
    if not hasattr(config, "workerinput"):
        testrun.end()


def pytest_sessionstart(session) -> None:
    """In the process that starts the run: the test images, before the workers start."""
    if hasattr(session.config, "workerinput") or not _asks_for_integration(session.config):
        return
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        return  # the tests' docker_engine fixture says what to do, once per test
    testrun.remove_abandoned_containers()
    for name in TEST_IMAGES:
        harness.ensure_built_image(name)


def pytest_collection_modifyitems(items) -> None:
    rank = {name: place for place, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: (item.path.parent != INTEGRATION,
                                 rank.get(item.path.stem, len(rank))))


def _asks_for_integration(config) -> bool:
    for argument in config.args:
        path = Path(argument.split("::", 1)[0]).resolve()
        if path == INTEGRATION or INTEGRATION in path.parents or path in INTEGRATION.parents:
            return True
    return False
