"""`packages`: upload distributions to the index with twine (manual step 8); yank a
release, or take the yank back (PEP 592)."""

from __future__ import annotations

import glob
import os
import shlex
import subprocess
import sys

from fabric import task
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from . import credentials, tls_paths
from .apply import Host, report_line
from .errors import TaskError
from .facts import CONTAINER, DOCKER, PLATFORM, RELEASE, Facts
from .plan import Change, Command, Plan, Step, Unchanged
from .plans import server
from .settings import Settings, SettingsError
from .ssh import last_lines
from .wiring import OPTION_HELP, expected_failures, host_task, settings_of

MAX_REASON = 200  # the guard's limit too: one line, as pip prints it


def twine_argv(settings: Settings, files: list[str]) -> list[str]:
    """The twine command line; the password goes through the environment, never here."""
    ca = tls_paths.ca_path(settings)
    return [sys.executable, "-m", "twine", "upload", "--non-interactive", "--disable-progress-bar",
            "--repository-url", settings.index_url,
            *(["--cert", str(ca)] if ca else []), *files]


def upload_error(output: str, files: list[str]) -> str:
    """One line saying what went wrong, from twine's output."""
    if "409" in output or "already exists" in output.lower():
        uploaded = [line.split()[-1] for line in output.splitlines() if line.startswith("Uploading ")]
        which = uploaded[-1] if uploaded else ", ".join(files)
        return (f"{which} is already on the index, which never overwrites a release: "
                f"build a new version")
    return f"twine upload failed: {last_lines(output, 2)}"


@task(auto_shortflags=False, help={"files": "the distributions, as a quoted pattern: 'dist/*'",
                                   "index": OPTION_HELP["index"]})
def upload(c, files, index=""):
    """Upload distributions to the index with twine, from this machine (no -H).

    Example: ppc packages.upload 'dist/*'

    Runs on this machine (no -H), with the URL, the account (client_user) and the CA
    of the index deployed from here (--index NAME picks one when there are several).
    Quote the pattern, so that it reaches the task as one argument. A version already
    on the index is refused with a clear error. With --dry, shows the twine command.
    """
    with expected_failures():
        settings = settings_of(c, for_server=False, index_option=index)
        paths = sorted(path for path in glob.glob(files) if os.path.isfile(path))
        if not paths:
            raise TaskError(f"no files match {files!r}: build distributions first "
                            f"(python -m build)")
        if c.config.run.dry:
            for path in paths:
                print(report_line(settings.index_name, "packages.upload", True,
                                  f"upload {path} to {settings.index_url} as "
                                  f"{settings.client_user}", dry=True), flush=True)
            print(f"        $ {shlex.join(twine_argv(settings, paths))}  "
                  f"(TWINE_PASSWORD from {settings.secrets_path})", flush=True)
            return
        # requests lets these override twine's --cert (psf/requests#3829): drop them.
        environment = {key: value for key, value in os.environ.items()
                       if key not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
        environment.update(TWINE_USERNAME=settings.client_user,
                           TWINE_PASSWORD=credentials.client_password(settings))
        result = subprocess.run(twine_argv(settings, paths), capture_output=True, text=True,
                                env=environment)
        if result.returncode != 0:
            raise TaskError(upload_error(result.stdout + result.stderr, paths))
        for path in paths:
            print(report_line(settings.index_name, "packages.upload", True, path), flush=True)


# -- yanks ---------------------------------------------------------------------------------
RELEASE_HELP = "the release, as NAME==VERSION"


def parse_release(release: str) -> tuple[str, str]:
    """(canonical name, version) from NAME==VERSION."""
    name, separator, version = release.partition("==")
    try:
        if not separator or not name.strip() or "/" in name + version:
            raise InvalidVersion
        Version(version.strip())
    except InvalidVersion:
        raise SettingsError(f"name the release as NAME==VERSION (e.g. acme-tools==1.2.0), "
                            f"not {release!r}") from None
    return canonicalize_name(name.strip()), version.strip()


def check_reason(reason: str) -> str:
    if len(reason) > MAX_REASON or not reason.isprintable():
        raise SettingsError(f"--reason: one line of at most {MAX_REASON} characters, which "
                            f"pip and uv show to whoever installs the release")
    return reason


def release_asked(settings: Settings, name: str, version: str) -> str:
    """The RELEASE fact's value for a release: CONTAINER/NAME/VERSION."""
    return f"{settings.server_container}/{name}/{version}"


def yank_queries(settings: Settings, name: str, version: str) -> list[str]:
    """What plan_yank reads: the server, and the release as the index holds it."""
    return [CONTAINER.query(settings.server_container),
            RELEASE.query(release_asked(settings, name, version))]


def plan_yank(settings: Settings, facts: Facts, name: str, version: str, reason: str | None,
              login: bytes) -> Step:
    """packages.yank (reason: the yank's; None takes a yank back): through the index's
    API as an admin, so that the server checks the account and logs the change."""
    server.require_running(settings, facts)
    release = facts.releases.get(release_asked(settings, name, version))
    if release is None:
        raise TaskError("the index's server cannot say what it holds (its image is from "
                        "before yanks): deploy first")
    if not release.held:
        raise TaskError(f"the index holds no release {version} of {name}")
    shown = f"{name} {release.version}"
    why = f" ({reason})" if reason else ""
    if release.yanked == reason:
        return Unchanged("packages.yank",
                         f"{shown} is {'not yanked' if reason is None else 'yanked'}{why}")
    command = "unyank" if reason is None else "yank"
    return Change(
        "packages.yank", done=f"{command}ed {shown}{why}", would=f"{command} {shown}{why}",
        commands=[Command(tuple(server.guard_argv(settings, command, name, release.version)),
                          stdin=login + (reason or "").encode() + b"\n",
                          stdin_shown="an admin's login and the reason",
                          failure=f"the index did not {command} {shown}")])


def change_yank(host: Host, release: str, reason: str | None) -> None:
    settings = host.settings
    name, version = parse_release(release)
    facts = host.read_facts([PLATFORM.query(), DOCKER.query(),
                             *yank_queries(settings, name, version)])
    host.require_docker(facts)
    creds = credentials.admin_credentials(settings, "yank")
    plan = Plan()
    plan.add(plan_yank(settings, facts, name, version, reason, credentials.login_line(settings, creds)))
    host.carry_out(plan)


@host_task(option_help={"release": RELEASE_HELP,
                        "reason": "why the release is yanked (one line; pip and uv show it)"})
def yank(host, release, reason=""):
    """Yank a release: pip and uv skip it unless it is pinned exactly.

    Example: ppc -H pypi-internal packages.yank acme-tools==1.2.0 --reason "broken build"

    pip and uv then skip every file of it, unless a requirement pins that very version
    (==1.2.0), and show the reason to whoever installs it that way. Nothing is deleted:
    packages.unyank takes it back. Done through the index's API as an admin (the
    passwords this machine keeps), and logged by the server and in the host's audit log.
    """
    change_yank(host, release, check_reason(reason))


@host_task(option_help={"release": RELEASE_HELP})
def unyank(host, release):
    """Take a yank back: the release installs again as any other.

    Example: ppc -H pypi-internal packages.unyank acme-tools==1.2.0
    """
    change_yank(host, release, None)
