"""What this machine holds for an index, read once per run: the local facts that planners
decide from beside a host's Facts. Only steps change them (LocalFile, LocalMove), so a
preview (--dry) creates nothing here either.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from . import credentials
from .credentials import Credentials
from .errors import TaskError
from .settings import Settings

RECORD = "index.json"  # the index's names, in its folder


@dataclass(frozen=True)
class LocalFacts:
    folder: Path  # <state_dir>/<index>
    credentials: Credentials  # secrets.json; empty when there is none
    ca: tuple[bytes, bytes] | None  # ca.crt and ca.key, when both are here
    server: tuple[bytes, bytes] | None  # server.crt and server.key, when both are here
    record: dict | None  # index.json

    @property
    def ca_paths(self) -> tuple[Path, Path]:
        return self.folder / "ca.crt", self.folder / "ca.key"

    @property
    def server_paths(self) -> tuple[Path, Path]:
        return self.folder / "server.crt", self.folder / "server.key"

    @property
    def record_path(self) -> Path:
        return self.folder / RECORD


def _pair(first: Path, second: Path) -> tuple[bytes, bytes] | None:
    if first.exists() and second.exists():
        return first.read_bytes(), second.read_bytes()
    return None


def read(settings: Settings) -> LocalFacts:
    """The index's folder here, as it is now."""
    folder = settings.server_state_dir
    record_path = folder / RECORD
    try:
        record = json.loads(record_path.read_text()) if record_path.exists() else None
    except ValueError:
        raise TaskError(f"{record_path} is damaged: restore it, or delete it and deploy again "
                        f"with the index's server names") from None
    return LocalFacts(folder=folder, credentials=credentials.load(settings.secrets_path),
                      ca=_pair(folder / "ca.crt", folder / "ca.key"),
                      server=_pair(folder / "server.crt", folder / "server.key"), record=record)
