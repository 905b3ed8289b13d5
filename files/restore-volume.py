"""restore-volume.py ACTION [DATA] (python -c, as root in a throwaway container of the
server image, the data volume at DATA, /var/lib/pypicloud unless given): a restore that
never leaves the index without a store it can serve. ACTION is one of:

  stage   read a backup archive (tar.gz) on stdin into .restore/new: each member checked
          as it comes (ppc_guard.archive: regular files at the places an index has,
          each once), written without following links and hashed; then every hash
          against the manifest, and the database against the files. The archive's file
          records (size, core metadata) are dropped: derived data is read again from
          the files themselves (server.records), never taken on trust. The index's API
          tokens and used OIDC tokens are carried over as they are now (backups carry
          none): a restore neither loses a token nor revives one revoked since, nor lets
          an OIDC token be used twice. Prints "staged N files". On any failure (a bad member, a full disk) what it wrote is removed
          and the store was never touched.
  swap    move the store (db.sqlite, packages) into .restore/old, the staged one in its
          place. The server is stopped meanwhile (files/sh/restore-swap.sh).
  back    the store from .restore/old back in its place; the staged one is dropped.
  finish  remove .restore (the old store, once the server answers from the new one).

A restore killed after its swap left .restore/old behind: the next stage puts it back
first, so an unconfirmed restore never stays.
"""
import hashlib
import json
import os
import shutil
import sqlite3
import sys
import tarfile

from ppc_guard.archive import DATABASE, MANIFEST, database_problem, member_problem
from ppc_guard.registry import FILES, LIVE_TABLES

DATA = sys.argv[2] if len(sys.argv) > 2 else "/var/lib/pypicloud"
STAGE = f"{DATA}/.restore"
NEW, OLD = f"{STAGE}/new", f"{STAGE}/old"
# What pypicloud keeps in the volume: the file store and its sqlite database.
STORE = ("packages", DATABASE, f"{DATABASE}-journal", f"{DATABASE}-wal", f"{DATABASE}-shm")
OWNER = 10001  # the server image's user
CHUNK = 1 << 20
MANIFEST_LIMIT = 256 << 20


class Refused(Exception):
    """The archive cannot be restored; the message says why."""


def stage():
    back()
    shutil.rmtree(STAGE, ignore_errors=True)
    os.makedirs(NEW)
    try:
        hashes, manifest = extract(sys.stdin.buffer, NEW)
        check(hashes, manifest)
        forget_records(os.path.join(NEW, DATABASE))
        carry_live_tables(os.path.join(DATA, DATABASE), os.path.join(NEW, DATABASE))
        for root, directories, files in os.walk(STAGE):
            for name in [*directories, *files]:
                os.chown(os.path.join(root, name), OWNER, OWNER)
        os.chown(STAGE, OWNER, OWNER)
    except BaseException:
        shutil.rmtree(STAGE, ignore_errors=True)
        raise
    print(f"staged {len(hashes)} files")


def extract(stream, into):
    """{member: sha256} of what was written, and the manifest."""
    hashes, manifest = {}, None
    with tarfile.open(fileobj=stream, mode="r|gz") as archive:
        for member in archive:
            problem = member_problem(member.name, member.isfile())
            if problem:
                raise Refused(f"the archive holds {problem}")
            if member.name in hashes or (member.name == MANIFEST and manifest is not None):
                raise Refused(f"the archive holds {member.name!r} twice")
            source = archive.extractfile(member)
            if member.name == MANIFEST:
                manifest = json.loads(source.read(MANIFEST_LIMIT))
                continue
            path = os.path.join(into, member.name)  # its parts are checked: no "..", no "/"
            os.makedirs(os.path.dirname(path), exist_ok=True)
            digest = hashlib.sha256()
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with os.fdopen(descriptor, "wb") as target:
                while chunk := source.read(CHUNK):
                    digest.update(chunk)
                    target.write(chunk)
            hashes[member.name] = digest.hexdigest()
    return hashes, manifest


def check(hashes, manifest):
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise Refused("the archive holds no manifest")
    wanted = {path: entry.get("sha256") for path, entry in manifest["files"].items()
              if isinstance(entry, dict)}
    if wanted != hashes:
        wrong = sorted(path for path in set(wanted) | set(hashes) if wanted.get(path) != hashes.get(path))
        raise Refused(f"the archive does not match its manifest ({', '.join(wrong[:3])})")
    if DATABASE not in hashes:
        raise Refused("the archive holds no database")
    problem, _ = database_problem(os.path.join(NEW, DATABASE), set(hashes),
                                  stray_files=manifest.get("format") == 1)
    if problem:
        raise Refused(f"the archive's database does not fit: {problem}")


def forget_records(database):
    connection = sqlite3.connect(database)
    with connection:
        connection.execute(f"DROP TABLE IF EXISTS {FILES}")
    connection.close()


def carry_live_tables(live, staged):
    """The live database's API tokens and used OIDC tokens (registry.LIVE_TABLES) into the
    staged one, as they are (none from a live database that is missing or cannot be read:
    a restore is how a damaged one is left)."""
    connection = sqlite3.connect(f"file:{staged}", uri=True)  # URIs: the live one read-only
    with connection:
        for table, create, _ in LIVE_TABLES:
            connection.execute(f"DROP TABLE IF EXISTS main.{table}")  # not the live one's
            connection.execute(create)  # in main
    if os.path.exists(live):
        try:
            connection.execute("ATTACH DATABASE ? AS live", (f"file:{live}?mode=ro",))
        except sqlite3.DatabaseError:  # no database at all
            connection.close()
            return
        for table, _, columns in LIVE_TABLES:
            try:
                with connection:
                    connection.execute(f"INSERT INTO main.{table} ({columns}) "
                                       f"SELECT {columns} FROM live.{table}")
            except sqlite3.DatabaseError:  # no such table (an index from before it)
                pass
    connection.close()


def swap():
    """All of the store aside first (then .restore/old/.complete), then the staged one in."""
    os.makedirs(OLD, exist_ok=True)
    for item in STORE:
        if os.path.lexists(os.path.join(DATA, item)):
            os.rename(os.path.join(DATA, item), os.path.join(OLD, item))
    open(os.path.join(OLD, ".complete"), "w").close()
    for item in STORE:
        if os.path.lexists(os.path.join(NEW, item)):
            os.rename(os.path.join(NEW, item), os.path.join(DATA, item))


def back():
    """Undo a swap, also one cut short: what was set aside goes back; what stands in the
    store beside it came from the staged one (or a server that ran on it) once every
    part was aside, and goes."""
    if not os.path.isdir(OLD):
        return
    complete = os.path.exists(os.path.join(OLD, ".complete"))
    for item in STORE:
        live, kept = os.path.join(DATA, item), os.path.join(OLD, item)
        if os.path.lexists(kept):
            if os.path.lexists(live):
                discard(live)
            os.rename(kept, live)
        elif complete and os.path.lexists(live):
            discard(live)
    shutil.rmtree(STAGE, ignore_errors=True)


def discard(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def finish():
    shutil.rmtree(STAGE, ignore_errors=True)


if __name__ == "__main__":
    action = {"stage": stage, "swap": swap, "back": back, "finish": finish}[sys.argv[1]]
    try:
        action()
    except (Refused, tarfile.TarError, EOFError, ValueError, OSError) as error:
        if isinstance(error, OSError) and error.errno == 28:
            error = "the archive does not fit in the data volume (no space left on it)"
        sys.exit(f"{error}")
