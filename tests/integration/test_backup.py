"""The restore drill: an index with 30 releases is backed up while uploads go on, a
fresh host is deployed and restored from the archive, and every release comes back
byte for byte. A damaged archive is refused and changes nothing."""

from __future__ import annotations

import ctypes
import hashlib
import itertools
import json
import os
import re
import sqlite3
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from ppc_tasks import archives
from tests.forged_archives import forged, rewritten, with_symlink

from . import harness, web
from .conftest import SERVER_NAME, SYSTEM_CA_BUNDLE, password_of

PROJECTS = [f"ppc-drill-{number}" for number in range(1, 6)]
VERSIONS = ["1.0.0", "1.1.0", "2.0.0"]  # x 5 projects x (sdist + wheel) = 30 releases


def upload(host, ca, password: str, name: str, version: str, files) -> None:
    for path in files:
        body, headers = web.upload_form({":action": "file_upload", "name": name,
                                         "version": version}, path.name, path.read_bytes())
        response = web.request(host.address, "/simple/", ca=ca, sni=SERVER_NAME, host=SERVER_NAME,
                               method="POST", body=body, headers=headers, auth=("dev", password))
        assert response.status == 200, (path.name, response)


def files_of(host, ca, password: str, project: str, name: str = SERVER_NAME) -> dict[str, str]:
    return web.files_of(host.address, project, ca=ca, name=name, auth=("dev", password))


def built(files) -> dict[str, str]:
    """{file name: sha256} of distributions this test built: what the index must give back."""
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in files}


@dataclass(frozen=True)
class Sent:
    """One file uploaded while the backup was taken: its sha256, and when its upload
    began and ended (monotonic)."""

    sha256: str
    started: float
    finished: float


@pytest.fixture(scope="module")
def drill(deployed, fab, operator_home, make_dists, tmp_path_factory):
    """Host A (the shared server) with 30 releases, and a backup taken while uploads run:
    uploads finish before the backup starts, others go on while it runs, and more begin
    only once it is done."""
    server = deployed.host
    ca = operator_home / "state" / SERVER_NAME / "ca.crt"
    password = password_of(operator_home, "dev")
    expected = {name: {} for name in PROJECTS}
    for name in PROJECTS:
        for version in VERSIONS:
            files = make_dists(name, version)
            upload(server, ca, password, name, version, files)
            expected[name].update(built(files))
    assert sum(map(len, expected.values())) == 30

    late: dict[str, Sent] = {}  # each upload checked in upload()
    errors = []
    backup_done = threading.Event()
    backup_finished = [float("inf")]

    def keep_uploading() -> None:
        """Until the backup is over and two more files went up after it."""
        for number in itertools.count(1):
            version = f"0.{number}"
            for path in make_dists("ppc-drill-late", version):
                started = time.monotonic()
                try:
                    upload(server, ca, password, "ppc-drill-late", version, [path])
                except BaseException as error:  # noqa: BLE001  recorded, and the test fails on it
                    errors.append(f"{path.name}: {error}")
                    return
                late[path.name] = Sent(built([path])[path.name], started, time.monotonic())
            if backup_done.is_set() and sum(sent.started > backup_finished[0]
                                            for sent in late.values()) >= 2:
                return

    uploading = threading.Thread(target=keep_uploading)
    uploading.start()
    harness.wait_for(lambda: len(late) >= 2 or errors, "the first uploads", 60)
    backup_started = time.monotonic()
    try:
        result = fab("backup", "--keep=3", host=server, settings=deployed.settings())
    finally:
        backup_finished[0] = time.monotonic()
        backup_done.set()
        uploading.join()
    assert errors == [], errors
    assert result.returncode == 0, result.stdout + result.stderr
    archive = re.search(r"backup\.archive\s+changed\s+(\S+\.tar\.gz):", result.stdout).group(1)
    with tarfile.open(archive) as contents:
        manifest = json.loads(contents.extractfile("manifest.json").read())
    in_archive = {filename for filename, place in manifest["releases"].items()
                  if place.startswith("ppc-drill-late/")}
    # What the index must give back of the uploads that went on: every file done before
    # the backup began, and none begun after it ended; of those sent while it ran (there
    # were some), each as it was sent, or not at all.
    before = {name: sent.sha256 for name, sent in late.items() if sent.finished < backup_started}
    after = {name for name, sent in late.items() if sent.started > backup_finished[0]}
    during = {name: sent.sha256 for name, sent in late.items()
              if name not in before and name not in after}
    assert before and during and after, (sorted(before), sorted(during), sorted(after))
    assert before.keys() <= in_archive <= before.keys() | during.keys(), \
        (sorted(before), sorted(in_archive), sorted(after))
    return {"archive": archive, "ca": ca, "password": password, "result": result,
            "expected": expected, "late": (before, during)}


def test_the_archive_is_private_consistent_and_verifies(drill, fab, deployed):
    archive = drill["archive"]
    assert oct(os.stat(archive).st_mode & 0o777) == "0o600"
    verified = fab("backup.verify", archive, settings=deployed.settings())
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith(f"verified {archive}: ")
    assert verified.stdout.rstrip().endswith("; made by the index pypi.test (its signature checks)")
    with tarfile.open(archive) as contents:
        names = contents.getnames()
    assert "db.sqlite" in names and "manifest.json" in names
    assert not any(name.rsplit("/", 1)[-1].startswith(".") for name in names)
    assert not any("secrets" in name or name.endswith(".key") for name in names)


def test_a_preview_of_a_backup_writes_nothing(drill, fab, deployed, operator_home):
    backups = operator_home / "state" / SERVER_NAME / "backups"
    before = sorted(backups.iterdir())
    preview = fab("--dry", "backup", host=deployed.host, settings=deployed.settings())
    assert preview.returncode == 0, preview.stdout + preview.stderr
    assert "backup.archive     would change  write " in preview.stdout
    assert "dry run: 1 would change, 0 unchanged; nothing was changed" in preview.stdout
    assert sorted(backups.iterdir()) == before


@pytest.fixture(scope="module")
def restored(drill, fab, start_host, tmp_path_factory):
    """A fresh host B, deployed as its own index, restored from A's archive."""
    host_b = start_host("restore-b")
    settings = {"server_names": ["restore-b.test", host_b.address], "users": ["dev"],
                "build_ca_bundle": SYSTEM_CA_BUNDLE,
                "state_dir": str(tmp_path_factory.mktemp("restore-b-state"))}
    deployed_b = fab("deploy", host=host_b, settings=settings)
    assert deployed_b.returncode == 0, deployed_b.stdout + deployed_b.stderr
    return host_b, settings


def test_a_damaged_archive_is_refused_and_changes_nothing(drill, restored, fab, tmp_path):
    host_b, settings = restored
    data = bytearray(Path(drill["archive"]).read_bytes())
    flipped, truncated = tmp_path / "flipped.tar.gz", tmp_path / "truncated.tar.gz"
    flipped.write_bytes(data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 0xFF])
                        + data[len(data) // 2 + 1:])
    truncated.write_bytes(data[:len(data) * 2 // 3])
    before = host_b.out("docker inspect --format '{{.State.StartedAt}}' pypicloud; "
                        "ls -R /var/lib/docker/volumes/pypicloud-data/_data | sha256sum")
    for broken in (flipped, truncated):
        result = fab("restore", str(broken), host=host_b, settings=settings)
        assert result.returncode == 1
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
        assert "use another backup" in result.stderr
    assert host_b.out("docker inspect --format '{{.State.StartedAt}}' pypicloud; "
                      "ls -R /var/lib/docker/volumes/pypicloud-data/_data | sha256sum") == before


def test_every_release_comes_back_byte_for_byte_on_a_fresh_host(drill, restored, fab, client):
    host_b, settings = restored
    # A's archive is no archive of B's: moving an index takes a flag, typed on purpose.
    moved = fab("restore", drill["archive"], host=host_b, settings=settings)
    assert moved.returncode == 1 and moved.stderr.strip().endswith(
        "was made by the index pypi.test, not restore-b.test: restoring it moves that index's "
        "packages here; confirm with --from-other-index"), moved.stderr
    result = fab("restore", drill["archive"], "--from-other-index", host=host_b, settings=settings)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "restore.stage      changed" in result.stdout
    assert "restore.data       changed" in result.stdout
    assert host_b.out("ls -A /var/lib/docker/volumes/pypicloud-data/_data") == "db.sqlite\npackages"

    state = settings["state_dir"]
    ca_b = f"{state}/restore-b.test/ca.crt"
    password_b = json.loads(Path(f"{state}/restore-b.test/secrets.json").read_text())["passwords"]["dev"]
    for name, files in drill["expected"].items():  # every release of the snapshot, as built
        assert files_of(host_b, ca_b, password_b, name, "restore-b.test") == files, name
    before, during = drill["late"]  # and of those sent during the backup, as sent
    late = files_of(host_b, ca_b, password_b, "ppc-drill-late", "restore-b.test")
    assert before.items() <= late.items() <= {**before, **during}.items(), sorted(late)

    # A real client installs from B: pip verifies the sha256 B's pages give.
    client.exec(f"echo '{host_b.address} restore-b.test' >> /etc/hosts")
    client.exec("cat > /tmp/restore-b-ca.crt", input=Path(ca_b).read_bytes())
    install = client.exec(
        "python3 -m venv /tmp/drill && /tmp/drill/bin/pip install --no-cache-dir --cert "
        "/tmp/restore-b-ca.crt --index-url \"https://dev:$PW@restore-b.test/simple/\" "
        + " ".join(f"{name}==2.0.0" for name in PROJECTS), check=False, env={"PW": password_b})
    assert install.returncode == 0, install.stdout + install.stderr

    again = fab("deploy", host=host_b, settings=settings)
    assert "done: 0 changed," in again.stdout, again.stdout

    # B now holds packages: replacing them takes the index's name, typed on purpose.
    unconfirmed = fab("restore", drill["archive"], "--from-other-index", host=host_b,
                      settings=settings)
    assert unconfirmed.returncode == 1
    assert re.fullmatch(r"Error on \S+: the index on \S+ holds \d+ projects: a restore "
                        r"replaces all it holds; confirm with --confirm=restore-b\.test\n",
                        unconfirmed.stderr), unconfirmed.stderr
    confirmed = fab("restore", drill["archive"], "--confirm=restore-b.test", "--from-other-index",
                    host=host_b, settings=settings)
    assert confirmed.returncode == 0, confirmed.stdout + confirmed.stderr
    assert files_of(host_b, ca_b, password_b, PROJECTS[0], "restore-b.test") \
        == drill["expected"][PROJECTS[0]]



def test_a_restore_keeps_the_index_s_api_tokens_as_they_are(drill, restored, fab):
    """Neither lost nor revived: the tokens of B stay B's, the revoked one stays revoked."""
    host_b, settings = restored
    ca_b = f"{settings['state_dir']}/restore-b.test/ca.crt"

    def token() -> str:
        made = fab("tokens.create", "--project", "ppc-drill-*", host=host_b, settings=settings)
        assert made.returncode == 0, made.stdout + made.stderr
        return re.search(r"user __token__\): (ppc1-\S+)", made.stdout)[1]

    def status(secret: str) -> int:
        return web.request(host_b.address, f"/simple/{PROJECTS[0]}/", ca=Path(ca_b),
                           sni="restore-b.test", host="restore-b.test",
                           auth=("__token__", secret)).status

    kept, revoked = token(), token()
    gone = fab("tokens.revoke", revoked.split("-")[1], host=host_b, settings=settings)
    assert gone.returncode == 0, gone.stdout + gone.stderr
    result = fab("restore", drill["archive"], "--confirm=restore-b.test", "--from-other-index",
                 host=host_b, settings=settings)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (status(kept), status(revoked)) == (200, 401)


def volume_state(host, volume: str = "pypicloud-data") -> str:
    """The server's start time and every file of the store, with its content."""
    return host.out("docker inspect --format '{{.State.StartedAt}}' pypicloud; "
                    f"cd /var/lib/docker/volumes/{volume}/_data && find . -type f | sort "
                    "| xargs sha256sum")


def test_a_consistent_signed_hostile_archive_is_refused_and_changes_nothing(
        drill, restored, fab, operator_home, tmp_path):
    """As someone holding the index's key would forge them: every one consistent with its
    manifest and signed, so that only the checks of what an index may hold stand."""
    host_b, settings = restored
    key = bytes.fromhex(json.loads((operator_home / "state" / SERVER_NAME / "secrets.json")
                                   .read_text())["backup_key"])
    archive = Path(drill["archive"])
    with tarfile.open(archive) as contents:
        database = contents.extractfile("db.sqlite").read()
    copy = tmp_path / "db.sqlite"
    copy.write_bytes(database)
    with sqlite3.connect(copy) as connection:
        connection.execute("INSERT INTO packages VALUES ('config.ini', '..', '..', "
                           "'2026-11-29 00:00:00', '', '{}')")
    cases = {
        "a member that leaves the store": ({"packages/../x": b"x"}, {}, "has no place in an index"),
        "a second database": ({"db.sqlite": b"SQLite format 3\0"}, {}, "holds db.sqlite twice"),
        "a row that climbs out": ({}, {"db.sqlite": copy.read_bytes()},
                                  "its database lists a release it may not"),
    }
    before = volume_state(host_b)
    for case, (added, replaced, reason) in cases.items():
        hostile = forged(archive, tmp_path / f"{case}.tar.gz", key, added, replaced)
        result = fab("restore", str(hostile), "--from-other-index", "--confirm=restore-b.test",
                     host=host_b, settings=settings)
        assert result.returncode == 1 and reason in result.stderr, (case, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    link = with_symlink(archive, tmp_path / "link.tar.gz",
                        "packages/ppc-drill-1/1.0.0/ppc_drill_1-9.tar.gz", "/etc/pypicloud/config.ini")
    result = fab("restore", str(link), "--from-other-index", "--confirm=restore-b.test",
                 host=host_b, settings=settings)
    assert result.returncode == 1 and "is no regular file" in result.stderr, result.stderr
    # Signed with another key, while it says it is B's own: refused whatever the flags say.
    own = json.loads(Path(settings["state_dir"], "restore-b.test", "secrets.json").read_text())
    claimed = tmp_path / "claimed.tar.gz"
    rewritten(archive, claimed, lambda name, content: [(name, content if name != archives.MANIFEST
                                                        else _claim(content, "restore-b.test"))])
    result = fab("restore", str(claimed), "--from-other-index", "--confirm=restore-b.test",
                 host=host_b, settings=settings)
    assert result.returncode == 1 and "its signature does not match that index's key" \
        in result.stderr, result.stderr
    assert own["backup_key"] not in result.stdout + result.stderr
    assert volume_state(host_b) == before


def on_first_close(path: Path, then) -> threading.Thread:
    """Run then() as soon as the first reader of `path` closes it (inotify's
    IN_CLOSE_NOWRITE): here, the moment fab has verified an archive."""
    libc = ctypes.CDLL(None, use_errno=True)
    watching = libc.inotify_init()
    assert watching >= 0 and libc.inotify_add_watch(watching, str(path).encode(), 0x10) >= 0

    def wait() -> None:
        os.read(watching, 4096)
        then()
        os.close(watching)

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    return thread


def own_backup(host_b, settings, fab) -> Path:
    made = fab("backup", host=host_b, settings=settings)
    assert made.returncode == 0, made.stdout + made.stderr
    return Path(re.search(r"backup\.archive\s+changed\s+(\S+\.tar\.gz):", made.stdout).group(1))


def test_an_archive_changed_after_it_was_verified_is_not_restored(drill, restored, fab, tmp_path):
    """Whoever can write where archives are kept swaps one the moment it has verified: the
    restore streams the bytes it verified, or nothing."""
    host_b, settings = restored
    other = own_backup(host_b, settings, fab)  # consistent and signed: the host takes it
    archive = tmp_path / "verified.tar.gz"
    archive.write_bytes(Path(drill["archive"]).read_bytes())
    swapped = on_first_close(archive, lambda: os.replace(other, archive))
    before = volume_state(host_b)
    result = fab("restore", str(archive), "--from-other-index", "--confirm=restore-b.test",
                 host=host_b, settings=settings)
    swapped.join(5)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stdout + result.stderr
    assert result.stderr.strip().endswith(
        f"was not restored: {archive} changed after it was checked (the bytes sent are not "
        f"those verified); the index on {host_b.target.split('@')[1]} was not touched"), result.stderr
    assert volume_state(host_b) == before


def test_an_archive_whose_key_this_machine_lost_is_restored_with_the_key_named(
        restored, fab, tmp_path):
    host_b, settings = restored
    archive = own_backup(host_b, settings, fab)
    secrets = Path(settings["state_dir"], "restore-b.test", "secrets.json")
    kept = tmp_path / "secrets-of-before.json"  # the copy in the operator's vault
    kept.write_bytes(secrets.read_bytes())
    try:  # a new identity here: another backup key
        rekeyed = json.loads(secrets.read_text())
        rekeyed["backup_key"] = os.urandom(32).hex()
        secrets.write_text(json.dumps(rekeyed))
        refused = fab("restore", str(archive), "--confirm=restore-b.test", host=host_b,
                      settings=settings)
        assert refused.returncode == 1 and "does not match that index's key" in refused.stderr
        wrong = tmp_path / "wrong.json"
        wrong.write_text(json.dumps({"backup_key": os.urandom(32).hex()}))
        named_wrong = fab("restore", str(archive), "--confirm=restore-b.test",
                          f"--key-file={wrong}", host=host_b, settings=settings)
        assert named_wrong.returncode == 1 and f"is not signed with the backup key in {wrong}" \
            in named_wrong.stderr, named_wrong.stderr
        named = fab("restore", str(archive), "--confirm=restore-b.test", f"--key-file={kept}",
                    host=host_b, settings=settings)
        assert named.returncode == 0, named.stdout + named.stderr
        assert f"is signed with the backup key in {kept} (sha256:" in named.stdout
        assert "restore.data       changed" in named.stdout
        assert rekeyed["backup_key"] not in named.stdout + named.stderr
        fingerprint = re.search(r"\((sha256:[0-9a-f]{16})\)", named.stdout).group(1)
        audit = host_b.out("tail -n 1 /var/log/ppc-tasks/audit.log")
        assert f"task=restore(backup-key={fingerprint})" in audit and "result=ok" in audit, audit
    finally:
        secrets.write_bytes(kept.read_bytes())


def _claim(manifest: bytes, index: str) -> bytes:
    """The manifest of another index, saying it is `index`'s (its signature left as it is)."""
    data = json.loads(manifest)
    data["index"] = index
    return json.dumps(data).encode()


@pytest.fixture(scope="module")
def small(start_host, fab, make_dists, tmp_path_factory):
    """An index whose data volume (tmpfs, 5 MB) holds one release of 2.6 MB: a restore of
    its own backup cannot be staged beside it. A container keeps the tmpfs mounted."""
    host = start_host("restore-small")
    host.exec("docker volume create --driver local --opt type=tmpfs --opt device=tmpfs "
              "--opt o=size=5m,uid=10001 small-data >/dev/null && docker run -d --name keeper "
              "-v small-data:/keep debian:bookworm-slim sleep infinity >/dev/null")
    settings = {"server_names": ["small.test", host.address], "users": ["dev"],
                "data_volume": "small-data", "build_ca_bundle": SYSTEM_CA_BUNDLE,
                "state_dir": str(tmp_path_factory.mktemp("small-state"))}
    deployed = fab("deploy", host=host, settings=settings)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    ca = Path(settings["state_dir"], "small.test", "ca.crt")
    password = json.loads(Path(settings["state_dir"], "small.test", "secrets.json")
                          .read_text())["passwords"]["dev"]
    wheel = make_dists("ppc-big", "1.0", payload_bytes=2_600_000)[1]
    body, headers = web.upload_form({":action": "file_upload", "name": "ppc-big", "version": "1.0"},
                                    wheel.name, wheel.read_bytes())
    uploaded = web.request(host.address, "/simple/", ca=ca, sni="small.test", host="small.test",
                           method="POST", body=body, headers=headers, auth=("dev", password))
    assert uploaded.status == 200, uploaded
    return host, settings, ca, password, built([wheel])


def test_a_restore_that_does_not_fit_leaves_the_old_index_serving(small, fab):
    host, settings, ca, password, expected = small
    made = fab("backup", host=host, settings=settings)
    assert made.returncode == 0, made.stdout + made.stderr
    archive = re.search(r"backup\.archive\s+changed\s+(\S+\.tar\.gz):", made.stdout).group(1)
    assert web.files_of(host.address, "ppc-big", ca=ca, name="small.test",
                        auth=("dev", password)) == expected
    before = volume_state(host, "small-data")

    result = fab("restore", archive, "--confirm=small.test", host=host, settings=settings)

    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().endswith(
        "was not restored: the archive does not fit in the data volume (no space left on it); "
        "the index on " + host.target.split("@")[1] + " was not touched"), result.stderr
    assert volume_state(host, "small-data") == before
    assert web.files_of(host.address, "ppc-big", ca=ca, name="small.test",
                        auth=("dev", password)) == expected
