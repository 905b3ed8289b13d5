"""Moving a file-store index into S3: decided from the config.ini on the host."""

from __future__ import annotations

import dataclasses

import pytest

from ppc_tasks import apply, config_ini
from ppc_tasks.errors import TaskError
from ppc_tasks.plan import Change, Plan
from ppc_tasks.plans import deploy, storage

from .test_deploy import NOW, changed, deployed_here, present, warm_facts


@pytest.fixture
def settings(tmp_path):
    return deployed_here(tmp_path)  # on its file store


@pytest.fixture
def on_s3(settings, monkeypatch):
    monkeypatch.setenv("PPC_S3_SECRET_ACCESS_KEY", "s3-Secret-Key")
    return dataclasses.replace(settings, storage="s3", s3_bucket="pypi", s3_access_key_id="k")


def test_a_file_store_is_copied_into_s3_before_the_server_is_replaced(settings, on_s3):
    facts = warm_facts(settings)  # the host runs the index on its file store
    with pytest.raises(TaskError, match=r"^the index on h keeps its packages in its file store: "
                                        r"ppc -H h storage.migrate moves them into S3"):
        deploy.plan_deploy(on_s3, facts, NOW, "h")
    plan = deploy.plan_deploy(on_s3, facts, NOW, "h", migrate_storage=True)
    steps = changed(plan)
    assert steps.index("storage.migrate") < steps.index("server.config") < \
        steps.index("server.container")
    migration = next(step for step in plan.steps if step.step == "storage.migrate")
    assert isinstance(migration, Change)
    (command,) = migration.commands
    # The new config.ini (it holds the S3 secret) goes in on stdin, never onto a disk.
    assert b"pypi.storage = s3" in command.stdin and b"s3-Secret-Key" in command.stdin
    assert "s3-Secret-Key" not in " ".join(command.argv)
    assert command.argv[:4] == ("docker", "run", "--rm", "-i")
    assert command.argv[-2:] == ("migrate-storage", "/etc/pypicloud/config.ini")


def test_once_on_s3_there_is_nothing_to_move(settings, on_s3):
    facts = warm_facts(settings)
    for step in deploy.plan_deploy(on_s3, facts, NOW, "h", migrate_storage=True).steps:
        if isinstance(step, Change):
            apply.do_here(step.local)  # the S3 secret is kept
    creds = deploy.credentials.load(on_s3.secrets_path)
    facts.files[on_s3.config_path] = present(config_ini.render_config(on_s3, creds), "600", "10001:10001")
    migration = storage.plan_migration(on_s3, facts, Plan(), b"")
    assert not isinstance(migration, Change)
    assert migration.detail == "the index keeps its packages in S3 (bucket pypi)"
    deploy.plan_deploy(on_s3, facts, NOW, "h")  # and a deploy no longer refuses
