"""Every task reads only the facts it asks for. Each task's body runs against a host that
answers exactly the queries the task sends, once as a host where nothing of the index
is (Docker running) and once as one where every thing asked for is there; a step that
reads a fact beyond them fails here with NotAsked, never at a user's run."""

from __future__ import annotations

import base64
import inspect
import json

import pytest

from ppc_tasks import index, overview, status
from ppc_tasks.apply import Host
from ppc_tasks.errors import TaskError
from ppc_tasks.facts import KINDS, TEXT, NotAsked, answered
from ppc_tasks.plan import describe
from ppc_tasks.plans import server
from ppc_tasks.settings import S3_SECRET_ENV, Settings, SettingsError
from ppc_tasks.ssh import Result
from tests.unit.test_deploy import deployed_here

RELEASE = base64.b64encode(json.dumps({"held": True, "version": "1.0"}).encode()).decode()
# For each kind of fact, an answer of a host where the thing asked for is there.
PRESENT = {
    "platform": ("debian", "1", "0:0", "/root"), "command": ("yes",),
    "tool": ("/usr/bin/tool", "1.0"), "pip": ("24.2 3.11",), "docker": ("running",),
    "unit": ("enabled", "active"), "image": ("sha256:1|context",),
    "container": ("spec|true|3031|0|healthy|2026-12-01T00:00:00Z|sha256:1|"
                  "/var/lib/pypicloud=pypicloud-data|ppc/pypicloud:1",),
    "volume": ("data",), "volume-usage": ("1000", "2", "1", "100000"),
    "data-container": ("pypicloud-data", "data"), "nginx": ("yes", "yes"),
    "dangling": ("",), "file": ("644 0:0 0123",),
    "text": ("644 0:0 0123", ""),  # an empty file: every merge takes it
    "uid": ("",),  # no account has the server's uid
    "ports": ("0016",), "nginx-test": ("ok", ""),
    "health": ("ok", ""), "release": ("ok", RELEASE),
    "api-tokens": ("ok", base64.b64encode(json.dumps([{
        "id": "3f2a9c1d", "account": "dev", "scope": ["acme-*"], "note": "", "created":
        "2026-12-01T00:00:00+00:00", "expires": "", "last_used": ""}]).encode()).decode()),
}
# ... and where the index it serves is the one the settings name.
PRESENT_HERE = {
    TEXT.query(index.HOST_MARKER): ("644 0:0 0123", base64.b64encode(b"pypi.test\n").decode()),
    TEXT.query(server.ROLLBACK_CONTAINER): ("644 0:0 0123", base64.b64encode(
        b"ppc/pypicloud:1.3.12-0ld|spec\n").decode())}
# A host where nothing of the index is: Docker runs there, and that is all.
BARE = {"platform": ("debian", "1", "0:0", "/root"), "docker": ("running",),
        "unit": ("enabled", "active")}


def test_every_kind_of_fact_has_an_answer_for_a_thing_that_is_there():
    assert set(PRESENT) == set(KINDS)


class AnsweringHost(Host):
    """A host that answers every query a task sends, and runs nothing."""

    def __init__(self, settings, answers: dict[str, tuple[str, ...]]):
        super().__init__(None, settings, name="h")
        self.sudo, self.answers, self.plans = "root", answers, []

    def gather(self, queries, *, root: bool = True):
        """Each query answered by its own answer, else its kind's (else: absent)."""
        return answered(queries, {query: self.answers.get(query, self.answers.get(
            query.partition("=")[0])) for query in queries
            if query in self.answers or query.partition("=")[0] in self.answers})

    def read_facts(self, queries):
        return self.gather(queries)

    def carry_out(self, plan) -> None:
        self.plans.append(describe(plan, lambda argv: " ".join(argv)))

    def run(self, argv, **_) -> Result:
        return Result(0, "", "")


def host_bodies():
    """(name, body) of every task that works on one host at a time."""
    for name, task in sorted(overview.task_names().items()):
        body = inspect.unwrap(task.body)
        if next(iter(inspect.signature(body).parameters)) == "host":
            yield name, body
    yield "status (one host)", status.check_host


ARGUMENTS = {"packages.yank": ("acme-tools==1.0",), "packages.unyank": ("acme-tools==1.0",),
             "restore": ("/nonexistent/backup.tar.gz",), "tokens.create": ("acme-*",),
             "tokens.revoke": ("3f2a9c1d",)}
OPTIONS = {"data.destroy": {"confirm": "pypicloud-data"}}
# Settings a task needs to get past its first check.
SETTINGS = {"balancer.deploy": {"index_hosts": ["pypi1.pypi.test"]},
            "storage.migrate": {"storage": "s3", "s3_bucket": "pypi", "s3_access_key_id": "AKIA1"}}


@pytest.mark.parametrize("answers", [BARE, {**PRESENT, **PRESENT_HERE}],
                         ids=["bare host", "everything there"])
@pytest.mark.parametrize("name, body", list(host_bodies()),
                         ids=[name for name, _ in host_bodies()])  # stable across workers
def test_a_task_reads_only_what_it_asked_for(name, body, answers, tmp_path, monkeypatch):
    monkeypatch.setenv(S3_SECRET_ENV, "s3-secret")
    host = AnsweringHost(settings_for(name, tmp_path), answers)
    try:
        body(host, *ARGUMENTS.get(name, ()), **OPTIONS.get(name, {}))
    except NotAsked:
        raise
    except (TaskError, SettingsError, OSError):
        pass  # a refusal of this host (or of the made-up archive) is no fault


def settings_for(name: str, tmp_path) -> Settings:
    """An index deployed from this machine, with the settings the task needs."""
    settings = deployed_here(tmp_path)
    if name not in SETTINGS:
        return settings
    return Settings.from_config({"server_names": ["pypi.test"], "users": ["dev"],
                                 "state_dir": str(settings.state_dir), **SETTINGS[name]}, host=None)
