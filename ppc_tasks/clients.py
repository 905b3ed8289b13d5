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
import urllib.parse

from . import certs, credentials
from .errors import TaskError
from .host import Host, many_hosts_task
from .render import render, script_argv
from .settings import Settings

REPOSITORY = "internal"  # twine upload -r internal
PYPIRC = ".pypirc"
# pip's per-user file on Linux; the seed's ~/.pip/pip.conf is the legacy location.
PIP_CONF = ".config/pip/pip.conf"


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


def merge_pip_conf(existing: str, ours: str) -> str:
    """Set our keys in [global]; an extra-index-url keeps the other indexes it lists."""
    parser, our = _parse(existing), _parse(ours)
    if not parser.has_section("global"):
        parser.add_section("global")
    for key, value in our.items("global"):
        if key == "extra-index-url":
            ours_host = urllib.parse.urlsplit(value).hostname
            others = [url for url in parser.get("global", key, fallback="").split()
                      if urllib.parse.urlsplit(url).hostname != ours_host]
            value = "\n".join(others + [value])
        parser.set("global", key, value)
    return _write(parser)


def user_bundle_path(home: str, settings: Settings) -> str:
    return f"{home}/.config/ppc-tasks/{settings.index_name}-ca-bundle.pem"


def combined_bundle(system_bundle: str, ca_certificate: bytes) -> bytes:
    """The system's CAs (if any could be read) followed by the index's CA."""
    parts = [system_bundle.rstrip("\n"), ca_certificate.decode().rstrip("\n")]
    return ("\n".join(part for part in parts if part) + "\n").encode()


# -- doing ---------------------------------------------------------------------------------
def client_password(settings: Settings) -> str:
    path = settings.secrets_path
    password = credentials.load(path).passwords.get(settings.client_user)
    if not password:
        raise TaskError(f"no password for {settings.client_user!r} in {path}: "
                        f"deploy the server first (with the same ppc settings)")
    return password


def home_of(host: Host) -> str:
    return host.run(["sh", "-c", 'printf %s "$HOME"']).stdout.strip()


def ca_bundle(host: Host, home: str) -> str | None:
    """The CA bundle pip and twine should use, made to include the index's CA."""
    ca_certificate = certs.ca_to_trust(host.settings)
    if ca_certificate is None:
        return None
    if host.can_sudo:
        return certs.trust_ca(host, ca_certificate).bundle
    # No sudo: the system's CAs plus ours, in a bundle of the user's own.
    store = host.platform.trust_store
    system = (host.read(store.bundle) or "") if store else ""
    path = user_bundle_path(home, host.settings)
    changed = host.put(path, combined_bundle(system, ca_certificate), mode="644", owner=None)
    host.report("clients.ca-bundle", changed, f"{path} (no sudo: a user-local CA bundle)")
    return path


def put_merged(host: Host, step: str, path: str, merge, ours: str) -> None:
    existing = host.read(path)
    merged = merge(existing or "", ours)
    if existing is not None and merged != existing:
        host.run(script_argv("backup-once", path))
    changed = host.put(path, merged.encode(), mode="600", owner=None)
    host.report(step, changed, path)


def configure_client(host: Host) -> None:
    settings = host.settings
    password = client_password(settings)
    home = home_of(host)
    bundle = ca_bundle(host, home)
    put_merged(host, "clients.pypirc", f"{home}/{PYPIRC}", merge_pypirc,
               render_pypirc(settings, password, bundle))
    put_merged(host, "clients.pip", f"{home}/{PIP_CONF}", merge_pip_conf,
               render_pip_conf(settings, password, bundle))


def unconfigure_client(host: Host) -> None:
    home = home_of(host)
    for step, path in (("clients.pypirc", f"{home}/{PYPIRC}"), ("clients.pip", f"{home}/{PIP_CONF}"),
                       ("clients.ca-bundle", user_bundle_path(home, host.settings))):
        done = host.run(script_argv("restore-backup", path)).stdout.strip()
        host.report(step, bool(done), f"{done} {path}" if done else f"{path} was not configured")
    if host.can_sudo:
        certs.untrust_ca(host)


# -- tasks ---------------------------------------------------------------------------------
@many_hosts_task
def configure(host, index=""):
    """Point developer machines at the index: pip and twine over HTTPS, no extra flags.

    Run on many hosts at once: fab -H dev1,dev2,dev3 clients.configure. For the
    connecting user: ~/.pypirc gains the `internal` repository (twine upload -r
    internal) and ~/.config/pip/pip.conf the index, both 0600, merged into existing
    files (the first change keeps a .ppc-tasks-backup). With sudo the CA goes into the
    system trust store; without, into a CA bundle of the user's own. The index is the
    one deployed from this machine; --index NAME picks one when there are several.
    """
    configure_client(host)


@many_hosts_task
def unconfigure(host, index=""):
    """Put developer machines back: restore ~/.pypirc and pip.conf, drop the CA.

    --index NAME picks the index when several were deployed from this machine.
    """
    unconfigure_client(host)
