"""Which directory's fabric.yaml `ppc` may read: only one the operator trusted, as it is.

A repository someone cloned can carry a fabric.yaml, and Fabric takes connection
settings from such a file (a `gateway` command it runs, an `ssh_config_path`, `runners`).
So `ppc` reads the fabric.yaml (.yml, .json) of the directory it runs in only after
`ppc trust` recorded that exact file's SHA-256 (as direnv's `allow` does); a changed
file is not trusted until trusted again. Even a trusted file gives only `ppc:` settings:
what connects or runs commands comes from the operator's own files (~/.fabric.yaml,
/etc/fabric.yaml, -f FILE), FABRIC_* variables and flags.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from invoke.util import yaml

from . import state
from .errors import TaskError

PROJECT_FILES = ("fabric.yaml", "fabric.yml", "fabric.json")  # the order Invoke looks in
# Beside the default state_dir, and never moved by a setting: the file that is being
# judged cannot say where its judgement is kept.
TRUSTED_FILES = Path("~/.local/state/ppc-tasks/trusted-files.json")


class Untrusted(TaskError):
    """A directory's file that ppc will not read: the message says why and what to do."""


def project_file(directory: Path) -> Path | None:
    """The fabric.yaml (or .yml, .json) Fabric would read in `directory`, if any."""
    for name in PROJECT_FILES:
        if (directory / name).is_file():
            return (directory / name).resolve()
    return None


def digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def trusted_digests() -> dict[str, str]:
    """Trusted files by absolute path: the SHA-256 each was trusted with."""
    store = TRUSTED_FILES.expanduser()
    return json.loads(store.read_text()) if store.exists() else {}


def ppc_settings(path: Path, content: bytes) -> dict:
    """The file's `ppc:` settings; any other top-level key refuses the whole file."""
    try:
        data = yaml.safe_load(content) or {}
    except yaml.YAMLError as error:
        raise Untrusted(f"{path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise Untrusted(f"{path} holds no settings: it must be a mapping with a ppc: section")
    foreign = sorted(str(key) for key in data if key != "ppc")
    if foreign:
        raise Untrusted(
            f"{path} sets {', '.join(foreign)}: a directory's file may hold only ppc: "
            "settings; put connection settings in ~/.fabric.yaml or give them as flags")
    return {"ppc": data["ppc"]} if data.get("ppc") else {}


def trusted_settings(path: Path) -> dict:
    """The `ppc:` settings of a directory's file the operator trusted as it is now."""
    content = path.read_bytes()  # hashed and parsed from the same bytes
    if trusted_digests().get(str(path)) != digest(content):
        raise Untrusted(f"{path} is not trusted (new, or changed since it was trusted): "
                        "read it, then run `ppc trust` in its directory")
    return ppc_settings(path, content)


def record(path: Path, content: bytes) -> None:
    """Trust `path` as `content`: ppc reads it while its bytes are these."""
    trusted = {**trusted_digests(), str(path.resolve()): digest(content)}
    state.write(TRUSTED_FILES.expanduser(), json.dumps(trusted, indent=2, sort_keys=True).encode())
