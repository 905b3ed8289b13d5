"""config.ini, the server's whole configuration (manual step 4): rendered from the
settings and the index's secrets (templates/config.ini.j2), shown by --dry with every
secret redacted, and, for a rollback, given today's accounts and rules.
"""

from __future__ import annotations

import configparser
import hashlib
import importlib.metadata
import re

from .credentials import Credentials
from .errors import TaskError
from .plan import REDACTED
from .render import render
from .settings import DATA_DIR, Settings

# Lines of config.ini that --dry never shows: password hashes and session keys.
SECRET_LINE = re.compile(r"^(user\.[^=\s]+|session\.(encrypt|validate)_key|"
                         r"storage\.aws_secret_access_key|ppc_guard\.metrics_token_sha256)"
                         r"(\s*=\s*).*$", re.MULTILINE)
URL_PASSWORD = re.compile(r"^(db\.url\s*=\s*[a-z]+://[^:@/\s]*:)[^@\s]*@", re.MULTILINE)
# The blocks of config.ini that a rollback replaces with today's (templates/config-*.ini.j2),
# and their lines in a config.ini from before the blocks were marked.
TODAYS_BLOCKS = {
    "accounts": re.compile(r"^(?:auth\.admins\s*=.*\n(?:[ \t]+\S.*\n)*|user\.[^=\s]+\s*=.*\n|"
                           r"session\.(?:encrypt|validate)_key\s*=.*\n)", re.MULTILINE),
    "rules": re.compile(r"^(?:pypi\.(?:default_read|default_write|allow_delete_groups|"
                        r"allow_overwrite_groups|allow_overwrite|fallback|always_show_upstream)"
                        r"\s*=.*\n|ppc_guard\.(?:release_window|private_names|account_quota)\s*=.*\n|"
                        r"ppc_guard\.owners\s*=.*\n(?:[ \t]+\S.*\n)*)", re.MULTILINE),
}
# waitress has no "no limit": a body this large never arrives.
UNLIMITED_BODY = 2 ** 62


def account_values(settings: Settings, creds: Credentials) -> dict:
    return {
        "admins": settings.admins,
        "accounts": [{"name": name, "password_hash": creds.password_hashes[name]}
                     for name in settings.accounts],
        "session_encrypt_key": creds.session_encrypt_key,
        "session_validate_key": creds.session_validate_key,
        "metrics_token_sha256": hashlib.sha256(creds.metrics_token.encode()).hexdigest()
        if creds.metrics_token else "",
    }


# pypicloud's pypi.fallback and pypi.always_show_upstream for each `fallback` setting:
# pypicloud 1.3.12 takes only redirect, cache or none; a mirror is a cache that always
# lists the upstream's releases too.
PYPICLOUD_FALLBACK = {"none": ("none", False), "redirect": ("redirect", False),
                      "cache": ("cache", False), "mirror": ("cache", True)}


def rule_values(settings: Settings) -> dict:
    fallback, always_show_upstream = PYPICLOUD_FALLBACK[settings.fallback]
    return {"settings": settings, "fallback": fallback,
            "always_show_upstream": str(always_show_upstream).lower(),
            "trusted_publishers": [ini_value(publisher.as_json())
                                   for publisher in settings.trusted_publishers]}


def release() -> str:
    """The ppc-tasks release that renders config.ini (/metrics names it)."""
    try:
        return importlib.metadata.version("ppc-tasks")
    except importlib.metadata.PackageNotFoundError:  # a clone used without installing it
        return "unknown"


def render_config(settings: Settings, creds: Credentials) -> bytes:
    return render(
        "config.ini.j2",
        **rule_values(settings),
        data_dir=DATA_DIR,
        s3_secret_access_key=ini_value(creds.s3_secret_access_key),
        cache_url=ini_value(settings.cache.url(creds.cache_password, timeouts=True)) if settings.cache else "",
        max_request_body_size=settings.max_upload_size or UNLIMITED_BODY,
        release=release(),
        **account_values(settings, creds),
    )


def with_todays_accounts_and_rules(config: bytes, settings: Settings, creds: Credentials) -> bytes:
    """A config.ini kept for rollback, with the accounts, password hashes, session keys
    and rules of today: a rollback changes the code that runs, never who may log in, who
    may publish what (owners, release_window) or which names stay home (private_names,
    fallback)."""
    text = config.decode()
    for name, block in (("accounts", render("config-accounts.ini.j2",
                                            **account_values(settings, creds))),
                        ("rules", render("config-rules.ini.j2", **rule_values(settings)))):
        text = with_todays_block(text, name, block.decode())
    try:  # a line left twice would stop the server at its start
        configparser.ConfigParser(interpolation=None, strict=True).read_string(text)
    except configparser.Error as error:
        raise TaskError(f"the rollback target's config.ini cannot take today's accounts and "
                        f"rules ({str(error).splitlines()[0]}): deploy instead") from None
    return text.encode()


def with_todays_block(text: str, name: str, block: str) -> str:
    marked = re.compile(rf"^# -- {name}:.*?^# -- end of {name}\n", re.MULTILINE | re.DOTALL)
    if marked.search(text):
        return marked.sub(lambda _: block, text, count=1)
    found = []  # from before the block was marked: the first of its lines makes way for it

    def first_makes_way(match: re.Match) -> str:
        found.append(match[0].split("=", 1)[0].strip())
        return block if len(found) == 1 else ""

    text = TODAYS_BLOCKS[name].sub(first_makes_way, text)
    if not found:
        raise TaskError(f"the rollback target's config.ini holds no {name}: deploy instead")
    # A rule of who may publish what that the retired server's config never had is one
    # its code may not know. (One that predates account_quota has no quota.)
    unknown = sorted(set(re.findall(r"^(ppc_guard\.(?:owners|private_names|release_window))",
                                    block, re.MULTILINE)) - set(found))
    if unknown:
        raise TaskError(f"the rollback target's server predates {', '.join(unknown)}, which "
                        f"today's settings decide: deploy instead")
    return text


def ini_value(text: str) -> str:
    """A value as pserve's config parser reads it back: it expands %(name)s, so a literal
    % is written twice."""
    return text.replace("%", "%%")


def redact_config(text: str) -> str:
    text = SECRET_LINE.sub(lambda match: f"{match[1]}{match[3]}{REDACTED}", text)
    return URL_PASSWORD.sub(lambda match: f"{match[1]}{REDACTED}@", text)
