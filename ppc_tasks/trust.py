"""`trust`: let ppc read the fabric.yaml of the directory it runs in (see project.py)."""

from __future__ import annotations

from pathlib import Path

from fabric import task

from .errors import TaskError
from .project import PROJECT_FILES, digest, ppc_settings, project_file, record
from .wiring import expected_failures


@task(help={"file": "the file to trust (default: the fabric.yaml of this directory)"})
def trust(c, file=""):
    """Let ppc read this directory's fabric.yaml, as it is now (read it first).

    ppc reads the fabric.yaml (.yml, .json) of the directory it runs in only once it is
    trusted, and only its ppc: settings; a file with anything else (gateway,
    ssh_config_path, runners, ...) is refused. Changing the file untrusts it.

    Example: ppc trust
    """
    with expected_failures():
        path = Path(file).resolve() if file else project_file(Path.cwd())
        if path is None:
            raise TaskError(f"no {', '.join(PROJECT_FILES)} here: nothing to trust")
        content = path.read_bytes()
        settings = ppc_settings(path, content).get("ppc", {})
        record(path, content)
    print(f"trusted {path} (sha256 {digest(content)[:16]}), which sets: "
          f"{', '.join(sorted(settings)) or 'nothing'}; a change untrusts it")
