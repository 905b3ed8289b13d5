"""`backup`: the index in one verified archive on the operator's machine, and back.

`fab -H HOST backup` streams the index over SSH (nothing is staged on the host): a
consistent snapshot of the database (sqlite's online backup API) and every package
file with its metadata, taken by a throwaway container of the server image while the
server keeps serving. The archive (`<state_dir>/<index>/backups/<time>.tar.gz`, 0600)
carries a manifest: the sha256 of every file, the releases the database lists, the
pypicloud version and the settings' fingerprint. `fab backup.verify FILE` checks an
archive offline; `fab -H HOST restore FILE` puts one into a host's index. Secrets are
never in an archive: they stay in the index's folder on this machine.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import io
import json
import os
import sqlite3
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from fabric import task

from . import state
from .errors import TaskError
from .facts import Facts
from .host import OPTION_HELP, expected_failures, host_task, settings_fingerprint
from .plan import Change, Command, Plan, counted
from .render import FILES_DIR, script
from .server import raise_unless_healthy
from .settings import DATA_DIR, PYPICLOUD_UID, Settings

MANIFEST = "manifest.json"
FORMAT = 1


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


# -- deciding ------------------------------------------------------------------------------
def archive_name(now: datetime.datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}.tar.gz"


def backups_dir(settings: Settings) -> Path:
    return settings.server_state_dir / "backups"


def require_own_store(settings: Settings) -> None:
    """An archive holds a file store and its sqlite database. An index that keeps its
    packages in S3, or its cache in a shared database, has them where those services'
    own backups (bucket versioning, pg_dump, Redis snapshots) take them."""
    shared = [f"its packages in S3 (bucket {settings.s3_bucket})"] if settings.storage == "s3" else []
    if settings.cache is not None:
        shared.append(f"its cache in {settings.cache.kind} ({settings.cache})")
    if shared:
        raise TaskError(f"backup and restore cover an index's own file store and sqlite "
                        f"database; this one keeps {' and '.join(shared)}: back those up "
                        f"with their own tools")


def stream_argv(settings: Settings) -> list[str]:
    """A throwaway container of the server image that writes the index as a tar."""
    return ["docker", "run", "--rm", "-i", "--user", str(PYPICLOUD_UID),
            "--volume", f"{settings.data_volume}:{DATA_DIR}",
            "--entrypoint", "/opt/pypicloud/bin/python", settings.server_image, "-"]


def restore_argv(settings: Settings) -> list[str]:
    """A throwaway container that puts an archive (on stdin) into the data volume."""
    return ["docker", "run", "--rm", "-i", "--user", "0",
            "--volume", f"{settings.data_volume}:{DATA_DIR}",
            "--entrypoint", "sh", settings.server_image, "-c", script("restore-volume")]


def releases_in(database: bytes) -> dict[str, str]:
    """{file name: "project/version"} of every release a database snapshot lists."""
    with tempfile.NamedTemporaryFile(suffix=".sqlite") as copy:
        copy.write(database)
        copy.flush()
        connection = sqlite3.connect(f"file:{copy.name}?mode=ro", uri=True)
        try:
            rows = connection.execute("SELECT filename, name, version FROM packages").fetchall()
        except sqlite3.DatabaseError as error:
            raise TaskError(f"the archive's database cannot be read ({error})") from None
        finally:
            connection.close()
    return {filename: f"{name}/{version}" for filename, name, version in rows}


def expected_files(releases: dict[str, str]) -> set[str]:
    """The archive paths of the files the database lists."""
    return {f"packages/{place}/{filename}" for filename, place in releases.items()}


def prune(directory: Path, keep: int) -> list[Path]:
    """The oldest archives beyond the `keep` newest (names sort by time)."""
    archives = sorted(directory.glob("*.tar.gz"))
    return archives[:-keep] if keep > 0 and len(archives) > keep else []


# -- the operator's machine ----------------------------------------------------------------
class _Hashing:
    """Reads a member of the incoming stream, hashing what passes."""

    def __init__(self, source):
        self.source, self.sha256, self.size = source, hashlib.sha256(), 0

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self.sha256.update(data)
        self.size += len(data)
        return data


def repack(incoming, archive: Path, about_run: dict) -> Summary:
    """Write the incoming tar stream as a gzip'd archive with a manifest, checking as it
    goes that every release the database lists has its file."""
    files: dict[str, dict] = {}
    database = b""
    about = {}
    with tarfile.open(archive, "w:gz", format=tarfile.PAX_FORMAT) as out, \
            tarfile.open(fileobj=incoming, mode="r|") as stream:
        for member in stream:
            if not member.isfile():
                continue
            source = _Hashing(stream.extractfile(member))
            if member.name == "about.json":
                about = json.loads(source.read())
                continue
            if member.name == "db.sqlite":
                database = source.read()
                source = _Hashing(io.BytesIO(database))
            out.addfile(member, source)
            files[member.name] = {"sha256": source.sha256.hexdigest(), "size": source.size}
        if not database:
            raise TaskError("the host sent no database: is the data volume an index?")
        releases = releases_in(database)
        missing = sorted(expected_files(releases) - set(files))
        if missing:
            raise TaskError(f"the host's store lacks files its database lists: {', '.join(missing[:3])}")
        manifest = {"format": FORMAT, **about_run, "pypicloud": about.get("pypicloud", ""),
                    "files": files, "releases": releases}
        data = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mode = len(data), 0o600
        out.addfile(info, io.BytesIO(data))
    return summary_of(manifest)


def summary_of(manifest: dict) -> Summary:
    releases = manifest["releases"]
    return Summary(projects=len({place.split("/")[0] for place in releases.values()}),
                   releases=len(releases), files=len(manifest["files"]),
                   bytes=sum(entry["size"] for entry in manifest["files"].values()),
                   pypicloud=manifest.get("pypicloud", "?"))


def verify_archive(archive: Path) -> Summary:
    """Check an archive offline: it reads to the end, every file matches the manifest's
    sha256 and the manifest lists no file the archive lacks, and the database opens and
    lists releases whose files are all there. One line says what is wrong."""
    if not archive.is_file():
        raise TaskError(f"{archive}: no such file")
    seen: dict[str, str] = {}
    manifest = None
    database = b""
    try:
        with tarfile.open(archive, "r:gz") as stream:
            for member in stream:
                if not member.isfile():
                    continue
                data = stream.extractfile(member).read()
                if member.name == MANIFEST:
                    manifest = json.loads(data)
                    continue
                if member.name == "db.sqlite":
                    database = data
                seen[member.name] = hashlib.sha256(data).hexdigest()
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError, ValueError) as error:
        raise TaskError(f"{archive} is damaged or truncated ({error or type(error).__name__}): "
                        f"use another backup") from None
    if manifest is None or manifest.get("format") != FORMAT:
        raise TaskError(f"{archive} is damaged, or no ppc-tasks backup (it holds no manifest): "
                        f"use another backup")
    wanted = {path: entry["sha256"] for path, entry in manifest["files"].items()}
    if seen != wanted:
        wrong = sorted(path for path in set(seen) | set(wanted) if seen.get(path) != wanted.get(path))
        raise TaskError(f"{archive} does not match its manifest ({', '.join(wrong[:3])}): "
                        f"it is damaged; use another backup")
    releases = releases_in(database)
    if releases != manifest["releases"] or not expected_files(releases) <= set(seen):
        raise TaskError(f"{archive}: its database and its files disagree; use another backup")
    return summary_of(manifest)


# -- tasks ---------------------------------------------------------------------------------
@host_task(mutating=False)
def create(host, keep=0):
    """Back the index up to this machine: <state_dir>/<index>/backups/<UTC time>.tar.gz.

    A consistent snapshot of the database and every package file, streamed over SSH
    while the server keeps serving, checked as it arrives (every release the database
    lists has its file) and verified once written. Mode 0600; secrets are not in it.
    --keep=N deletes all but the N newest archives.
    """
    settings = host.settings
    require_own_store(settings)
    facts = host.gather(["docker", f"volume={settings.data_volume}",
                         f"image={settings.server_image}"])
    host.require_docker(facts)
    if facts.volumes[settings.data_volume] != "data":
        raise TaskError(f"there is no index on {host.name} to back up "
                        f"(the volume {settings.data_volume} is {facts.volumes[settings.data_volume]})")
    if facts.images[settings.server_image] is None:
        raise TaskError(f"image {settings.server_image} is missing: run image.build first")
    now = datetime.datetime.now(datetime.timezone.utc)
    directory = backups_dir(settings)
    archive = directory / archive_name(now)
    partial = archive.with_name(archive.name + ".partial")
    state.write(partial, b"")  # 0600 in a 0700 folder, before a byte of the index is in it
    try:
        with host.streaming(stream_argv(settings), root=True,
                            stdin=(FILES_DIR / "backup-stream.py").read_bytes()) as incoming:
            repack(incoming, partial, {"created": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                       "index": settings.index_name, "host": host.name,
                                       "settings": settings_fingerprint(settings)})
        summary = verify_archive(partial)
        os.replace(partial, archive)
    finally:
        partial.unlink(missing_ok=True)
    host.report("backup.archive", True, f"{archive}: {summary}")
    for old in prune(directory, int(keep)):
        old.unlink()
        host.report("backup.prune", True, f"deleted {old.name} (--keep={keep})")


@task(auto_shortflags=False, help={"file": OPTION_HELP["file"]})
def verify(c, file):
    """Check a backup archive offline: fab backup.verify FILE (no -H).

    Every file against the manifest's sha256, nothing missing, the database readable
    and listing only releases whose files are there.
    """
    with expected_failures():
        path = Path(file).expanduser()
        print(f"verified {path}: {verify_archive(path)}", flush=True)


@host_task
def restore(host, file, confirm=""):
    """Put a backup archive into the host's index: fab -H HOST restore FILE.

    The archive is verified first; a damaged one is refused and nothing changes. A
    store that holds packages is replaced only with --confirm=<index name>. The server
    is stopped while the data volume is replaced, then started and checked; the
    index's accounts and keys stay as this machine has them (they are not in archives).
    """
    settings = host.settings
    require_own_store(settings)
    archive = Path(file).expanduser()
    summary = verify_archive(archive)  # before anything else: a damaged one touches nothing
    name = settings.server_container
    facts = host.read_facts(["docker", f"volume={settings.data_volume}",
                             f"volume-usage={settings.data_volume}", f"container={name}",
                             f"image={settings.server_image}"])
    host.require_docker(facts)
    host.carry_out(plan_restore(settings, facts, archive, summary, confirm, host.name))


def plan_restore(settings: Settings, facts: Facts, archive: Path, summary: Summary,
                 confirm: str, host_name: str) -> Plan:
    name = settings.server_container
    if facts.containers[name] is None or facts.images[settings.server_image] is None:
        raise TaskError(f"{host_name} has no index to restore into: deploy it first")
    usage = facts.volume_usage.get(settings.data_volume)
    if usage is not None and usage.files and confirm != settings.index_name:
        raise TaskError(f"the index on {host_name} holds {counted(usage.projects, 'project')}: a restore "
                        f"replaces all it holds; confirm with --confirm={settings.index_name}")
    restore_command = Command(tuple(restore_argv(settings)), stdin_shown=str(archive))

    def put_archive(host) -> None:
        with archive.open("rb") as stream:  # streamed: an index may be bigger than memory
            host.run(restore_command.argv, root=True, stdin=stream)

    plan = Plan()
    plan.add(Change("restore.data", done=f"restored {archive.name}: {summary}",
                    would=f"replace the data volume {settings.data_volume} with {archive}",
                    commands=[Command.of("docker", "stop", name)]
                    if facts.containers[name].running else [],
                    run=put_archive, preview=[restore_command]))
    plan.add(Change("restore.server", done=f"started {name}, answering", would=f"start {name}",
                    commands=[Command.of("docker", "start", name)],
                    run=lambda host: raise_unless_healthy(host, name, "after the restore")))
    return plan
