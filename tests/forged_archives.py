"""Backup archives changed as an attacker holding the index's key (or a bug of our own)
would change them: members added, replaced or dropped, the manifest made to fit again
and signed. The unit tests and the restore drill refuse each one."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import tempfile
from pathlib import Path

from ppc_tasks import archives


def rewritten(archive: Path, target: Path, change) -> Path:
    """The archive with its members passed through change(name, content) -> [(name, content)]."""
    with tarfile.open(archive) as source, tarfile.open(target, "w:gz") as out:
        for member in source:
            for name, content in change(member.name, source.extractfile(member).read()):
                info = tarfile.TarInfo(name)
                info.size = len(content)
                out.addfile(info, io.BytesIO(content))
    return target


def refit(manifest: bytes, files: dict[str, bytes], key: bytes) -> bytes:
    """A manifest that fits these member contents again (and the releases of a new
    database), signed with `key`."""
    data = json.loads(manifest)
    for name, content in files.items():
        data["files"][name] = {"sha256": hashlib.sha256(content).hexdigest(), "size": len(content)}
    if "db.sqlite" in files:
        with tempfile.NamedTemporaryFile(suffix=".sqlite") as database:
            database.write(files["db.sqlite"])
            database.flush()
            _, releases = archives.archive_rules.database_problem(database.name, set(data["files"]))
        data["releases"] = releases or data["releases"]
    data["signature"] = archives.signature(key, archives.signed_part(data))
    return json.dumps(data).encode()


def forged(archive: Path, target: Path, key: bytes, added: dict[str, bytes] | None = None,
           replaced: dict[str, bytes] | None = None) -> Path:
    """The archive with members added (before the manifest) or replaced, made consistent
    and signed again."""
    added, replaced = added or {}, replaced or {}

    def change(name, content):
        if name == archives.MANIFEST:
            fitted = {**replaced, **{member: data for member, data in added.items()
                                     if member != "db.sqlite"}}
            return [*added.items(), (name, refit(content, fitted, key))]
        return [(name, replaced.get(name, content))]

    return rewritten(archive, target, change)


def with_symlink(archive: Path, target: Path, name: str, points_to: str) -> Path:
    """The archive with a symbolic link member first: extracted naively, it would make
    the store serve `points_to`."""
    with tarfile.open(archive) as source, tarfile.open(target, "w:gz") as out:
        link = tarfile.TarInfo(name)
        link.type, link.linkname = tarfile.SYMTYPE, points_to
        out.addfile(link)
        for member in source:
            out.addfile(member, source.extractfile(member))
    return target
