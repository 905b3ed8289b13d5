"""Files on the operator's machine (secrets, the CA, a client kit, a project's settings):
written atomically, private by default."""

from __future__ import annotations

import os
from pathlib import Path


def write(path: Path, data: bytes, mode: int = 0o600, *, private_folder: bool = True,
          replace: bool = True) -> None:
    """Write `path` whole or not at all (a killed run leaves no half file), with its mode
    from the start. private_folder: in a 0700 folder, made when missing (else the folder
    is left as it is). Without replace, never over a file that exists, also one made
    meanwhile: FileExistsError."""
    if private_folder:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(data)
    if replace:
        os.replace(temporary, path)
        return
    try:
        os.link(temporary, path)  # fails when path exists
    finally:
        temporary.unlink()


def shown(path: str | Path) -> str:
    """A path on this machine as its operator writes it: ~ for the home folder."""
    home, text = os.path.expanduser("~"), str(path)
    return "~" + text[len(home):] if text.startswith(home + os.sep) else text
