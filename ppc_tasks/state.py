"""Files on the operator's machine (secrets, the CA): written atomically, private by default."""

from __future__ import annotations

import os
from pathlib import Path


def write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` atomically; the file has its mode from the start, in a 0700 folder."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(data)
    os.replace(temporary, path)


def shown(path: str | Path) -> str:
    """A path on this machine as its operator writes it: ~ for the home folder."""
    home, text = os.path.expanduser("~"), str(path)
    return "~" + text[len(home):] if text.startswith(home + os.sep) else text
