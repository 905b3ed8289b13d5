"""`packages`: upload distributions to the index with twine (manual step 8)."""

from __future__ import annotations

import glob
import os
import shlex
import subprocess
import sys

from fabric import task

from . import certs
from .apply import report_line
from .clients import client_password
from .errors import TaskError
from .settings import Settings
from .ssh import last_lines
from .wiring import OPTION_HELP, expected_failures, settings_of


def twine_argv(settings: Settings, files: list[str]) -> list[str]:
    """The twine command line; the password goes through the environment, never here."""
    ca = certs.ca_path(settings)
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


@task(auto_shortflags=False, help={name: OPTION_HELP[name] for name in ("files", "index")})
def upload(c, files, index=""):
    """Upload distributions to the index with twine: fab packages.upload 'dist/*'.

    Runs on this machine (no -H), with the URL, the account (client_user) and the CA
    of the index deployed from here (--index NAME picks one when there are several).
    Quote the pattern, so that it reaches the task as one argument. A version already
    on the index is refused with a clear error. With fab --dry, shows the twine command.
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
                           TWINE_PASSWORD=client_password(settings))
        result = subprocess.run(twine_argv(settings, paths), capture_output=True, text=True,
                                env=environment)
        if result.returncode != 0:
            raise TaskError(upload_error(result.stdout + result.stderr, paths))
        for path in paths:
            print(report_line(settings.index_name, "packages.upload", True, path), flush=True)
