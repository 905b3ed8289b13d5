"""Host scripts (files/sh/) run here, on local files, as the host layer runs them there."""

from __future__ import annotations

import subprocess

from ppc_tasks.render import script_argv


def run_script(name: str, *args: str, stdin: bytes = b"",
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """A files/sh script run here, as the host layer runs it there."""
    return subprocess.run(script_argv(name, *args), input=stdin, capture_output=True, env=env)
