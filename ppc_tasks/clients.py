"""`clients`: point developer machines at the index (manual step 7), many at once.

For the connecting user on each host: `~/.pypirc` gets an `internal` repository for
twine, `~/.config/pip/pip.conf` the index for pip, and uv, Poetry and PDM, where
installed, their own files; all mode 0600 (they hold the password) and merged into
what is there (the first change keeps a backup). Each trusts the index's CA: the
system store, after `certs.trust`, when the user can sudo; else a bundle of the
user's own.
"""

from __future__ import annotations

import configparser
import functools
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fabric import task

from . import client_kit, credentials, state
from .apply import ThisMachine
from .errors import TaskError, program
from .facts import FILE, PIP, PLATFORM, TEXT, TOOL, Facts, FileFacts
from .merging import (
    REPOSITORY,
    merge_netrc,
    merge_pip_conf,
    merge_pypirc,
    merge_toml,
    merge_uv_toml,
)
from .plan import Change, Command, Plan, Step, Unchanged, file_step, one_step
from .plans import certs
from .render import render, script_argv
from .settings import Settings, SettingsError
from .system import FAMILIES
from .wiring import OPTION_HELP, expected_failures, many_hosts_task, settings_of

PYPIRC = ".pypirc"
# pip's per-user file on Linux; the seed's ~/.pip/pip.conf is the legacy location.
PIP_CONF = ".config/pip/pip.conf"
UV_TOML = ".config/uv/uv.toml"  # on a Mac too
NETRC = ".netrc"  # where uv (and pip, curl) find the account for a host
BACKUP_SUFFIX = ".ppc-tasks-backup"  # what backup-once.sh keeps
CREATED_SUFFIX = ".ppc-tasks-created"  # its note that there was no file before
# The steps for a tool that may not be installed, and the tool's command.
TOOL_STEPS = {"clients.uv": "uv", "clients.poetry": "poetry", "clients.pdm": "pdm"}
# pip from 24.2 on, on Python 3.10 and newer, verifies with the system trust store
# (truststore): once the CA is there, pip.conf needs no `cert`. twine reads certifi only,
# so .pypirc always names the bundle.
PIP_WITH_SYSTEM_STORE = (24, 2)
PYTHON_WITH_SYSTEM_STORE = (3, 10)
# uv 0.11 renamed `native-tls` (verify with the system store) to `system-certs`, and
# warns on the old name.
UV_WITH_SYSTEM_CERTS = (0, 11)


# -- deciding ------------------------------------------------------------------------------
def user_file_names(on_mac: bool) -> dict[str, tuple[str, ...]]:
    """The files of the connecting user, by step, as ~/NAME. Poetry and PDM keep theirs
    where platformdirs puts a program's settings, which differs on a Mac."""
    config = "Library/Application Support" if on_mac else ".config"
    return {"clients.pypirc": (PYPIRC,), "clients.pip": (PIP_CONF,),
            "clients.uv": (UV_TOML, NETRC),
            # auth.toml: where `poetry config http-basic...` writes without a keyring
            "clients.poetry": (f"{config}/pypoetry/config.toml", f"{config}/pypoetry/auth.toml"),
            "clients.pdm": (f"{config}/pdm/config.toml",)}


def on_mac(facts: Facts) -> bool:
    return facts.platform.family is not None and facts.platform.family.name == "macos"


def index_url_with_credentials(index_url: str, username: str, password: str) -> str:
    parts = urllib.parse.urlsplit(index_url)
    account = f"{urllib.parse.quote(username, safe='')}:{urllib.parse.quote(password, safe='')}"
    netloc = f"{account}@{parts.netloc}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def render_pypirc(settings: Settings, password: str, ca_bundle: str | None) -> str:
    return render("pypirc.j2", index_url=settings.index_url, username=settings.client_user,
                  password=password, ca_bundle=ca_bundle).decode()


def render_pip_conf(settings: Settings, password: str, ca_bundle: str | None) -> str:
    return render("pip.conf.j2", index_key=settings.client_index, ca_bundle=ca_bundle,
                  index_url=index_url_with_credentials(settings.index_url, settings.client_user,
                                                       password)).decode()


def render_uv_toml(settings: Settings, system_certs_key: str | None,
                   user_bundle: str | None = None) -> str:
    return render("uv.toml.j2", name=REPOSITORY, index_url=settings.index_url,
                  default=settings.client_index == "index-url",
                  system_certs_key=system_certs_key, user_bundle=user_bundle).decode()


# What a netrc word cannot hold: parsers differ on quoting, so nothing is quoted.
NETRC_UNSAFE = re.compile(r'[\s"\\]|^#')


def render_netrc(settings: Settings, password: str) -> str:
    if NETRC_UNSAFE.search(password):
        raise TaskError(f"the password of {settings.client_user} in {settings.secrets_path} has "
                        f"a space, quote or backslash, which ~/.netrc (uv reads the account "
                        f"there) cannot hold: choose another one and deploy again")
    return render("netrc.j2", host=urllib.parse.urlsplit(settings.index_url).hostname,
                  username=settings.client_user, password=password).decode()


def render_poetry(settings: Settings, password: str, ca_bundle: str | None) -> tuple[str, str]:
    """Poetry's config.toml and auth.toml parts."""
    return (render("poetry-config.toml.j2", name=REPOSITORY, index_url=settings.index_url,
                   ca_bundle=ca_bundle).decode(),
            render("poetry-auth.toml.j2", name=REPOSITORY, username=settings.client_user,
                   password=password).decode())


def render_pdm_config(settings: Settings, password: str, ca_bundle: str | None) -> str:
    return render("pdm-config.toml.j2", name=REPOSITORY, index_url=settings.index_url,
                  default=settings.client_index == "index-url", username=settings.client_user,
                  password=password, ca_bundle=ca_bundle).decode()


def uv_system_certs_key(facts: Facts) -> str:
    """The uv.toml key for "verify with the system store" that the host's uv knows."""
    uv = facts.tools.get("uv")
    older = uv is not None and uv[1] and uv[1] < UV_WITH_SYSTEM_CERTS
    return "native-tls" if older else "system-certs"


def user_bundle_name(settings: Settings) -> str:
    """The CA bundle of a user without sudo, in their home."""
    return f".config/ppc-tasks/{settings.index_name}-ca-bundle.pem"


def combined_bundle(system_bundle: str, ca_certificate: bytes) -> bytes:
    """The system's CAs (if any could be read) followed by the index's CA."""
    parts = [system_bundle.rstrip("\n"), ca_certificate.decode().rstrip("\n")]
    return ("\n".join(part for part in parts if part) + "\n").encode()


def pip_trusts_system_store(facts: Facts) -> bool:
    """Whether `python3 -m pip` on the host verifies with the system trust store."""
    return (facts.pip is not None and facts.pip[0][:2] >= PIP_WITH_SYSTEM_STORE
            and facts.pip[1][:2] >= PYTHON_WITH_SYSTEM_STORE)


def queries(settings: Settings, can_sudo: bool) -> list[str]:
    names = dict.fromkeys(name for mac in (False, True)  # the platform is learned with them
                          for names in user_file_names(mac).values() for name in names)
    files = [query for name in names
             for query in (TEXT.query(f"~/{name}"), FILE.query(f"~/{name}{BACKUP_SUFFIX}"),
                           FILE.query(f"~/{name}{CREATED_SUFFIX}"))]
    # The system bundle goes into a user's own when it cannot hold the index's CA: without
    # sudo, or where it never holds a local CA (macOS).
    bundles = list(dict.fromkeys(TEXT.query(family.trust_store.bundle) for family in FAMILIES.values()
                                 if not can_sudo or not family.trust_store.bundle_holds_local))
    return [PLATFORM.query(), *files, FILE.query(f"~/{user_bundle_name(settings)}"),
            *(TOOL.query(tool) for tool in TOOL_STEPS.values()),
            *certs.trust_queries(settings), *([PIP.query()] if can_sudo else []), *bundles]


@dataclass(frozen=True)
class Trust:
    """How each tool verifies the index: a CA bundle that holds its CA, or None where the
    tool's own roots do (a public certificate) or it reads the system store."""
    bundle: str | None  # twine, Poetry, PDM
    pip_bundle: str | None
    stale_pip_bundle: str | None  # a `cert` an earlier configure wrote, no longer needed
    uv_system_certs: bool  # the CA is in the system store, which uv reads only when told


# (path under the home, our part, how it merges into the user's file)
UserFile = tuple[str, str, Callable[[str, str], str]]


def user_files(step: str, settings: Settings, facts: Facts, password: str, trust: Trust
               ) -> list[UserFile]:
    """The files configure writes for one step: our part of each, and its merge."""
    uv_key = uv_system_certs_key(facts) if trust.uv_system_certs else None
    ours = {
        "clients.pypirc": lambda: [(render_pypirc(settings, password, trust.bundle),
                                    merge_pypirc)],
        "clients.pip": lambda: [(render_pip_conf(settings, password, trust.pip_bundle),
                                 functools.partial(merge_pip_conf,
                                                   stale_cert=trust.stale_pip_bundle))],
        "clients.uv": lambda: [(render_uv_toml(settings, uv_key, trust.bundle), merge_uv_toml),
                               (render_netrc(settings, password), merge_netrc)],
        "clients.poetry": lambda: [(part, merge_toml) for part in
                                   render_poetry(settings, password, trust.bundle)],
        "clients.pdm": lambda: [(render_pdm_config(settings, password, trust.bundle),
                                 merge_toml)],
    }[step]()
    names = user_file_names(on_mac(facts))[step]
    if len(names) != len(ours):  # zip(strict=True) but on Python 3.9
        raise ValueError(f"{step}: {len(ours)} files, {len(names)} names")
    return [(name, *part) for name, part in zip(names, ours)]


def user_file_step(step: str, facts: Facts, user_file: UserFile) -> Step:
    """One file of the user merged with our part, 0600; the first change keeps the
    original (or a note that there was none)."""
    name, ours, merge = user_file
    current = facts.file(f"~/{name}")
    path = f"{facts.home}/{name}"
    try:
        content = merge((current.content or b"").decode(), ours)
    except (configparser.Error, ValueError) as error:  # TOML's and UTF-8's errors are ValueErrors
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise TaskError(f"{path} cannot be read ({message}): fix or move it, "
                        f"then configure again") from None
    change = file_step(step, path, content.encode(), current, mode="600", owner=None,
                       user_ids=facts.user_ids)
    if isinstance(change, Change):
        change.commands = [Command.of(*script_argv("backup-once", path), root=False),
                           *change.commands]
    return change


def plan_configure(settings: Settings, facts: Facts, password: str, ca: bytes | None,
                   can_sudo: bool, host_name: str, all_tools: bool = False) -> list[Step]:
    """The CA (system store with sudo, else a bundle of the user's own), then each
    tool's files merged into what is there, the first change keeping a backup. uv,
    Poetry and PDM only where installed, unless all_tools."""
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
    trust = Trust(bundle=bundle, pip_bundle=pip_bundle,
                  stale_pip_bundle=bundle if pip_bundle is None else None,
                  uv_system_certs=ca is not None and can_sudo)
    for step in user_file_names(on_mac(facts)):
        tool = TOOL_STEPS.get(step)
        if tool and facts.tools.get(tool) is None and not all_tools:
            steps.append(Unchanged(step, f"{tool} is not installed here "
                                         f"(--all-tools configures it anyway)"))
            continue
        files = user_files(step, settings, facts, password, trust)
        parts = [user_file_step(step, facts, user_file) for user_file in files]
        if len(parts) == 1:
            steps.append(parts[0])
            continue
        done = ", ".join(f"{facts.home}/{name}" for name, _, _ in files)
        if step == "clients.uv" and ca is not None and not trust.uv_system_certs:
            done += f" (uv trusts the index with SSL_CERT_FILE={bundle} in the environment)"
        steps.append(one_step(step, done=done, parts=parts, would="; ".join(
            part.would for part in parts if isinstance(part, Change))))
    return steps


def plan_unconfigure(settings: Settings, facts: Facts, can_sudo: bool) -> list[Step]:
    """Each file back as it was before the first configure; the CA out of the store."""
    steps: list[Step] = []
    files = {**user_file_names(on_mac(facts)), "clients.ca-bundle": (user_bundle_name(settings),)}
    for step, names in files.items():
        parts: list[Step] = []
        for name in names:
            path = f"{facts.home}/{name}"
            restore = [Command.of(*script_argv("restore-backup", path), root=False)]
            configured = facts.files.get(f"~/{name}{CREATED_SUFFIX}", FileFacts(None)).state
            if facts.files.get(f"~/{name}{BACKUP_SUFFIX}", FileFacts(None)).state is not None:
                parts.append(Change(step, done=f"restored {path}",
                                    would=f"restore {path} as it was before configure",
                                    commands=restore))
            # A tool's file is ours only with configure's note; pip's, twine's and the
            # bundle always were, also from before configure wrote notes.
            elif facts.file(f"~/{name}").state is not None and (
                    configured is not None or step not in TOOL_STEPS):
                parts.append(Change(step, done=f"removed {path}",
                                    would=f"remove {path}, which configure made",
                                    commands=restore))
            else:
                parts.append(Unchanged(step, f"{path} was not configured"))
        changes = [part for part in parts if isinstance(part, Change)]
        steps.append(parts[0] if len(parts) == 1 else one_step(
            step, done=", ".join(part.done for part in changes) or parts[0].detail,
            would="; ".join(part.would for part in changes), parts=parts))
    if can_sudo:
        steps.append(certs.plan_untrust(settings, facts))
    return steps


def refuse_admin_client(settings: Settings) -> None:
    """Developer machines hold the client account's password in files: an admin's would
    let any developer, or malware on any laptop, delete releases and manage accounts."""
    if settings.client_user in settings.admins and not settings.allow_admin_client:
        raise SettingsError(f"ppc.client_user: {settings.client_user!r} is an admin, whose "
                            f"password would be on every developer machine: name a plain "
                            f"account (ppc.users), or set ppc.allow_admin_client: true")


ALL_TOOLS_HELP = "configure uv, Poetry and PDM even where they are not installed"
KIT_HELP = "the client kit file (made by clients.export; it holds a password)"


# -- tasks ---------------------------------------------------------------------------------
@many_hosts_task(preflight=refuse_admin_client, option_help={"all_tools": ALL_TOOLS_HELP})
def configure(host, all_tools=False):
    """Point developer machines at the index: pip, twine, uv, Poetry and PDM, no flags.

    Example: ppc -H dev1,dev2,dev3 clients.configure

    On many hosts at once. For the connecting user, each file merged into what is there (the first change keeps a
    .ppc-tasks-backup), 0600: ~/.pypirc gains the `internal` repository (twine upload
    -r internal), ~/.config/pip/pip.conf the index; where installed (or with
    --all-tools), uv gets ~/.config/uv/uv.toml and ~/.netrc (uv pip install, uv add,
    uv publish), Poetry the `internal` repository (poetry publish -r internal, a
    project source named internal) and PDM the index and `internal` (pdm publish -r
    internal). With sudo the CA goes into the system trust store; without, into a CA
    bundle of the user's own. The index is the one deployed from this machine; --index
    NAME picks one when there are several.
    """
    configure_user(host, credentials.client_password(host.settings),
                   certs.ca_to_trust(host.settings), all_tools)


def configure_user(host, password: str, ca: bytes | None, all_tools: bool) -> None:
    """The connecting user's files and trust, on a host over SSH (configure) or on this
    machine (setup): its facts read, its plan carried out."""
    facts = host.gather(queries(host.settings, host.can_sudo), root=False)
    host.carry_out(Plan(plan_configure(host.settings, facts, password, ca, host.can_sudo,
                                       host.name, all_tools)))


@many_hosts_task
def unconfigure(host):
    """Put developer machines back as they were before clients.configure, CA and all.

    Example: ppc -H dev1,dev2 clients.unconfigure

    Every file configure wrote as it was before, the CA out of the system store.

    --index NAME picks the index when several were deployed from this machine.
    """
    facts = host.gather(queries(host.settings, can_sudo=True), root=False)
    plan = Plan()
    plan.add(*plan_unconfigure(host.settings, facts, host.can_sudo))
    host.carry_out(plan)


@task(auto_shortflags=False, help={"kit": KIT_HELP, "index": OPTION_HELP["index"]})
def export(c, kit, index=""):
    """Write a kit from which a developer or CI machine sets itself up (clients.setup).

    Example: ppc clients.export --kit dev-kit.json

    The kit (a 0600 file) holds the index's names and URL, the client account with its
    password, and the CA to trust: what every configured machine holds already, not the
    CA's key and no admin's password. Hand it over as you would that password. --index
    NAME picks the index when several were deployed from this machine.
    """
    with expected_failures():
        settings = settings_of(c, for_server=False, index_option=index)
        refuse_admin_client(settings)
        content = client_kit.content(settings, credentials.client_password(settings),
                                     certs.ca_to_trust(settings))
        state.write(Path(kit), content, private_folder=False)  # 0600: it holds a password
    print(f"wrote {kit} for {settings.index_url} as {settings.client_user}; on the other "
          f"machine: {program()} clients.setup --kit {Path(kit).name}, then delete the kit")


@task(auto_shortflags=False, help={"kit": KIT_HELP, "all_tools": ALL_TOOLS_HELP})
def setup(c, kit, all_tools=False):
    """Set up your own machine from a kit (clients.export): pip, twine, uv, Poetry, PDM.

    Example: ppc clients.setup --kit dev-kit.json

    For the user running it, without sudo and without SSH: the files clients.configure
    writes (merged, 0600, the first change keeping a backup), and the index's CA in a
    bundle of your own that each tool is pointed at (uv: SSL_CERT_FILE). A second run
    changes nothing; --dry shows what would change. Delete the kit when it is done.
    """
    with expected_failures("this machine"):
        handed = client_kit.read(Path(kit))
        here = ThisMachine(handed.settings, dry=bool(c.config.run.dry))  # never sudo
        configure_user(here, handed.password, handed.ca, all_tools)
    here.summary()
    if not here.dry:
        here.note(f"{kit} holds the password of {handed.settings.client_user}: delete it now")
