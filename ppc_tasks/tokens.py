"""`tokens`: API tokens, PyPI's way for CI and scripts to publish without an account's
password. A token acts for one account, on the projects of its scope only (it uploads
and reads them; no other project, no delete, no yank, no admin page), until it expires or
is revoked. The index keeps the sha256 of its secret; the token is printed once, here.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import asdict

from . import values
from .errors import TaskError
from .facts import API_TOKENS, CONTAINER, DOCKER, PLATFORM
from .plan import Change, Command, Plan, Unchanged
from .plans import server
from .render import guard_module
from .settings import SettingsError
from .wiring import host_task

NEVER = "0"  # --expires 0: a token that never expires


def token_settings(settings, project: str, expires: str, account: str):
    """(scope, lifetime or None, account) from the options, each checked in one line."""
    try:
        scope = values.name_patterns({"project": project}, "project")
        lifetime = values.duration({"expires": expires}, "expires")
    except SettingsError as error:
        raise SettingsError(str(error).replace("ppc.", "--", 1)) from None
    if not scope:
        raise SettingsError("--project: name the project (or a pattern: 'acme-*') the token "
                            "may publish to")
    account = account or settings.client_user
    if account not in settings.accounts:
        raise SettingsError(f"--account: {account!r} is not in ppc.admins or ppc.users")
    if account in settings.admins:
        raise SettingsError(f"--account: {account!r} is an admin, whose uploads pass every "
                            f"rule: make tokens for a plain account (ppc.users)")
    return scope, (datetime.timedelta(seconds=lifetime) if expires != NEVER else None), account


def require_server(host, facts) -> None:
    host.require_docker(facts)
    server.require_running(host.settings, facts)


def queries(settings) -> list[str]:
    container = settings.server_container
    return [PLATFORM.query(), DOCKER.query(), CONTAINER.query(container),
            API_TOKENS.query(container)]


def stored_tokens(settings, facts) -> tuple[dict, ...]:
    """The index's tokens, as ppc-guard lists them (no secret)."""
    found = facts.api_tokens[settings.server_container]
    if found is None:
        raise TaskError("the index's server cannot list tokens (its image is from before "
                        "them): deploy first")
    return found


@host_task(option_help={
    "project": "the project the token may publish to and read, or a pattern ('acme-*'); "
               "several, comma-separated",
    "expires": "how long it is valid: 90d, 12h; 0 for never",
    "note": "what it is for (shown by tokens.list)",
    "account": "the account it acts for (default: ppc.client_user; never an admin)"})
def create(host, project, expires="90d", note="", account=""):
    """Make an API token for a project (or pattern): printed once, kept nowhere.

    Example: ppc -H pypi-internal tokens.create --project 'acme-*' --note "acme's CI"

    Used as on PyPI: the user name __token__ and the token as the password, with twine,
    uv, Poetry and PDM unchanged. The index keeps the sha256 of its secret, the account
    it acts for (its uploads are that account's), its scope, note and dates.
    """
    scope, lifetime, account = token_settings(host.settings, project, expires, account)
    facts = host.read_facts(queries(host.settings))
    require_server(host, facts)
    made, kept = guard_module("tokens").new(
        account, scope, note.replace("\n", " "), datetime.datetime.now(datetime.timezone.utc),
        lifetime)
    until = f"until {kept.expires}" if kept.expires else "without end"
    plan = Plan()
    plan.add(Change("tokens.create", done=f"token {kept.id} for {', '.join(scope)} as "
                                         f"{account}, {until}",
                    would=f"make a token for {', '.join(scope)} as {account}, {until}",
                    commands=[Command(tuple(server.guard_argv(host.settings, "token-add")),
                                      stdin=json.dumps(asdict(kept)).encode(),
                                      stdin_shown="the token's id, scope and secret's sha256",
                                      failure="the index did not take the token")]))
    host.carry_out(plan)
    if not host.dry:
        host.note(f"the token (shown this once; user __token__): {made}")


@host_task(mutating=False, name="tokens.list")
def list_tokens(host):
    """Show the index's API tokens: id, account, scope, note, made, expires, last used."""
    facts = host.read_facts(queries(host.settings))
    require_server(host, facts)
    found = stored_tokens(host.settings, facts)
    if not found:
        host.note("no tokens")
    for token in found:
        host.note(f"{token['id']}  {token['account']:<12} {', '.join(token['scope']):<20} "
                  f"made {token['created'][:10]}  expires {token['expires'][:10] or 'never'}"
                  f"  last used {token['last_used'][:16] or 'never'}  {token['note']}"
                  f"{'  (single use)' if token.get('single_use') else ''}")


@host_task(option_help={"id": "the token's id (tokens.list shows them)"})
def revoke(host, id):  # noqa: A002  (what the operator types: --id or the id alone)
    """Revoke an API token: from the next request on, it logs in no more.

    Example: ppc -H pypi-internal tokens.revoke 3f2a9c1d
    """
    facts = host.read_facts(queries(host.settings))
    require_server(host, facts)
    plan = Plan()
    if all(token["id"] != id for token in stored_tokens(host.settings, facts)):
        plan.add(Unchanged("tokens.revoke", f"no token {id} (revoked already, or never made)"))
    else:
        plan.add(Change("tokens.revoke", done=f"revoked token {id}", would=f"revoke token {id}",
                        commands=[Command(tuple(server.guard_argv(host.settings, "token-revoke", id)),
                                          failure=f"the index did not revoke token {id}")]))
    host.carry_out(plan)
