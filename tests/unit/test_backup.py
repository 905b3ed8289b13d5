"""Backup archives, checked without a host: what repack writes and verify accepts, every
way an archive can be damaged refused with one line naming the damage, well-formed
hostile archives (consistent, even signed) refused, and the restore's own script run on
local files."""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from ppc_tasks import archives, backup
from ppc_tasks.errors import TaskError
from ppc_tasks.facts import ContainerFacts, Facts, ImageFacts, VolumeUsage
from ppc_tasks.render import DOCKER_DIR, FILES_DIR, guard_module
from ppc_tasks.settings import Settings
from tests.forged_archives import forged, refit, rewritten, with_symlink

RELEASES = {"demo-1.0.tar.gz": ("demo", "1.0"), "demo-1.0-py3-none-any.whl": ("demo", "1.0"),
            "other-2.0.tar.gz": ("other", "2.0")}
KEY = bytes(range(32))
LOGIN = b"admin:pw\n"


def database(releases=RELEASES, extra_sql: str = "") -> bytes:
    """An sqlite file with pypicloud's packages table and the guard's registry."""
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE packages (filename TEXT PRIMARY KEY, name TEXT, version TEXT, "
                       "last_modified DATETIME, summary TEXT, data TEXT)")
    connection.execute("CREATE TABLE ppc_projects (name TEXT PRIMARY KEY, owner TEXT)")
    connection.execute("CREATE TABLE ppc_files (filename TEXT PRIMARY KEY, name TEXT, size INT, "
                       "metadata_sha256 TEXT, metadata TEXT)")
    connection.executemany("INSERT INTO packages VALUES (?, ?, ?, '2026-11-29', '', '{}')",
                           [(filename, *place) for filename, place in releases.items()])
    connection.executemany("INSERT INTO ppc_projects VALUES (?, 'dev')",
                           sorted({(name,) for name, _ in releases.values()}))
    if extra_sql:
        connection.executescript(extra_sql)
    connection.commit()
    return connection.serialize()


def host_stream(files: dict[str, bytes]) -> io.BytesIO:
    """A tar stream as files/backup-stream.py sends it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w|", format=tarfile.PAX_FORMAT) as stream:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            stream.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def index_files(releases=RELEASES) -> dict[str, bytes]:
    files = {"db.sqlite": database(releases)}
    for filename, (name, version) in releases.items():
        files[f"packages/{name}/{version}/{filename}"] = filename.encode() * 100
        files[f"packages/{name}/{version}/{filename}.meta"] = b"{}"
    files["about.json"] = b'{"pypicloud": "1.3.12"}'
    return files


@pytest.fixture
def archive(tmp_path) -> Path:
    path = tmp_path / "index.tar.gz"
    archives.repack(host_stream(index_files()), path, {"index": "pypi.test"}, KEY)
    return path


def test_a_repacked_archive_verifies_and_says_what_it_holds(archive):
    verified = archives.verify_archive(archive)
    summary = verified.summary
    assert (summary.projects, summary.releases, summary.files) == (2, 3, 7)
    assert str(summary).startswith("2 projects, 3 releases, 7 files, ")
    assert verified.index == "pypi.test" and archives.made_by(verified, KEY) == "index"
    with tarfile.open(archive) as contents:
        assert "about.json" not in contents.getnames()
        assert contents.getnames()[-1] == archives.MANIFEST


def test_a_store_missing_a_listed_file_is_no_backup(tmp_path):
    files = index_files()
    del files["packages/other/2.0/other-2.0.tar.gz"]
    with pytest.raises(TaskError, match="^the host's index: its database lists other-2.0.tar.gz, "
                                        "whose file it lacks$"):
        archives.repack(host_stream(files), tmp_path / "x.tar.gz", {}, KEY)


def test_what_a_host_sends_is_checked_as_it_comes(tmp_path):
    files = {**index_files(), "packages/../../etc/passwd": b"x"}
    with pytest.raises(TaskError, match=r"^the host sent 'packages/../../etc/passwd' has no place"):
        archives.repack(host_stream(files), tmp_path / "x.tar.gz", {}, KEY)


@pytest.mark.parametrize("damage, reason", [
    ("flipped byte", "is damaged or truncated"),
    ("truncated", "is damaged or truncated"),
    ("no manifest", "is damaged, or no ppc-tasks backup (it holds no manifest)"),
    ("missing file", "does not match its manifest (packages/other/2.0/other-2.0.tar.gz)"),
    ("database disagrees", "its database and its manifest disagree"),
    ("no such file", "no such file"),
])
def test_a_damaged_archive_is_refused_with_one_line_naming_the_damage(archive, tmp_path, damage,
                                                                      reason):
    data = archive.read_bytes()
    broken = tmp_path / "broken.tar.gz"
    if damage == "flipped byte":
        middle = len(data) // 2
        broken.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:])
    elif damage == "truncated":
        broken.write_bytes(data[: len(data) * 2 // 3])
    elif damage == "no such file":
        pass
    else:
        def change(name, content):
            if damage == "no manifest" and name == archives.MANIFEST:
                return []
            if damage == "missing file" and name.endswith("other-2.0.tar.gz"):
                return []
            if damage == "database disagrees" and name == archives.MANIFEST:
                manifest = json.loads(content)  # one release fewer than the database lists
                del manifest["releases"]["other-2.0.tar.gz"]
                return [(name, refit(json.dumps(manifest).encode(), {}, KEY))]
            return [(name, content)]
        rewritten(archive, broken, change)
    with pytest.raises(TaskError) as refused:
        archives.verify_archive(broken)
    message = str(refused.value)
    assert "\n" not in message and str(broken) in message and reason in message, message


# Well-formed, consistent, signed archives that must never reach a host's store.
HOSTILE = {
    "a member that leaves the store": ({"packages/../x": b"x"}, None, "'packages/../x' has no place in an index"),
    "a member of another kind": ({"config.ini": b"x"}, None, "'config.ini' has no place in an index"),
    "a second database": ({"db.sqlite": b"SQLite format 3\0 forged"}, None, "holds db.sqlite twice"),
    "a version that climbs out": ({"packages/demo/..%2F/demo-1.0.tar.gz": b"x"}, None,
                                  "invalid version"),
    "a row that climbs out": ({}, "INSERT INTO packages VALUES ('config.ini', '../../../etc', "
                                  "'pypicloud', '2026-11-29', '', '{}')",
                              "its database lists a release it may not: invalid distribution file name"),
    "a trigger": ({}, "CREATE TRIGGER t AFTER INSERT ON packages BEGIN DELETE FROM packages; END",
                  "its database holds 't', which no index has"),
    "another table": ({}, "CREATE TABLE users (name TEXT)", "its database holds 'users'"),
    "a table of another shape": ({}, "ALTER TABLE packages DROP COLUMN data",
                                 "its table packages is not pypicloud's (filename, last_modified, "
                                 "name, summary, version)"),
    "a forged owner": ({}, "INSERT INTO ppc_projects VALUES ('evil/../x', 'dev')",
                       "its registry of projects holds 'evil/../x'"),
    "a file no release lists": ({"packages/demo/1.0/demo-1.0-1-py3-none-any.whl": b"shadow"}, None,
                                "it holds packages/demo/1.0/demo-1.0-1-py3-none-any.whl, a file "
                                "its database does not list"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_a_consistent_hostile_archive_is_refused(archive, tmp_path, case):
    extra_members, extra_sql, reason = HOSTILE[case]
    hostile = forged(archive, tmp_path / "hostile.tar.gz", KEY, added=extra_members,
                     replaced={"db.sqlite": database(extra_sql=extra_sql)} if extra_sql else {})
    with pytest.raises(TaskError) as refused:
        archives.verify_archive(hostile)
    assert reason in str(refused.value) and "\n" not in str(refused.value), str(refused.value)


def test_a_symlink_member_is_refused(archive, tmp_path):
    hostile = with_symlink(archive, tmp_path / "link.tar.gz", "packages/demo/1.0/demo-2.0.tar.gz",
                           "/etc/pypicloud/config.ini")
    with pytest.raises(TaskError, match="'packages/demo/1.0/demo-2.0.tar.gz' is no regular file"):
        archives.verify_archive(hostile)


# -- who made it ---------------------------------------------------------------------------
@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings.from_config({"server_names": ["pypi.test"], "state_dir": str(tmp_path)},
                                host=None)


def test_an_archive_says_which_index_made_it(archive, settings, tmp_path):
    verified = archives.verify_archive(archive)
    assert backup.restore_refusal(settings, archive, verified, KEY, False) is None
    other = backup.restore_refusal(settings, archive, verified, bytes(32), False)
    assert other.startswith("index.tar.gz says the index pypi.test made it, but its signature "
                            "does not match that index's key")
    assert backup.restore_refusal(settings, archive, verified, bytes(32), True) == other
    elsewhere = Settings.from_config({"server_names": ["pypi.other"],
                                      "state_dir": str(tmp_path)}, host=None)
    moved = backup.restore_refusal(elsewhere, archive, verified, bytes(32), False)
    assert moved == ("index.tar.gz was made by the index pypi.test, not pypi.other: restoring "
                     "it moves that index's packages here; confirm with --from-other-index")
    assert backup.restore_refusal(elsewhere, archive, verified, bytes(32), True) is None
    unsigned = archives.Verified(verified.summary, "pypi.test", "", verified.signed,
                                 verified.sha256)
    assert "is not signed" in backup.restore_refusal(settings, archive, unsigned, KEY, False)


def test_an_archive_whose_key_is_lost_here_is_restored_with_the_key_named(archive, settings,
                                                                         tmp_path):
    verified = archives.verify_archive(archive)
    # A new identity here: this machine's key is another one; even --from-other-index
    # will not take an archive that says it is this index's and does not match.
    assert "does not match" in backup.restore_refusal(settings, archive, verified, bytes(32), True)
    secrets = tmp_path / "old-secrets.json"
    secrets.write_text(json.dumps({"backup_key": KEY.hex(), "passwords": {}}))
    for form in (secrets, tmp_path / "key.hex"):
        (tmp_path / "key.hex").write_text(KEY.hex() + "\n")
        named = backup.named_key(form)
        assert named.key == KEY and named.fingerprint.startswith("sha256:")
        assert backup.restore_refusal(settings, archive, verified, bytes(32), False, named) is None
    wrong = backup.NamedKey(tmp_path / "other.json", bytes(range(100, 132)))
    refused = backup.restore_refusal(settings, archive, verified, KEY, True, wrong)
    assert refused.startswith(f"index.tar.gz is not signed with the backup key in {tmp_path}/"
                              f"other.json (fingerprint sha256:")
    (tmp_path / "empty.json").write_text("{}")
    with pytest.raises(TaskError, match="holds no backup key: give a secrets.json"):
        backup.named_key(tmp_path / "empty.json")


def test_a_restore_streams_the_bytes_it_verified_or_none(archive, tmp_path):
    verified = archives.verify_archive(archive)
    assert verified.sha256 == hashlib.sha256(archive.read_bytes()).hexdigest()


def test_prune_keeps_the_newest(tmp_path):
    names = [backup.archive_name(datetime.datetime(2026, 11, day, 3, 0, 0)) for day in (1, 2, 3)]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    assert names[0] == "20261101T030000Z.tar.gz"
    assert backup.prune(tmp_path, 2) == [tmp_path / names[0]]
    assert backup.prune(tmp_path, 0) == [] and backup.prune(tmp_path, 5) == []


def restore_facts(projects: int, running: bool = True) -> Facts:
    return Facts(docker="running", containers={"pypicloud": ContainerFacts("x", running, 3031)},
                 images={"ppc/pypicloud:1.3.12": ImageFacts("sha256:1", "c")},
                 volumes={"pypicloud-data": "data"},
                 volume_usage={"pypicloud-data": VolumeUsage(1, projects * 2, projects, 10**10)})


def test_a_restore_stages_then_swaps_while_the_old_store_waits(settings, archive):
    verified = archives.verify_archive(archive)
    plan = backup.plan_restore(settings, restore_facts(0), archive, verified, "", LOGIN, "h")
    steps = plan.changes()
    assert [step.step for step in steps] == ["restore.stage", "restore.data", "server.records"]
    stage, swap = steps[0].commands[0], steps[1].commands[0]
    # The records are read again from the files the archive brought, once the server runs.
    assert steps[2].commands[1].argv == ("docker", "exec", "pypicloud", "ppc-guard", "record")
    assert stage.argv[:6] == ("docker", "run", "--rm", "-i", "--user", "0")
    assert stage.argv[-1] == "stage" and stage.stdin_file == archive
    # The bytes streamed must be the bytes verified (the file could change in between).
    assert stage.stdin_sha256 == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert [command.argv[-1] for command in steps[0].undo] == ["finish"]  # unstaged then
    assert swap.argv[3] == "restore-swap" and swap.stdin_shown == "an admin's login"
    assert all(b"pw" not in part.encode() for part in swap.argv)


def test_restore_over_packages_takes_the_index_name(settings, archive):
    verified = archives.verify_archive(archive)
    with pytest.raises(TaskError, match=r"holds 1 project: .* --confirm=pypi\.test$"):
        backup.plan_restore(settings, restore_facts(1), archive, verified, "", LOGIN, "h")
    with pytest.raises(TaskError, match="holds 3 projects"):
        backup.plan_restore(settings, restore_facts(3), archive, verified, "pypi", LOGIN, "h")
    assert backup.plan_restore(settings, restore_facts(3), archive, verified, "pypi.test", LOGIN, "h")


def test_restore_needs_a_deployed_index(settings, archive):
    facts = restore_facts(0)
    facts.containers["pypicloud"] = None
    with pytest.raises(TaskError, match="has no index to restore into: deploy it first"):
        backup.plan_restore(settings, facts, archive, archives.verify_archive(archive),
                            "", LOGIN, "h")


def test_an_index_on_shared_stores_is_refused_with_one_line():
    on_s3 = Settings.from_config({"storage": "s3", "s3_bucket": "pypi", "s3_access_key_id": "k",
                                  "cache_url": "postgresql://pypi@db.test/pypi"}, host="pypi.test")
    with pytest.raises(TaskError, match=r"^backup and restore cover an index's own file store "
                                        r"and sqlite database; this one keeps its packages in S3 "
                                        r"\(bucket pypi\) and its cache in postgresql "
                                        r"\(postgresql://pypi@db.test:5432/pypi\): back those up"):
        backup.require_own_store(on_s3)
    backup.require_own_store(Settings.from_config({}, host="pypi.test"))


# -- files/restore-volume.py, run on local files -------------------------------------------
def store(data: Path, action: str, archive: Path | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(DOCKER_DIR / "server")}
    return subprocess.run([sys.executable, str(FILES_DIR / "restore-volume.py"), action, str(data)],
                          stdin=archive.open("rb") if archive else subprocess.DEVNULL,
                          capture_output=True, text=True, env=environment)


@pytest.fixture
def live_store(tmp_path) -> Path:
    data = tmp_path / "volume"
    (data / "packages" / "old" / "1.0").mkdir(parents=True)
    (data / "packages" / "old" / "1.0" / "old-1.0.tar.gz").write_bytes(b"the old index")
    (data / "db.sqlite").write_bytes(b"the old database")
    return data


def listing(data: Path) -> list[str]:
    return sorted(str(path.relative_to(data)) for path in data.rglob("*") if path.is_file())


def test_stage_swap_and_finish_put_the_archive_in_place(archive, live_store):
    staged = store(live_store, "stage", archive)
    assert staged.returncode == 0 and staged.stdout == "staged 7 files\n", staged.stderr
    assert (live_store / "db.sqlite").read_bytes() == b"the old database"  # untouched so far
    assert store(live_store, "swap").returncode == 0
    assert (live_store / ".restore" / "old" / "db.sqlite").read_bytes() == b"the old database"
    assert store(live_store, "finish").returncode == 0
    assert listing(live_store) == sorted(
        name for name in index_files() if name != "about.json")
    # What an archive says of its files' metadata is not taken: it is read from the files.
    tables = sqlite3.connect(live_store / "db.sqlite").execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    assert sorted(tables) == [("packages",), ("ppc_projects",), ("ppc_tokens",), ("ppc_used_jtis",)]


def test_stage_carries_the_live_api_tokens_and_used_oidc_tokens_over(archive, tmp_path):
    """A restore neither loses the index's tokens nor revives one revoked since, nor lets
    an OIDC token be used again (backups carry none of them)."""
    registry = guard_module("registry")
    data = tmp_path / "volume"
    data.mkdir()
    live = sqlite3.connect(data / "db.sqlite")
    live.execute(registry.TOKENS_TABLE)
    live.execute(f"INSERT INTO {registry.TOKENS} VALUES ('abcd0001', 'f00d', 'dev', "
                 f"'[\"acme-*\"]', '', '2026-12-06T00:00:00+00:00', '', '', 0)")
    live.execute(registry.USED_JTIS_TABLE)
    live.execute(f"INSERT INTO {registry.USED_JTIS} VALUES ('https://ci.example jti-1', "
                 f"'2026-12-06T00:10:00+00:00')")
    live.commit()
    live.close()
    assert store(data, "stage", archive).returncode == 0
    staged = sqlite3.connect(data / ".restore" / "new" / "db.sqlite")
    assert staged.execute(f"SELECT id, account FROM {registry.TOKENS}").fetchall() == \
        [("abcd0001", "dev")]
    assert staged.execute(f"SELECT jti FROM {registry.USED_JTIS}").fetchall() == \
        [("https://ci.example jti-1",)]


def test_back_puts_the_old_store_back_even_after_a_cut_short_swap(archive, live_store):
    before = listing(live_store)
    assert store(live_store, "stage", archive).returncode == 0
    assert store(live_store, "swap").returncode == 0
    (live_store / "db.sqlite-journal").write_bytes(b"the new server's journal")
    assert store(live_store, "back").returncode == 0
    assert listing(live_store) == before
    # A swap killed after setting aside only the packages: back keeps the database.
    assert store(live_store, "stage", archive).returncode == 0
    (live_store / ".restore" / "old").mkdir()
    (live_store / "packages").rename(live_store / ".restore" / "old" / "packages")
    assert store(live_store, "stage", archive).returncode == 0  # a new restore undoes it first
    assert (live_store / "db.sqlite").read_bytes() == b"the old database"
    assert (live_store / "packages" / "old" / "1.0" / "old-1.0.tar.gz").exists()


def test_stage_refuses_a_hostile_archive_and_leaves_nothing(archive, live_store, tmp_path):
    def change(name, content):
        if name == archives.MANIFEST:
            return [("packages/../../escaped", b"x"), (name, content)]
        return [(name, content)]

    hostile = rewritten(archive, tmp_path / "hostile.tar.gz", change)
    before = listing(live_store)
    refused = store(live_store, "stage", hostile)
    assert refused.returncode == 1
    assert refused.stderr.strip() == ("the archive holds 'packages/../../escaped': invalid "
                                      "distribution file name: 'escaped'")
    assert listing(live_store) == before and not (live_store / ".restore").exists()
    assert not (tmp_path / "escaped").exists()


# -- files/sh/restore-swap.sh, with a stand-in docker --------------------------------------
STUB_DOCKER = """#!/bin/sh
# docker, as restore-swap.sh and wait-healthy.sh use it, on local files.
echo "$1" >> "$DOCKER_LOG"
case "$1" in
    run) eval "script=\\${$(( $# - 1 ))}"; eval "action=\\${$#}"
         exec python3 -c "$script" "$action" "$DATA" ;;
    exec) exit "$HEALTH" ;;
    inspect) echo "false 0" ;;
esac
"""


def swap(tmp_path, data: Path, healthy: bool) -> tuple[subprocess.CompletedProcess, list[str]]:

    stub = tmp_path / "bin"
    stub.mkdir(exist_ok=True)
    (stub / "docker").write_text(STUB_DOCKER)
    (stub / "docker").chmod(0o755)
    log = tmp_path / "docker.log"
    log.write_text("")
    settings = Settings.from_config({"server_names": ["pypi.test"], "start_timeout": "2"}, host=None)
    environment = {**os.environ, "PATH": f"{stub}:{os.environ['PATH']}", "DOCKER_LOG": str(log),
                   "DATA": str(data), "HEALTH": "0" if healthy else "1",
                   "PYTHONPATH": str(DOCKER_DIR / "server")}
    result = subprocess.run(backup.swap_argv(settings), input=LOGIN, capture_output=True,
                            env=environment)
    return result, log.read_text().split()


def test_the_swap_keeps_the_restored_store_once_the_server_answers(archive, live_store, tmp_path):
    assert store(live_store, "stage", archive).returncode == 0
    result, calls = swap(tmp_path, live_store, healthy=True)
    assert result.stdout == b"restored\n" and result.returncode == 0, result.stderr
    assert calls == ["stop", "run", "start", "exec", "exec", "run"]
    assert listing(live_store) == sorted(name for name in index_files() if name != "about.json")


def test_the_swap_puts_the_old_store_back_when_the_server_does_not_answer(
        archive, live_store, tmp_path):
    before = listing(live_store)
    assert store(live_store, "stage", archive).returncode == 0
    result, calls = swap(tmp_path, live_store, healthy=False)
    assert result.returncode == 1
    assert result.stdout.decode().startswith("kept the old store: the server did not answer "
                                             "from the restored store: stopped")
    assert calls[:3] == ["stop", "run", "start"] and calls[-3:] == ["stop", "run", "start"]
    assert listing(live_store) == before and not (live_store / ".restore").exists()
