"""API tokens: what the guard keeps and admits (docker/server/ppc_guard/tokens.py), and what
tokens.create takes from the operator."""

from __future__ import annotations

import datetime
import sys

import pytest

from ppc_tasks import tokens as tokens_task
from ppc_tasks.render import DOCKER_DIR
from ppc_tasks.settings import Settings, SettingsError

sys.path.insert(0, str(DOCKER_DIR / "server"))
from ppc_guard import registry, tokens  # noqa: E402  (the image's, not ours)

sys.path.remove(str(DOCKER_DIR / "server"))

NOW = datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.timezone.utc)


def test_a_token_admits_its_secret_only_and_until_it_expires():
    made, kept = tokens.new("ci", ("acme-*",), "acme's CI", NOW, datetime.timedelta(days=90))
    token_id, secret = tokens.parse(made)
    assert token_id == kept.id and secret not in repr(kept) and made not in repr(kept)
    assert kept.admits(secret, NOW)
    assert not kept.admits(secret[:-1] + ("0" if secret[-1] != "0" else "1"), NOW)
    assert not kept.admits(secret, NOW + datetime.timedelta(days=90))
    assert kept.expires == "2027-03-06T12:00:00+00:00"


@pytest.mark.parametrize("password", ["", "ppc1-abc-def", "ppc1-0123abcd-" + "g" * 64,
                                      "pypi-AgEIcHlwaS5vcmc", "ppc1-0123abcd-" + "a" * 63])
def test_anything_but_a_token_is_none(password):
    assert tokens.parse(password) is None


def test_a_token_covers_its_scope_in_every_spelling_and_nothing_else():
    _, kept = tokens.new("ci", ("acme-*", "tools"), "", NOW)
    assert kept.covers("acme-tools") and kept.covers("Acme_Tools") and kept.covers("TOOLS")
    assert not kept.covers("acmetools") and not kept.covers("other")
    assert not kept.expired(NOW + datetime.timedelta(days=10000))  # no lifetime: no end


def test_the_registry_keeps_a_token_as_it_was_made():
    _, kept = tokens.new("ci", ("acme-*",), "a note", NOW, datetime.timedelta(hours=1))
    assert registry.token_of(registry.token_row(kept)) == kept


@pytest.fixture
def settings():
    return Settings.from_config({"server_names": ["pypi.test"], "users": ["dev", "ci"]})


def test_tokens_create_takes_a_scope_a_lifetime_and_a_plain_account(settings):
    scope, lifetime, account = tokens_task.token_settings(settings, "acme-*,tools", "90d", "")
    assert scope == ("acme-*", "tools") and lifetime == datetime.timedelta(days=90)
    assert account == "dev"  # the client account
    assert tokens_task.token_settings(settings, "acme", "0", "ci")[1:] == (None, "ci")


@pytest.mark.parametrize("project, expires, account, message", [
    ("", "90d", "", "--project: name the project"),
    ("acme tools", "90d", "", "--project: 'acme tools' is not"),
    ("acme", "soon", "", "--expires: must be a duration"),
    ("acme", "90d", "nobody", "--account: 'nobody' is not in ppc.admins or ppc.users"),
    ("acme", "90d", "admin", "--account: 'admin' is an admin"),
])
def test_bad_token_options_are_one_line(settings, project, expires, account, message):
    with pytest.raises(SettingsError, match=message):
        tokens_task.token_settings(settings, project, expires, account)
