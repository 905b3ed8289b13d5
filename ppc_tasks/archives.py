"""Backup archives on the operator's machine: written from the stream a host sends,
verified offline, a member at a time (constant memory, whatever the files' sizes).

An archive is a gzip'd tar: db.sqlite, packages/NAME/VERSION/FILE (and FILE.meta), and
last manifest.json: the sha256 and size of every file, the releases, the pypicloud
version, the settings' fingerprint, and a signature of all that with the index's own key
(HMAC-SHA256; backup_key in secrets.json). What it may hold is defined once, in the
server image's guard (docker/server/ppc_guard/archive.py), which the restore on the host
checks again.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import hmac
import io
import json
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from . import credentials
from .errors import TaskError
from .plan import counted
from .render import guard_module

archive_rules = guard_module("archive")
MANIFEST = archive_rules.MANIFEST
DATABASE = archive_rules.DATABASE
FORMAT = 2  # 1: unsigned, before archives were checked member by member
CHUNK = 1 << 20


@dataclass(frozen=True)
class Summary:
    """What an archive holds, once verified."""

    projects: int
    releases: int
    files: int
    bytes: int
    pypicloud: str

    def __str__(self) -> str:
        return (f"{counted(self.projects, 'project')}, {counted(self.releases, 'release')}, "
                f"{counted(self.files, 'file')}, {self.bytes / 1e6:.1f} MB "
                f"(pypicloud {self.pypicloud})")


@dataclass(frozen=True)
class Verified:
    """An archive that verified: what it holds, and what it says of who made it."""

    summary: Summary
    index: str  # the index its manifest names
    signature: str  # "" for an archive from before archives were signed
    signed: bytes  # what the signature covers
    sha256: str  # of the archive's bytes as they were verified: a restore streams these


def signature(key: bytes, signed: bytes) -> str:
    return hmac.new(key, signed, "sha256").hexdigest()


def signed_part(manifest: dict) -> bytes:
    """What an archive's signature covers: its manifest but the signature, canonically."""
    unsigned = {key: value for key, value in manifest.items() if key != "signature"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":")).encode()


def made_by(verified: Verified, key: bytes | None) -> str:
    """"index" (its signature checks with this key), "unsigned", "unknown" (no key to
    check it with) or "forged" (the key says it was changed after it was made)."""
    if not verified.signature:
        return "unsigned"
    if key is None:
        return "unknown"
    signed_here = hmac.compare_digest(signature(key, verified.signed), verified.signature)
    return "index" if signed_here else "forged"


def summary_of(manifest: dict) -> Summary:
    releases = manifest["releases"]
    return Summary(projects=len({place.split("/")[0] for place in releases.values()}),
                   releases=len(releases), files=len(manifest["files"]),
                   bytes=sum(entry["size"] for entry in manifest["files"].values()),
                   pypicloud=manifest.get("pypicloud", "?"))


def copy_hashing(source, target) -> tuple[str, int]:
    """Copy a member in chunks (constant memory); its sha256 and size."""
    digest, size = hashlib.sha256(), 0
    while chunk := source.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
        target.write(chunk)
    return digest.hexdigest(), size


def database_check(database: Path, members: set[str], where: str,
                   stray_files: bool = False) -> dict[str, str]:
    """The releases the database lists, once it fits the archive's members."""
    problem, releases = archive_rules.database_problem(str(database), members, stray_files)
    if problem:
        raise TaskError(f"{where}: {problem}")
    return releases


def repack(incoming, archive: Path, about_run: dict, key: bytes) -> Summary:
    """Write the host's tar stream as a gzip'd archive with a signed manifest, checking as
    it goes: members of the places an index has, each once, the database listing only
    releases whose files came with it."""
    files: dict[str, dict] = {}
    about = {}
    with contextlib.ExitStack() as opened:
        work = opened.enter_context(tempfile.TemporaryDirectory())
        out = opened.enter_context(tarfile.open(archive, "w:gz", format=tarfile.PAX_FORMAT))
        stream = opened.enter_context(tarfile.open(fileobj=incoming, mode="r|"))
        database = Path(work) / DATABASE
        for member in stream:
            source = stream.extractfile(member)
            if member.name == "about.json" and member.isfile():
                about = json.loads(source.read(1 << 16))
                continue
            problem = archive_rules.member_problem(member.name, member.isfile())
            if problem or member.name in files or member.name == MANIFEST:
                raise TaskError(f"the host sent {problem or member.name + ' twice'}: no backup made")
            if member.name == DATABASE:
                with database.open("wb") as copy:
                    copy_hashing(source, copy)
                source = database.open("rb")
            with HashingReader(source) as hashing:
                out.addfile(member, hashing)
            files[member.name] = {"sha256": hashing.sha256.hexdigest(), "size": hashing.size}
        if DATABASE not in files:
            raise TaskError("the host sent no database: is the data volume an index?")
        releases = database_check(database, set(files), "the host's index")
        manifest = {"format": FORMAT, **about_run, "pypicloud": about.get("pypicloud", ""),
                    "files": files, "releases": releases}
        manifest["signature"] = signature(key, signed_part(manifest))
        data = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mode = len(data), 0o600
        out.addfile(info, io.BytesIO(data))
    return summary_of(manifest)


class HashingReader:
    """Reads a stream (a member, an archive), hashing what passes; closes it at the end."""

    def __init__(self, source):
        self.source, self.sha256, self.size = source, hashlib.sha256(), 0

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self.sha256.update(data)
        self.size += len(data)
        return data

    def close(self) -> None:
        self.source.close()

    def __enter__(self):
        return self

    def __exit__(self, *_) -> None:
        self.close()


def verify_archive(archive: Path) -> Verified:
    """Check an archive offline, a member at a time: it reads to the end; it holds
    regular files at the places an index has, each once, nothing else; each matches the
    manifest's sha256 and the manifest lists no file it lacks; the database holds only
    an index's tables, its rows have the shapes uploads have, and lists no release
    whose file is missing. One line says what is wrong."""
    if not archive.is_file():
        raise TaskError(f"{archive}: no such file")
    seen: dict[str, str] = {}
    manifest = None
    with tempfile.TemporaryDirectory() as work:
        database = Path(work) / DATABASE
        try:
            # One pass, in order, over the bytes as read: their sha256 is what a restore
            # must stream.
            with contextlib.ExitStack() as opened:
                whole = opened.enter_context(HashingReader(archive.open("rb")))
                unpacked = opened.enter_context(gzip.GzipFile(fileobj=whole, mode="rb"))
                stream = opened.enter_context(tarfile.open(fileobj=unpacked, mode="r|"))
                for member in stream:
                    problem = archive_rules.member_problem(member.name, member.isfile())
                    if problem:
                        raise TaskError(f"{archive} holds {problem}: it is no backup of an "
                                        f"index; use another backup")
                    if member.name in seen or (member.name == MANIFEST and manifest is not None):
                        raise TaskError(f"{archive} holds {member.name} twice: it is no backup "
                                        f"of an index; use another backup")
                    source = stream.extractfile(member)
                    if member.name == MANIFEST:
                        manifest = json.loads(source.read(256 << 20))
                        continue
                    with (database.open("wb") if member.name == DATABASE else _Discard()) as copy:
                        seen[member.name] = copy_hashing(source, copy)[0]
                while unpacked.read(CHUNK):  # to the end: gzip checks its CRC there
                    pass
                while whole.read(CHUNK):
                    pass
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError,
                ValueError) as error:
            raise TaskError(f"{archive} is damaged or truncated ({error or type(error).__name__}): "
                            f"use another backup") from None
        if not isinstance(manifest, dict) or manifest.get("format") not in (1, FORMAT):
            raise TaskError(f"{archive} is damaged, or no ppc-tasks backup (it holds no manifest): "
                            f"use another backup")
        try:
            wanted = {path: entry["sha256"] for path, entry in manifest["files"].items()}
            summary = summary_of(manifest)
        except (KeyError, TypeError, AttributeError):
            raise TaskError(f"{archive} has a damaged manifest: use another backup") from None
        if seen != wanted:
            wrong = sorted(path for path in set(seen) | set(wanted) if seen.get(path) != wanted.get(path))
            raise TaskError(f"{archive} does not match its manifest ({', '.join(wrong[:3])}): "
                            f"it is damaged; use another backup")
        if DATABASE not in seen:
            raise TaskError(f"{archive} holds no database: use another backup")
        releases = database_check(database, set(seen), str(archive),
                                  stray_files=manifest["format"] == 1)
        if releases != manifest["releases"]:
            raise TaskError(f"{archive}: its database and its manifest disagree; use another backup")
    return Verified(summary, str(manifest.get("index", "")), str(manifest.get("signature", "")),
                    signed_part(manifest), whole.sha256.hexdigest())


class _Discard:
    def write(self, data: bytes) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *_) -> None:
        pass


def index_key(state_dir: Path, index: str) -> bytes | None:
    """The backup key of an index whose folder is on this machine."""
    path = state_dir / index / "secrets.json"
    if not index or not path.is_file():
        return None
    key = credentials.load(path).backup_key
    return bytes.fromhex(key) if key else None
