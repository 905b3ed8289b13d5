"""Backup archives, checked without a host: what repack writes, verify accepts, and every
way an archive can be damaged is refused with one line."""

from __future__ import annotations

import datetime
import io
import sqlite3
import tarfile
from pathlib import Path

import pytest

from ppc_tasks import backup
from ppc_tasks.errors import TaskError
from ppc_tasks.facts import ContainerFacts, Facts, ImageFacts, VolumeUsage
from ppc_tasks.settings import Settings

RELEASES = {"demo-1.0.tar.gz": ("demo", "1.0"), "demo-1.0-py3-none-any.whl": ("demo", "1.0"),
            "other-2.0.tar.gz": ("other", "2.0")}


def database(releases=RELEASES) -> bytes:
    """An sqlite file with pypicloud's packages table."""
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE packages (filename TEXT, name TEXT, version TEXT)")
    connection.executemany("INSERT INTO packages VALUES (?, ?, ?)",
                           [(filename, *place) for filename, place in releases.items()])
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
    backup.repack(host_stream(index_files()), path, {"index": "pypi.test"})
    return path


def test_a_repacked_archive_verifies_and_says_what_it_holds(archive):
    summary = backup.verify_archive(archive)
    assert (summary.projects, summary.releases, summary.files) == (2, 3, 7)
    assert str(summary).startswith("2 projects, 3 releases, 7 files, ")
    with tarfile.open(archive) as contents:
        assert "about.json" not in contents.getnames()
        assert contents.getnames()[-1] == backup.MANIFEST


def test_a_store_missing_a_listed_file_is_no_backup(tmp_path):
    files = index_files()
    del files["packages/other/2.0/other-2.0.tar.gz"]
    with pytest.raises(TaskError, match="lacks files its database lists: packages/other/2.0/"):
        backup.repack(host_stream(files), tmp_path / "x.tar.gz", {})


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "no manifest", "missing file",
                                    "database disagrees", "no such file"])
def test_a_damaged_archive_is_refused_with_one_line(archive, tmp_path, damage):
    data = archive.read_bytes()
    broken = tmp_path / "broken.tar.gz"
    if damage == "flipped byte":
        middle = len(data) // 2
        broken.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:])
    elif damage == "truncated":
        broken.write_bytes(data[: len(data) * 2 // 3])
    else:
        with tarfile.open(archive) as source, tarfile.open(broken, "w:gz") as out:
            for member in source:
                content = source.extractfile(member).read()
                if damage == "no manifest" and member.name == backup.MANIFEST:
                    continue
                if damage == "missing file" and member.name.endswith("other-2.0.tar.gz"):
                    continue
                if damage == "database disagrees" and member.name == "db.sqlite":
                    content = database({"demo-1.0.tar.gz": ("demo", "1.0")})
                member.size = len(content)
                out.addfile(member, io.BytesIO(content))
        if damage == "no such file":
            broken.unlink()
    with pytest.raises(TaskError) as refused:
        backup.verify_archive(broken)
    assert "\n" not in str(refused.value) and str(broken) in str(refused.value)


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


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings.from_config({"server_names": ["pypi.test"], "state_dir": str(tmp_path)},
                                host=None)


def test_restore_into_an_empty_store_stops_replaces_and_starts(settings, archive):
    summary = backup.verify_archive(archive)
    plan = backup.plan_restore(settings, restore_facts(0), archive, summary, "", "h")
    steps = plan.changes()
    assert [step.step for step in steps] == ["restore.data", "restore.server"]
    assert [command.argv for command in steps[0].commands] == [("docker", "stop", "pypicloud")]
    assert steps[0].preview[0].argv[:6] == ("docker", "run", "--rm", "-i", "--user", "0")
    assert [command.argv for command in steps[1].commands] == [("docker", "start", "pypicloud")]


def test_restore_over_packages_takes_the_index_name(settings, archive):
    summary = backup.verify_archive(archive)
    with pytest.raises(TaskError, match=r"holds 1 project: .* --confirm=pypi\.test$"):
        backup.plan_restore(settings, restore_facts(1), archive, summary, "", "h")
    with pytest.raises(TaskError, match="holds 3 projects"):
        backup.plan_restore(settings, restore_facts(3), archive, summary, "pypi", "h")
    assert backup.plan_restore(settings, restore_facts(3), archive, summary, "pypi.test", "h")


def test_restore_needs_a_deployed_index(settings, archive):
    facts = restore_facts(0)
    facts.containers["pypicloud"] = None
    with pytest.raises(TaskError, match="has no index to restore into: deploy it first"):
        backup.plan_restore(settings, facts, archive, backup.verify_archive(archive), "", "h")


def test_an_index_on_shared_stores_is_refused_with_one_line():
    on_s3 = Settings.from_config({"storage": "s3", "s3_bucket": "pypi", "s3_access_key_id": "k",
                                  "cache_url": "postgresql://pypi@db.test/pypi"}, host="pypi.test")
    with pytest.raises(TaskError, match=r"^backup and restore cover an index's own file store "
                                        r"and sqlite database; this one keeps its packages in S3 "
                                        r"\(bucket pypi\) and its cache in postgresql "
                                        r"\(postgresql://pypi@db.test:5432/pypi\): back those up"):
        backup.require_own_store(on_s3)
    backup.require_own_store(Settings.from_config({}, host="pypi.test"))
