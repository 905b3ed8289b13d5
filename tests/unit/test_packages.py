"""packages: yanks decided from the facts, without a host (the upload is tested for real)."""

from __future__ import annotations

import pytest

from ppc_tasks import packages
from ppc_tasks.errors import TaskError
from ppc_tasks.facts import ContainerFacts, Facts, Release
from ppc_tasks.plan import Change, Unchanged
from ppc_tasks.settings import Settings, SettingsError

LOGIN = b"admin:secret\n"


@pytest.fixture
def settings():
    return Settings.from_config({}, host="pypi.test")


def facts_with(release: Release | None, running: bool = True) -> Facts:
    facts = Facts()
    facts.containers["pypicloud"] = ContainerFacts("spec", running, 3031)
    facts.releases["pypicloud/acme-tools/1.0.0"] = release
    return facts


@pytest.mark.parametrize("typed, release", [
    ("acme-tools==1.0.0", ("acme-tools", "1.0.0")),
    ("Acme_Tools==2!1.0rc1", ("acme-tools", "2!1.0rc1")),
    (" acme.tools == 1.0 ", ("acme-tools", "1.0")),
])
def test_a_release_is_named_as_pip_names_it(typed, release):
    assert packages.parse_release(typed) == release


@pytest.mark.parametrize("typed", ["acme-tools", "acme-tools>=1.0", "==1.0", "acme==not a version",
                                   "acme/../x==1.0", "acme==1.0/x"])
def test_anything_but_name_and_version_is_refused_in_one_line(typed):
    with pytest.raises(SettingsError, match="NAME==VERSION"):
        packages.parse_release(typed)


@pytest.mark.parametrize("reason", ["x" * 201, "two\nlines", "tab\there"])
def test_a_reason_is_one_short_line(reason):
    with pytest.raises(SettingsError, match="--reason"):
        packages.check_reason(reason)


def test_a_yank_goes_through_the_api_with_the_login_on_stdin(settings):
    step = packages.plan_yank(settings, facts_with(Release(True, "1.0")), "acme-tools", "1.0.0",
                              "broken build", LOGIN)
    assert isinstance(step, Change) and step.done == "yanked acme-tools 1.0 (broken build)"
    command = step.commands[0]
    # The stored version (1.0), which the API matches; the secret only on stdin.
    assert command.argv == ("docker", "exec", "-i", "pypicloud", "ppc-guard", "yank", "acme-tools", "1.0")
    assert command.stdin == b"admin:secret\nbroken build\n"
    assert b"secret" not in b" ".join(arg.encode() for arg in command.argv)


@pytest.mark.parametrize("state, reason, changes", [
    (Release(True, "1.0", "broken build"), "broken build", False),  # yanked so already
    (Release(True, "1.0", "broken build"), "another reason", True),
    (Release(True, "1.0", None), None, False),  # not yanked: nothing to take back
    (Release(True, "1.0", ""), None, True),
])
def test_a_second_run_changes_nothing(settings, state, reason, changes):
    step = packages.plan_yank(settings, facts_with(state), "acme-tools", "1.0.0", reason, LOGIN)
    assert isinstance(step, Change if changes else Unchanged)


@pytest.mark.parametrize("facts, error", [
    (facts_with(Release(False)), "holds no release 1.0.0 of acme-tools"),
    (facts_with(None), "deploy first"),
    (facts_with(Release(True, "1.0"), running=False), "not running"),
])
def test_what_cannot_be_yanked_is_refused_before_anything_runs(settings, facts, error):
    with pytest.raises(TaskError, match=error):
        packages.plan_yank(settings, facts, "acme-tools", "1.0.0", "x", LOGIN)
