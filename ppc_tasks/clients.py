"""`clients`: point developer machines at the index (manual step 7), many at once.

For the connecting user on each host: `~/.pypirc` gets an `internal` repository for
twine, `~/.config/pip/pip.conf` the index for pip, both mode 0600 (they hold the
password) and merged into what is there (the first change keeps a backup). Both point
at a CA bundle that includes the index's CA: the system one, after `certs.trust`, when
the user can sudo; else a bundle of the user's own.
"""

from __future__ import annotations

import configparser
import io
import re
import urllib.parse

from . import certs, credentials
from .errors import TaskError
from .facts import Facts, FileFacts
from .host import many_hosts_task
from .plan import REDACTED, Change, Command, Plan, Step, Unchanged, file_step
from .render import render, script_argv
from .settings import Settings
from .system import FAMILIES

REPOSITORY = "internal"  # twine upload -r internal
PYPIRC = ".pypirc"
# pip's per-user file on Linux; the seed's ~/.pip/pip.conf is the legacy location.
PIP_CONF = ".config/pip/pip.conf"
BACKUP_SUFFIX = ".ppc-tasks-backup"  # what backup-once.sh keeps
# The files of the connecting user, by step; the facts probe reads them as ~/NAME.
USER_FILES = {"clients.pypirc": PYPIRC, "clients.pip": PIP_CONF}
# pip from 24.2 on, on Python 3.10 and newer, verifies with the system trust store
# (truststore): once the CA is there, pip.conf needs no `cert`. twine reads certifi only,
# so .pypirc always names the bundle.
PIP_WITH_SYSTEM_STORE = (24, 2)
PYTHON_WITH_SYSTEM_STORE = (3, 10)


# -- deciding ------------------------------------------------------------------------------
def _parse(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keep keys as written
    parser.read_string(text)
    return parser


def _write(parser: configparser.ConfigParser) -> str:
    buffer = io.StringIO()
    parser.write(buffer)
    return buffer.getvalue()


def index_url_with_credentials(index_url: str, username: str, password: str) -> str:
    parts = urllib.parse.urlsplit(index_url)
    netloc = f"{urllib.parse.quote(username, safe='')}:{urllib.parse.quote(password, safe='')}" \
             f"@{parts.netloc}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def render_pypirc(settings: Settings, password: str, ca_bundle: str | None) -> str:
    return render("pypirc.j2", index_url=settings.index_url, username=settings.client_user,
                  password=password, ca_bundle=ca_bundle).decode()


def render_pip_conf(settings: Settings, password: str, ca_bundle: str | None) -> str:
    return render("pip.conf.j2", index_key=settings.client_index, ca_bundle=ca_bundle,
                  index_url=index_url_with_credentials(settings.index_url, settings.client_user,
                                                       password)).decode()


def merge_pypirc(existing: str, ours: str) -> str:
    """Add (or replace) our repository; every other repository stays as it was."""
    parser, our = _parse(existing), _parse(ours)
    servers = parser.get("distutils", "index-servers", fallback=None)
    servers = servers.split() if servers is not None else [
        section for section in parser.sections() if section != "distutils"]
    if REPOSITORY not in servers:
        servers.append(REPOSITORY)
    if not parser.has_section("distutils"):
        parser.add_section("distutils")
    parser.set("distutils", "index-servers", "\n" + "\n".join(servers))
    parser.remove_section(REPOSITORY)
    parser.add_section(REPOSITORY)
    for key, value in our.items(REPOSITORY):
        parser.set(REPOSITORY, key, value)
    return _write(parser)


def merge_pip_conf(existing: str, ours: str, stale_cert: str | None = None) -> str:
    """Set our keys in [global]; an extra-index-url keeps the other indexes it lists; a
    `cert` naming stale_cert (one configure wrote, no longer needed) goes."""
    parser, our = _parse(existing), _parse(ours)
    if not parser.has_section("global"):
        parser.add_section("global")
    if stale_cert and parser.get("global", "cert", fallback=None) == stale_cert:
        parser.remove_option("global", "cert")
    for key, value in our.items("global"):
        if key == "extra-index-url":
            ours_host = urllib.parse.urlsplit(value).hostname
            others = [url for url in parser.get("global", key, fallback="").split()
                      if urllib.parse.urlsplit(url).hostname != ours_host]
            value = "\n".join(others + [value])
        parser.set("global", key, value)
    return _write(parser)


def user_bundle_name(settings: Settings) -> str:
    """The CA bundle of a user without sudo, in their home."""
    return f".config/ppc-tasks/{settings.index_name}-ca-bundle.pem"


def combined_bundle(system_bundle: str, ca_certificate: bytes) -> bytes:
    """The system's CAs (if any could be read) followed by the index's CA."""
    parts = [system_bundle.rstrip("\n"), ca_certificate.decode().rstrip("\n")]
    return ("\n".join(part for part in parts if part) + "\n").encode()


def client_password(settings: Settings) -> str:
    """The client account's password, from the index's secrets on this machine."""
    path = settings.secrets_path
    password = credentials.load(path).passwords.get(settings.client_user)
    if not password:
        raise TaskError(f"no password for {settings.client_user!r} in {path}: "
                        f"deploy the server first (with the same ppc settings)")
    return password


def pip_trusts_system_store(facts: Facts) -> bool:
    """Whether `python3 -m pip` on the host verifies with the system trust store."""
    return facts.pip is not None and facts.pip[0][:2] >= PIP_WITH_SYSTEM_STORE \
        and facts.pip[1][:2] >= PYTHON_WITH_SYSTEM_STORE


def queries(settings: Settings, can_sudo: bool) -> list[str]:
    files = [query for name in USER_FILES.values()
             for query in (f"text=~/{name}", f"file=~/{name}{BACKUP_SUFFIX}")]
    # The system bundle goes into a user's own when it cannot hold the index's CA: without
    # sudo, or where it never holds a local CA (macOS).
    bundles = list(dict.fromkeys(f"text={family.trust_store.bundle}" for family in FAMILIES.values()
                                 if not can_sudo or not family.trust_store.bundle_holds_local))
    return ["platform", *files, f"file=~/{user_bundle_name(settings)}",
            *certs.trust_queries(settings), *(["pip"] if can_sudo else []), *bundles]


def redact_credentials(text: str) -> str:
    """pip.conf and .pypirc as --dry shows them: no password, not even in a URL."""
    text = re.sub(r"^(password\s*=\s*).*$", rf"\g<1>{REDACTED}", text, flags=re.MULTILINE)
    return re.sub(r"(://[^:/@\s]+:)[^@\s]+@", rf"\g<1>{REDACTED}@", text)


def plan_configure(settings: Settings, facts: Facts, password: str, ca: bytes | None,
                   can_sudo: bool, host_name: str) -> list[Step]:
    """The CA (system store with sudo, else a bundle of the user's own), then .pypirc and
    pip.conf merged into what is there, the first change keeping a backup."""
    steps: list[Step] = []
    bundle = pip_bundle = None
    store = facts.platform.trust_store
    if ca is not None and can_sudo:
        steps.append(certs.plan_trust(settings, facts, ca, host_name))
    if ca is not None and can_sudo and store.bundle_holds_local:
        bundle = pip_bundle = store.bundle
        if pip_trusts_system_store(facts):
            pip_bundle = None
    elif ca is not None:
        system = (facts.file(store.bundle).content or b"").decode() if store else ""
        why = "the system bundle never holds it" if can_sudo else "no sudo"
        bundle = pip_bundle = f"{facts.home}/{user_bundle_name(settings)}"
        steps.append(file_step("clients.ca-bundle", bundle, combined_bundle(system, ca),
                               facts.file(f"~/{user_bundle_name(settings)}"), mode="644",
                               owner=None, user_ids=facts.user_ids,
                               done=f"{bundle} ({why}: a user-local CA bundle)"))
    stale = bundle if pip_bundle is None else None
    ours = {"clients.pypirc": (merge_pypirc, render_pypirc(settings, password, bundle)),
            "clients.pip": (lambda existing, our: merge_pip_conf(existing, our, stale),
                            render_pip_conf(settings, password, pip_bundle))}
    for step, name in USER_FILES.items():
        merge, our_part = ours[step]
        current = facts.file(f"~/{name}")
        existing = (current.content or b"").decode()
        path = f"{facts.home}/{name}"
        change = file_step(step, path, merge(existing, our_part).encode(), current, mode="600",
                           owner=None, user_ids=facts.user_ids, redact=redact_credentials)
        if isinstance(change, Change):  # the original, or a note that there was none
            change.commands = [Command.of(*script_argv("backup-once", path), root=False),
                               *change.commands]
        steps.append(change)
    return steps


def plan_unconfigure(settings: Settings, facts: Facts, can_sudo: bool) -> list[Step]:
    """Each file back as it was before the first configure; the CA out of the store."""
    steps: list[Step] = []
    files = {**USER_FILES, "clients.ca-bundle": user_bundle_name(settings)}
    for step, name in files.items():
        path = f"{facts.home}/{name}"
        restore = [Command.of(*script_argv("restore-backup", path), root=False)]
        if facts.files.get(f"~/{name}{BACKUP_SUFFIX}", FileFacts(None)).state is not None:
            steps.append(Change(step, done=f"restored {path}",
                                would=f"restore {path} as it was before configure",
                                commands=restore))
        elif facts.file(f"~/{name}").state is not None:
            steps.append(Change(step, done=f"removed {path}",
                                would=f"remove {path}, which configure made", commands=restore))
        else:
            steps.append(Unchanged(step, f"{path} was not configured"))
    if can_sudo:
        steps.append(certs.plan_untrust(settings, facts))
    return steps


# -- tasks ---------------------------------------------------------------------------------
@many_hosts_task
def configure(host):
    """Point developer machines at the index: pip and twine over HTTPS, no extra flags.

    Run on many hosts at once: fab -H dev1,dev2,dev3 clients.configure. For the
    connecting user: ~/.pypirc gains the `internal` repository (twine upload -r
    internal) and ~/.config/pip/pip.conf the index, both 0600, merged into existing
    files (the first change keeps a .ppc-tasks-backup). With sudo the CA goes into the
    system trust store; without, into a CA bundle of the user's own. The index is the
    one deployed from this machine; --index NAME picks one when there are several.
    """
    settings = host.settings
    password, ca = client_password(settings), certs.ca_to_trust(settings)
    facts = host.gather(queries(settings, host.can_sudo), root=False)
    plan = Plan()
    plan.add(*plan_configure(settings, facts, password, ca, host.can_sudo, host.name))
    host.carry_out(plan)


@many_hosts_task
def unconfigure(host):
    """Put developer machines back: restore ~/.pypirc and pip.conf, drop the CA.

    --index NAME picks the index when several were deployed from this machine.
    """
    facts = host.gather(queries(host.settings, can_sudo=True), root=False)
    plan = Plan()
    plan.add(*plan_unconfigure(host.settings, facts, host.can_sudo))
    host.carry_out(plan)
