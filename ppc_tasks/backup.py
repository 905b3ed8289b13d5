"""`backup`: the index in one verified, signed archive on the operator's machine, and back
(the archives themselves: archives.py).

`ppc -H HOST backup` streams the index over SSH (nothing is staged on the host): a
consistent snapshot of the database (sqlite's online backup API) and the file of every
release it lists, taken by a throwaway container of the server image while the server
keeps serving. The archive (`<state_dir>/<index>/backups/<time>.tar.gz`, 0600) carries
a manifest (the sha256 of every file, the releases, the pypicloud version, the
settings' fingerprint) signed with the index's own key (HMAC-SHA256, the key in
secrets.json). Secrets are never in an archive.

What an archive may hold is defined once, in the server image's guard
(docker/server/ppc_guard/archive.py): `backup.verify` checks it here, and a restore
checks it again as it extracts on the host. A restore stages the archive inside the
data volume, swaps it in with renames and keeps the old store until the server answers
from the new one: no archive, and no failure on the way (a full disk, a server that
does not start, a killed ppc), leaves the index without a store it can serve.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from fabric import task

from . import credentials, state
from .apply import settings_fingerprint
from .archives import Verified, index_key, made_by, repack, verify_archive
from .errors import TaskError
from .facts import CONTAINER, DOCKER, IMAGE, TEXT, VOLUME, VOLUME_USAGE, Facts
from .plan import Change, Command, Plan, counted, file_step
from .plans.server import records_change
from .render import FILES_DIR, script, script_argv
from .settings import DATA_DIR, PYPICLOUD_UID, Settings
from .wiring import expected_failures, host_task


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


def store_argv(settings: Settings, action: str) -> list[str]:
    """files/restore-volume.py ACTION in a throwaway container of the server image."""
    return ["docker", "run", "--rm", "-i", "--user", "0",
            "--volume", f"{settings.data_volume}:{DATA_DIR}",
            "--entrypoint", "/opt/pypicloud/bin/python", settings.server_image,
            "-c", (FILES_DIR / "restore-volume.py").read_text(), action]


def swap_argv(settings: Settings) -> list[str]:
    """files/sh/restore-swap.sh: the staged store in, kept only if the server answers."""
    return script_argv("restore-swap", settings.server_container, settings.data_volume,
                       settings.server_image, str(settings.start_timeout),
                       (FILES_DIR / "restore-volume.py").read_text(), script("wait-healthy"))


def restore_refusal(settings: Settings, archive: Path, verified: Verified, key: bytes | None,
                    from_other_index: bool, named_key: NamedKey | None = None) -> str | None:
    """Why this index may not take the archive (without --from-other-index), or None.
    A key the operator named (--key-file) decides alone: the archive is that key's."""
    if named_key is not None:
        if made_by(verified, named_key.key) == "index":
            return None
        return (f"{archive.name} is not signed with the backup key in {named_key.path} "
                f"(fingerprint {named_key.fingerprint}): use that key's archives, or another key")
    own = verified.index == settings.index_name
    origin = made_by(verified, key if own else None)
    if origin == "forged":
        return (f"{archive.name} says the index {verified.index} made it, but its signature "
                f"does not match that index's key: it was changed after it was made; use "
                f"another backup")
    if origin == "index" or from_other_index:
        return None
    if origin == "unsigned":
        return (f"{archive.name} is not signed (made before ppc-tasks signed its archives): "
                f"nothing tells which index made it; if you know it is this index's, "
                f"restore it with --from-other-index")
    return (f"{archive.name} was made by the index {verified.index or '(unnamed)'}, not "
            f"{settings.index_name}: restoring it moves that index's packages here; confirm "
            f"with --from-other-index")


@dataclass(frozen=True)
class NamedKey:
    """A backup key the operator names for a restore, from a file (never the command line)."""

    path: Path
    key: bytes

    @property
    def fingerprint(self) -> str:
        return "sha256:" + hashlib.sha256(self.key).hexdigest()[:16]


def named_key(path: Path) -> NamedKey:
    """The backup key in a file: an index's secrets.json, or its backup_key alone (hex)."""
    text = path.read_text().strip()
    value = credentials.load(path).backup_key if text.startswith("{") else text
    try:
        key = bytes.fromhex(value)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise TaskError(f"{path} holds no backup key: give a secrets.json of the index that "
                        f"made the archive, or its backup_key (hex) alone")
    return NamedKey(path, key)


def prune(directory: Path, keep: int) -> list[Path]:
    """The oldest archives beyond the `keep` newest (names sort by time)."""
    archives = sorted(directory.glob("*.tar.gz"))
    return archives[:-keep] if keep > 0 and len(archives) > keep else []


ARCHIVE_HELP = "a backup archive (made by backup.create)"


# -- tasks ---------------------------------------------------------------------------------
@host_task(mutating=False, option_help={
    "keep": "then delete all but this many newest archives (0: keep all)"})
def create(host, keep=0):
    """Back the index up to this machine, into <state_dir>/<index>/backups/.

    Example: ppc -H pypi-internal backup --keep=14

    One archive, <UTC time>.tar.gz: a consistent snapshot of the database and the file of every release it lists,
    streamed over SSH while the server keeps serving, checked as it arrives, signed with
    the index's key and verified once written. Mode 0600; secrets are not in it.
    --keep=N deletes all but the N newest archives. With --dry, says what it would
    write and writes nothing.
    """
    settings = host.settings
    require_own_store(settings)
    facts = host.gather([DOCKER.query(), VOLUME.query(settings.data_volume),
                         IMAGE.query(settings.server_image),
                         TEXT.query(settings.verified_backup_path)])
    host.require_docker(facts)
    if facts.volumes[settings.data_volume] != "data":
        raise TaskError(f"there is no index on {host.name} to back up "
                        f"(the volume {settings.data_volume} is {facts.volumes[settings.data_volume]})")
    if facts.images[settings.server_image] is None:
        raise TaskError(f"image {settings.server_image} is missing: run image.build first")
    now = datetime.datetime.now(datetime.timezone.utc)
    directory = backups_dir(settings)
    archive = directory / archive_name(now)
    if host.dry:
        host.carry_out(Plan([Change("backup.archive", done="", would=f"write {archive}: the "
                                    f"index as the host has it, signed with its key",
                                    commands=[Command(tuple(stream_argv(settings)),
                                                      stdin_shown="files/backup-stream.py")])]))
        host.summary()
        return
    key = credentials.backup_key(settings)
    created = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    partial = archive.with_name(archive.name + ".partial")
    state.write(partial, b"")  # 0600 in a 0700 folder, before a byte of the index is in it
    try:
        with host.streaming(stream_argv(settings), root=True,
                            stdin=(FILES_DIR / "backup-stream.py").read_bytes()) as incoming:
            repack(incoming, partial, {"created": created,
                                       "index": settings.index_name, "host": host.name,
                                       "settings": settings_fingerprint(settings)}, key)
        summary = verify_archive(partial).summary
        os.replace(partial, archive)
    finally:
        partial.unlink(missing_ok=True)
    host.report("backup.archive", True, f"{archive}: {summary}")
    # The host says when its last verified backup was made: /metrics tells Prometheus.
    host.carry_out(Plan([file_step("backup.record", settings.verified_backup_path,
                                   f"{created}\n".encode(),
                                   facts.file(settings.verified_backup_path), mode="644",
                                   owner="0:0")]))
    for old in prune(directory, int(keep)):
        old.unlink()
        host.report("backup.prune", True, f"deleted {old.name} (--keep={keep})")


@task(auto_shortflags=False, help={"file": ARCHIVE_HELP})
def verify(c, file):
    """Check a backup archive offline, on this machine (no -H).

    Example: ppc backup.verify ~/.local/state/ppc-tasks/pypi-internal/backups/20261125T171807Z.tar.gz

    Every member a regular file where an index has one, each once; every file against
    the manifest's sha256, nothing missing; the database holding only an index's tables
    and releases whose files are there. Then who made it: the index its manifest names,
    checked with that index's key when its folder is on this machine.
    """
    with expected_failures():
        path = Path(file).expanduser()
        verified = verify_archive(path)
        state_dir = Settings.from_config(dict(c.config.ppc), require_names=False).state_dir
        origin = made_by(verified, index_key(state_dir, verified.index))
        if origin == "forged":
            raise TaskError(f"{path} says the index {verified.index} made it, but its "
                            f"signature does not match that index's key: it was changed "
                            f"after it was made; use another backup")
        made = {"index": f"made by the index {verified.index} (its signature checks)",
                "unknown": f"made by the index {verified.index}, says its manifest (that "
                           f"index's key is not on this machine to check it)",
                "unsigned": "not signed (made before ppc-tasks signed its archives)"}[origin]
        print(f"verified {path}: {verified.summary}; {made}", flush=True)


@host_task(option_help={
    "file": ARCHIVE_HELP,
    "confirm": "the index's name, to replace every package it holds",
    "from_other_index": "restore an archive another index made (or one not signed): its "
                        "packages replace this index's",
    "key_file": "the secrets.json (or the backup_key alone, hex) of the index that made "
                "the archive, when this machine no longer has its key"})
def restore(host, file, confirm="", from_other_index=False, key_file=""):
    """Put a backup archive into the host's index, checked and swapped in.

    Example: ppc -H pypi-internal restore backups/20261125T171807Z.tar.gz --confirm=pypi-internal

    The archive is verified here first (a damaged or forged one is refused and nothing
    changes), then staged inside the data volume and checked again while the server
    keeps serving. Only then is the server stopped, the store swapped for the staged
    one with renames, and the server started: if it does not answer from it, the old
    store goes back and the old index serves again. A store that holds packages is
    replaced only with --confirm=<index name>; an archive of another index (or one not
    signed) only with --from-other-index. An archive whose key this machine no longer
    has (a lost state folder, a new identity) is restored with --key-file=FILE, the
    secrets.json that held its key (or the key alone): its signature is checked with it,
    and the host's audit log names the key's fingerprint. The bytes streamed are the
    bytes verified. The index's accounts and keys stay as this machine has them (they
    are not in archives).
    """
    settings = host.settings
    require_own_store(settings)
    archive = Path(file).expanduser()
    named = named_key(Path(key_file).expanduser()) if key_file else None
    verified = verify_archive(archive)  # before anything else: a damaged one touches nothing
    refusal = restore_refusal(settings, archive, verified,
                              index_key(settings.state_dir, settings.index_name), from_other_index,
                              named)
    if refusal:
        raise TaskError(refusal)
    if named is not None:
        host.task_name = f"restore(backup-key={named.fingerprint})"  # in the audit log
        print(f"[{host.name}] {archive.name} is signed with the backup key in {named.path} "
              f"({named.fingerprint})", flush=True)
    creds = credentials.admin_credentials(settings, "restore")
    facts = host.read_facts([DOCKER.query(), *restore_queries(settings)])
    host.require_docker(facts)
    host.carry_out(plan_restore(settings, facts, archive, verified, confirm,
                                credentials.login_line(settings, creds), host.name))


def restore_queries(settings: Settings) -> list[str]:
    """What plan_restore reads: the volume and what it holds, the server and its image."""
    return [VOLUME.query(settings.data_volume), VOLUME_USAGE.query(settings.data_volume),
            CONTAINER.query(settings.server_container), IMAGE.query(settings.server_image)]


def plan_restore(settings: Settings, facts: Facts, archive: Path, verified: Verified,
                 confirm: str, login: bytes, host_name: str) -> Plan:
    name = settings.server_container
    if facts.containers[name] is None or facts.images[settings.server_image] is None:
        raise TaskError(f"{host_name} has no index to restore into: deploy it first")
    usage = facts.volume_usage.get(settings.data_volume)
    if usage is not None and usage.files and confirm != settings.index_name:
        raise TaskError(f"the index on {host_name} holds {counted(usage.projects, 'project')}: a restore "
                        f"replaces all it holds; confirm with --confirm={settings.index_name}")
    # The archive streams from here: an index may be bigger than memory.
    stage = Command(tuple(store_argv(settings, "stage")), stdin_file=archive,
                    stdin_sha256=verified.sha256,
                    failure=f"{archive.name} was not restored: {{output}}; the index on "
                            f"{host_name} was not touched")
    # files/sh/restore-swap.sh keeps the old store unless the server answers from the new.
    swap = Command(tuple(swap_argv(settings)), stdin=login, stdin_shown="an admin's login",
                   failure=f"{archive.name} was not restored: {{output}}; the old index is "
                           f"serving again")
    plan = Plan()
    plan.add(Change("restore.stage", done=f"staged {archive.name} in {settings.data_volume}: "
                                          f"every file checked",
                    would=f"stage {archive} in the data volume {settings.data_volume}, "
                          f"checking every file, while {name} keeps serving",
                    commands=[stage],
                    # Staged, but not the bytes verified: what was staged goes.
                    undo=[Command(tuple(store_argv(settings, "finish")))]))
    plan.add(Change("restore.data", done=f"restored {archive.name}: {verified.summary}; {name} answers "
                                         f"from it",
                    would=f"stop {name}, swap the store for the staged one, start {name}; "
                          f"the old store stays until it answers",
                    commands=[swap]))
    # An archive's records are never trusted (restore-volume.py drops them): read again.
    plan.add(records_change(settings, "recorded the size and core metadata of every restored "
                                      "file, read from the files themselves",
                            "read every restored file for its size and core metadata"))
    return plan
