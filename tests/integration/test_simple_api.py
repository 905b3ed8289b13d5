"""The simple API modern clients expect, proven with real clients on a developer machine
(uv and pip, configured by clients.configure, over verified HTTPS) and nginx's access log
on the index host: resolving reads metadata files, not wheels; --exclude-newer finds
upload times; a yank is honoured; ranges and HEAD work; hashes agree with the files.

What the index promises here:
- every page comes as HTML (the default, as pypicloud served it) or as PEP 691 JSON, for
  whoever asks, with the same files, hashes, metadata hashes, yanks and sizes;
- a wheel's .metadata is its own METADATA, byte for byte, and the page names its hash;
  a wheel whose METADATA names another project or version is refused at upload;
- only an admin yanks, through fab (audited) or the API; nothing below admin can;
- files stored before the index recorded them get their records when a server starts
  (an upgrade replaces it), and the next deploy goes on where a failed run stopped;
- a page or metadata file the server gave before (and keeps, to give again fast) shows
  every upload, delete and yank on the very next request, and is given to nobody who
  could not log in.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import time
import zipfile

import pytest

from . import harness, web
from .conftest import SERVER_NAME, password_of, steps
from .test_clients import as_dev, download_wheel

ACCESS_LOG = "/var/log/nginx/access.log"
JSON = "application/vnd.pypi.simple.v1+json"
PAYLOAD = 300_000  # random bytes in each wheel: a download shows
MODERN_PIP = "26.3"


@pytest.fixture(scope="module")
def developer(start_host, deployed, fab):
    """A developer machine configured by clients.configure (pip, twine, uv) as dev."""
    host = start_host("api-dev", kind="client", add_hosts={SERVER_NAME: deployed.host.address})
    host.exec("useradd -m -s /bin/sh dev && mkdir -p ~dev/.ssh "
              "&& cp /root/.ssh/authorized_keys ~dev/.ssh/ && chown -R dev: ~dev/.ssh "
              "&& echo 'dev ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/dev")
    configured = fab("clients.configure", host=f"dev@127.0.0.1:{host.port}",
                     settings=deployed.settings())
    assert configured.returncode == 0, configured.stdout + configured.stderr
    return host


class Index:
    def __init__(self, deployed):
        self.deployed, self.host = deployed, deployed.host

    def request(self, path: str, user: str = "dev", **kwargs) -> web.Response:
        return web.request(self.host.address, path, sni=SERVER_NAME, host=SERVER_NAME,
                           ca=self.deployed.operator_home / "state" / SERVER_NAME / "ca.crt",
                           auth=(user, password_of(self.deployed.operator_home, user)), **kwargs)

    def json_page(self, project: str) -> dict:
        page = self.request(f"/simple/{project}/", headers={"Accept": JSON})
        assert page.status == 200 and page.headers["content-type"].startswith(JSON), page
        return json.loads(page.body)

    def access_log(self) -> list[str]:
        return self.host.out(f"cat {ACCESS_LOG}").splitlines()

    def clear_access_log(self) -> None:
        self.host.exec(f": > {ACCESS_LOG}")


@pytest.fixture(scope="module")
def index(deployed) -> Index:
    return Index(deployed)


def twine(developer, files) -> None:
    developer.copy_in(files, "/tmp/upload")
    developer.exec("chown -R dev: /tmp/upload")
    names = " ".join(f"/tmp/upload/{path.name}" for path in files)
    uploaded = as_dev(developer, f"twine upload --disable-progress-bar -r internal {names}")
    developer.exec("rm -rf /tmp/upload")
    assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr


@pytest.fixture(scope="module")
def chain(developer, tmp_path_factory) -> dict[str, object]:
    """ppc-api-a 1.0 needs ppc-api-b, which (1.0 and 1.1) needs ppc-api-c (1.0, 1.1):
    wheels of 300 KB each, uploaded with twine by dev; and the moment between the
    uploads of ppc-api-c 1.1 and 1.2 (1.2 comes later, for --exclude-newer)."""
    directory = tmp_path_factory.mktemp("chain")
    releases = [("ppc-api-c", "1.0", ()), ("ppc-api-c", "1.1", ()),
                ("ppc-api-b", "1.0", ("ppc-api-c",)), ("ppc-api-b", "1.1", ("ppc-api-c>=1.0",)),
                ("ppc-api-a", "1.0", ("ppc-api-b",))]
    wheels = [harness.build_wheel(name, version, directory / name, requires=requires,
                                  payload=os.urandom(PAYLOAD))
              for name, version, requires in releases]
    twine(developer, wheels)
    time.sleep(1.5)
    cutoff = datetime.datetime.now(datetime.timezone.utc)
    time.sleep(1.5)
    newest = harness.build_wheel("ppc-api-c", "1.2", directory / "newest",
                                 payload=os.urandom(PAYLOAD))
    twine(developer, [newest])
    return {"wheels": [*wheels, newest], "cutoff": cutoff}


def downloads(log: list[str]) -> list[str]:
    """The paths of package files served (uv asks without credentials first: a 401)."""
    return [match[1] for line in log
            if (match := re.search(r'"GET (/api/package/\S+) HTTP/[\d.]+" 200 ', line))]


def bytes_sent(log: list[str]) -> int:
    """nginx's combined format: ... "REQUEST" STATUS BYTES ..."""
    return sum(int(match[1]) for line in log if (match := re.search(r'" \d{3} (\d+) ', line)))


def compile_with_uv(developer, requirement: str, *options: str) -> str:
    result = as_dev(developer, f"echo '{requirement}' | uv pip compile --no-cache --quiet "
                               f"--python-version 3.11 {' '.join(options)} -")
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.decode()


def pins(requirements: str) -> set[str]:
    return {line.strip() for line in requirements.splitlines() if "==" in line and not line.startswith("#")}


def test_uv_resolves_from_metadata_files_and_downloads_no_wheel(chain, developer, index):
    index.clear_access_log()
    resolved = compile_with_uv(developer, "ppc-api-a")
    assert pins(resolved) == {"ppc-api-a==1.0", "ppc-api-b==1.1", "ppc-api-c==1.2"}, resolved
    log = index.access_log()
    fetched = downloads(log)
    assert sorted(path.rsplit("/", 1)[1] for path in fetched) == [
        "ppc_api_a-1.0-py3-none-any.whl.metadata", "ppc_api_b-1.1-py3-none-any.whl.metadata",
        "ppc_api_c-1.2-py3-none-any.whl.metadata"], log
    # A resolve costs pages and metadata: under 5% of the wheels it chose.
    assert bytes_sent(log) < 0.05 * 3 * PAYLOAD, log


@pytest.fixture(scope="module")
def modern_pip(developer, index, tmp_path_factory) -> str:
    """A venv of dev's with a current pip, which a developer upgrades to through the
    index: the wheel, fetched on this machine and uploaded as dev (Debian's twine 4.0
    cannot read its Metadata 2.4)."""
    wheel, = download_wheel(f"pip=={MODERN_PIP}", tmp_path_factory.mktemp("pip"))
    body, headers = web.upload_form({":action": "file_upload", "name": "pip",
                                     "version": MODERN_PIP}, wheel.name, wheel.read_bytes())
    assert index.request("/simple/", method="POST", body=body, headers=headers).status == 200
    upgraded = as_dev(developer, f"python3 -m venv ~/modern && ~/modern/bin/pip install -q "
                                 f"--no-cache-dir pip=={MODERN_PIP}")
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    return "~/modern/bin/pip"


def test_pip_dry_run_reads_metadata_files_only(chain, developer, index, modern_pip):
    index.clear_access_log()
    result = as_dev(developer, f"{modern_pip} install --dry-run --no-cache-dir ppc-api-a")
    assert result.returncode == 0, result.stdout + result.stderr
    assert b"Would install ppc-api-a-1.0 ppc-api-b-1.1 ppc-api-c-1.2" in result.stdout, result.stdout
    fetched = downloads(index.access_log())
    assert fetched and all(path.endswith(".whl.metadata") for path in fetched), fetched


def test_debians_own_pip_still_installs(chain, developer):
    """pip 23.0 reads the JSON page but not PEP 714's key (and fails on PEP 658's old
    one, which the JSON page therefore never has): it downloads the wheels, as before."""
    result = as_dev(developer, "python3 -m pip --version && python3 -m pip install --dry-run "
                               "--no-cache-dir --user --break-system-packages ppc-api-a")
    assert result.returncode == 0 and b"pip 23.0.1" in result.stdout, result.stdout + result.stderr
    assert b"Would install ppc-api-a-1.0 ppc-api-b-1.1 ppc-api-c-1.2" in result.stdout, result.stdout


def test_exclude_newer_resolves_with_the_upload_times(chain, developer):
    cutoff = chain["cutoff"].strftime("%Y-%m-%dT%H:%M:%SZ")
    before = compile_with_uv(developer, "ppc-api-a", "--exclude-newer", cutoff)
    assert pins(before) == {"ppc-api-a==1.0", "ppc-api-b==1.1", "ppc-api-c==1.1"}, before


def test_a_metadata_file_is_the_wheels_own_and_both_pages_name_its_hash(chain, index):
    wheel = next(path for path in chain["wheels"] if path.name == "ppc_api_b-1.1-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read("ppc_api_b-1.1.dist-info/METADATA")
    expected = hashlib.sha256(metadata).hexdigest()
    page = index.json_page("ppc-api-b")
    entry = next(file for file in page["files"] if file["filename"] == wheel.name)
    assert entry["core-metadata"] == {"sha256": expected} and "dist-info-metadata" not in entry
    assert entry["hashes"] == {"sha256": hashlib.sha256(wheel.read_bytes()).hexdigest()}
    assert entry["size"] == wheel.stat().st_size and entry["upload-time"].endswith("Z")
    assert page["versions"] == ["1.0", "1.1"] and page["meta"] == {"api-version": "1.1"}
    served = index.request(re.sub(r"^https://[^/]+", "", entry["url"]) + ".metadata")
    assert served.status == 200 and served.body == metadata
    # Asked under another project's name (which the client may read), it is not served.
    elsewhere = index.request(f"/api/package/ppc-api-a/{wheel.name}.metadata")
    assert elsewhere.status == 404, elsewhere
    # The HTML page, as every pip before PEP 691 reads it: the default, with the same.
    html = index.request("/simple/ppc-api-b/")
    assert html.status == 200 and html.headers["content-type"].startswith("text/html")
    assert "accept" in html.headers.get("vary", "").lower()
    link = re.search(rf'<a href="[^"]*/{re.escape(wheel.name)}#sha256={entry["hashes"]["sha256"]}"'
                     rf'[^>]*data-core-metadata="sha256={expected}"', html.body.decode())
    assert link, html.body.decode()


def test_package_files_answer_head_and_byte_ranges(chain, index):
    wheel = chain["wheels"][0]
    path = f"/api/package/ppc-api-c/{wheel.name}"
    head = index.request(path, method="HEAD")
    assert head.status == 200 and head.headers.get("accept-ranges") == "bytes", head.headers
    assert int(head.headers["content-length"]) == wheel.stat().st_size
    tail = index.request(path, headers={"Range": "bytes=-2000"})
    assert tail.status == 206 and tail.body == wheel.read_bytes()[-2000:], tail.headers


def test_only_an_admin_yanks_and_clients_skip_the_release(chain, developer, index, deployed, fab,
                                                          modern_pip):
    # The account every developer machine holds may not, through the API.
    refused = index.request("/admin/yank/ppc-api-b/1.1", method="PUT", body=b'{"reason": "x"}',
                            headers={"Content-Type": "application/json"})
    assert refused.status == 403, refused
    assert index.json_page("ppc-api-b")["files"][1]["yanked"] is False

    yanked = fab("packages.yank", "ppc-api-b==1.1", "--reason", "broken build", host=deployed.host,
                 settings=deployed.settings())
    assert yanked.returncode == 0, yanked.stdout + yanked.stderr
    assert steps(yanked.stdout) == {"packages.yank": "changed"}, yanked.stdout
    again = fab("packages.yank", "ppc-api-b==1.1", "--reason", "broken build", host=deployed.host,
                settings=deployed.settings())
    assert steps(again.stdout) == {"packages.yank": "unchanged"}, again.stdout
    assert "packages.yank" in deployed.host.out("tail -2 /var/log/ppc-tasks/audit.log")
    files = {file["filename"]: file["yanked"] for file in index.json_page("ppc-api-b")["files"]}
    assert files["ppc_api_b-1.1-py3-none-any.whl"] == "broken build"
    assert 'data-yanked="broken build"' in index.request("/simple/ppc-api-b/").body.decode()

    # uv and pip pass it by, unless a requirement pins it exactly.
    assert pins(compile_with_uv(developer, "ppc-api-a")) == {
        "ppc-api-a==1.0", "ppc-api-b==1.0", "ppc-api-c==1.2"}
    pinned = as_dev(developer, f"{modern_pip} install --dry-run --no-cache-dir ppc-api-b==1.1")
    assert pinned.returncode == 0, pinned.stdout + pinned.stderr
    assert b"Reason for being yanked: broken build" in pinned.stderr, pinned.stderr
    unpinned = as_dev(developer, f"{modern_pip} install --dry-run --no-cache-dir ppc-api-b")
    assert b"Would install ppc-api-b-1.0 " in unpinned.stdout, unpinned.stdout + unpinned.stderr

    taken_back = fab("packages.unyank", "ppc-api-b==1.1", host=deployed.host,
                     settings=deployed.settings())
    assert steps(taken_back.stdout) == {"packages.yank": "changed"}, taken_back.stdout
    assert pins(compile_with_uv(developer, "ppc-api-a")) >= {"ppc-api-b==1.1"}


def test_a_page_given_again_shows_every_change_on_the_next_request(developer, index, tmp_path):
    project = "ppc-api-kept"
    first, second = (harness.build_wheel(project, version, tmp_path / version)
                     for version in ("1.0", "1.1"))
    metadata = f"/api/package/{project}/{second.name}.metadata"

    def listed() -> list[str]:
        return sorted(file["filename"] for file in index.json_page(project)["files"])

    def asked_twice(path: str) -> web.Response:
        answers = [index.request(path) for _ in range(2)]
        assert answers[0].status == answers[1].status and answers[0].body == answers[1].body
        return answers[1]

    assert f'href="{project}/"' not in asked_twice("/simple/").body.decode()
    twine(developer, [first])
    assert f'href="{project}/"' in index.request("/simple/").body.decode()
    assert listed() == listed() == [first.name]
    assert asked_twice(f"/simple/{project}/").status == 200
    # Whoever cannot log in gets nothing of what was given before.
    for auth in (("dev", "not-the-password"), None):
        refused = web.request(index.host.address, f"/simple/{project}/", sni=SERVER_NAME,
                              host=SERVER_NAME, auth=auth,
                              ca=index.deployed.operator_home / "state" / SERVER_NAME / "ca.crt")
        assert refused.status == 401, refused

    twine(developer, [second])
    assert listed() == [first.name, second.name]
    assert second.name in index.request(f"/simple/{project}/").body.decode()
    # Any spelling of the name: the same page, kept once for all of them.
    assert index.request("/simple/PPC_Api.Kept/").body == index.request(f"/simple/{project}/").body
    assert asked_twice(metadata).status == 200

    yank = index.request(f"/admin/yank/{project}/1.1", user="admin", method="PUT",
                         body=b'{"reason": "kept no more"}',
                         headers={"Content-Type": "application/json"})
    assert yank.status == 200, yank
    yanked = {file["filename"]: file["yanked"] for file in index.json_page(project)["files"]}
    assert yanked[second.name] == "kept no more"

    deleted = index.request(f"/api/package/{project}/{second.name}", user="admin",
                            method="DELETE")
    assert deleted.status == 200, deleted
    assert listed() == [first.name]
    assert second.name not in index.request(f"/simple/{project}/").body.decode()
    assert index.request(metadata).status == 404


def test_an_unexpected_error_is_told_to_the_log_not_to_the_client(developer, index, tmp_path):
    """A file the store lost: pypicloud fails reading it, and would answer with its error
    (the file's path on the server); the client gets a bare 500, the server's log the
    error."""
    wheel = harness.build_wheel("ppc-api-lost", "1.0", tmp_path)
    twine(developer, [wheel])
    stored = index.host.out(f"docker exec pypicloud find /var/lib/pypicloud -name {wheel.name}")
    index.host.exec(f"docker exec pypicloud mv {stored} /tmp/lost.whl")
    try:
        failed = index.request(f"/api/package/ppc-api-lost/{wheel.name}")
        assert failed.status == 500, failed
        assert json.loads(failed.body) == {
            "message": "the server failed to answer: its log says why"}, failed
        logged = index.host.out("docker logs --since 2m pypicloud 2>&1")
        assert f"No such file or directory: '{stored}'" in logged, logged[-2000:]
    finally:
        index.host.exec(f"docker exec pypicloud mv /tmp/lost.whl {stored}")
    assert index.request(f"/api/package/ppc-api-lost/{wheel.name}").body == wheel.read_bytes()


def test_a_yank_of_what_the_index_does_not_hold_is_one_line(chain, deployed, fab):
    missing = fab("packages.yank", "ppc-api-b==9.9", host=deployed.host, settings=deployed.settings())
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().endswith("the index holds no release 9.9 of ppc-api-b"), missing.stderr
    malformed = fab("packages.yank", "ppc-api-b>=1", host=deployed.host, settings=deployed.settings())
    assert malformed.returncode == 2 and "NAME==VERSION" in malformed.stderr, malformed.stderr


def test_a_wheel_whose_metadata_names_another_project_is_refused(index, tmp_path):
    wheel = tmp_path / "ppc_api_evil-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("ppc_api_evil-1.0.dist-info/METADATA",
                         "Metadata-Version: 2.1\nName: ppc-api-a\nVersion: 1.0\nRequires-Dist: evil\n")
    body, headers = web.upload_form({":action": "file_upload", "name": "ppc-api-evil",
                                     "version": "1.0"}, wheel.name, wheel.read_bytes())
    refused = index.request("/simple/", method="POST", body=body, headers=headers)
    assert refused.status == 400, refused
    assert index.request("/simple/ppc-api-evil/").status != 200  # nothing stored


def sqlite(host, statement: str) -> str:
    return host.out("docker exec pypicloud /opt/pypicloud/bin/python -c \"import sqlite3, sys; "
                    "c = sqlite3.connect('/var/lib/pypicloud/db.sqlite'); "
                    f"print(*c.execute('{statement}').fetchall(), sep=chr(10)); c.commit()\"")


def metadata_hashes(index, project: str) -> dict[str, object]:
    return {file["filename"]: file["core-metadata"] for file in index.json_page(project)["files"]}


def test_files_from_before_get_their_records_when_the_server_starts_resuming_after_a_fault(
        chain, index, deployed, fab):
    """The state an index from before the records is in (none), with one stored file the
    server cannot read: the server that starts records the others and names that one;
    the next deploy reads only what is left, once it is readable; then nothing."""
    host = deployed.host
    recorded = metadata_hashes(index, "ppc-api-c")
    sqlite(host, "DELETE FROM ppc_files")
    # As a write by the guard would: what the server gave before is not given again.
    sqlite(host, "UPDATE ppc_generation SET token = hex(randomblob(16))")
    assert set(metadata_hashes(index, "ppc-api-c").values()) == {False}
    volume = host.out("docker volume inspect --format '{{.Mountpoint}}' pypicloud-data")
    locked = f"{volume}/packages/ppc-api-c/1.1/ppc_api_c-1.1-py3-none-any.whl"
    host.exec(f"chmod 000 {locked} && chown root:root {locked}")
    try:
        assert fab("server.remove", host=host, settings=deployed.settings()).returncode == 0
        failed = fab("deploy", host=host, settings=deployed.settings())
        assert failed.returncode == 1 and "Traceback" not in failed.stderr
        assert steps(failed.stdout)["server.container"] == "changed", failed.stdout
        assert "some stored files could not be read" in failed.stderr
        assert "ppc_api_c-1.1-py3-none-any.whl" in failed.stderr, failed.stderr
    finally:
        host.exec(f"chown 10001:10001 {locked} && chmod 644 {locked}")
    partly = metadata_hashes(index, "ppc-api-c")
    assert partly["ppc_api_c-1.1-py3-none-any.whl"] is False
    assert partly["ppc_api_c-1.0-py3-none-any.whl"] == recorded["ppc_api_c-1.0-py3-none-any.whl"]

    resumed = fab("deploy", host=host, settings=deployed.settings())
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert steps(resumed.stdout)["server.records"] == "changed", resumed.stdout
    assert "the files a run before could not read" in resumed.stdout, resumed.stdout
    assert metadata_hashes(index, "ppc-api-c") == recorded
    again = fab("deploy", host=host, settings=deployed.settings())
    assert "done: 0 changed," in again.stdout, again.stdout


# -- fallback = cache, for real --------------------------------------------------------------
CUT_OFF = "iptables -I DOCKER-USER -i docker0 ! -o docker0 -j REJECT"  # containers' way out


# Names PyPI holds, private here: never looked up there, however a client spells them.
PRIVATE = {"idna": "idna-3.10-py3-none-any.whl",
           "typing-extensions": "typing_extensions-4.12.2-py3-none-any.whl"}


@pytest.fixture(scope="module")
def caching(deployed, developer, fab):
    """The shared index with fallback = cache (its server image trusts the build's CA
    bundle for PyPI: this network intercepts TLS) and names of PyPI's private here; put
    back as it was afterwards."""
    cached = fab("deploy", host=deployed.host, settings=deployed.settings(
        fallback="cache", private_names=list(PRIVATE)))
    assert cached.returncode == 0, cached.stdout + cached.stderr
    yield
    deployed.host.exec(CUT_OFF.replace("-I", "-D"), check=False)
    restored = fab("deploy", host=deployed.host, settings=deployed.settings())
    assert restored.returncode == 0, restored.stdout + restored.stderr


def test_a_cached_public_package_installs_with_the_upstream_cut_off(caching, developer, index,
                                                                    deployed):
    first = as_dev(developer, "python3 -m venv ~/cached1 && ~/cached1/bin/pip install -q "
                              "--no-cache-dir six==1.17.0 && ~/cached1/bin/python -c 'import six'")
    assert first.returncode == 0, first.stdout + first.stderr
    # Stored here now, with PyPI's upload time and its own metadata file.
    wheel = next(file for file in index.json_page("six")["files"]
                 if file["filename"] == "six-1.17.0-py2.py3-none-any.whl")
    assert wheel["upload-time"].startswith("2024-12-04T") and wheel["core-metadata"]
    # PyPI's own yank of a release stays on the copy: pip warns with PyPI's reason.
    yanked = as_dev(developer, "~/cached1/bin/pip download -q --no-cache-dir --no-deps -d /tmp/y "
                               "requests==2.32.0")
    assert yanked.returncode == 0, yanked.stdout + yanked.stderr
    assert b"CVE-2024-35195" in yanked.stderr, yanked.stderr
    files = {file["filename"]: file["yanked"] for file in index.json_page("requests")["files"]}
    assert "CVE-2024-35195" in files["requests-2.32.0-py3-none-any.whl"], files

    deployed.host.exec(CUT_OFF)
    try:
        cut = deployed.host.exec("docker exec pypicloud /opt/pypicloud/bin/python -c \"import "
                                 "urllib.request; urllib.request.urlopen('https://pypi.org/', "
                                 "timeout=5)\"", check=False)
        assert cut.returncode != 0, "the server still reaches PyPI"
        again = as_dev(developer, "python3 -m venv ~/cached2 && ~/cached2/bin/pip install -q "
                                  "--no-cache-dir six==1.17.0 && ~/cached2/bin/python -c 'import six'")
        assert again.returncode == 0, again.stdout + again.stderr
    finally:
        deployed.host.exec(CUT_OFF.replace("-I", "-D"))


def spellings(name: str) -> list[str]:
    """Ways a client can write a project name in a path: as it is, in upper case, with
    `_` or `.` for `-`, and its first letter percent-encoded once and twice."""
    first = f"{ord(name[0]):02X}"
    return [name, name.upper(), name.replace("-", "_"), name.replace("-", "."),
            f"%{first}{name[1:]}", f"%25{first}{name[1:]}"]


def test_a_private_name_is_never_fetched_upstream_however_spelled(caching, developer, index):
    for name, filename in PRIVATE.items():
        # Every spelling of its name, and a public name with its file.
        for path in [*(f"/api/package/{spelled}/{filename}" for spelled in spellings(name)),
                     f"/api/package/six/{filename}"]:
            answer = index.request(path)
            assert answer.status in (400, 404), (path, answer)
        for spelled in spellings(name):
            assert index.request(f"/simple/{spelled}/").status in (400, 404), spelled
    # Nothing was fetched: the index holds none of them, and pip finds none.
    stored = index.host.out("docker exec pypicloud find /var/lib/pypicloud/packages -name "
                            "'idna*' -o -name 'typing_extensions*'")
    assert stored == ""
    install = as_dev(developer, "python3 -m venv ~/private && ~/private/bin/pip install "
                                "--no-cache-dir idna 2>&1")
    assert install.returncode != 0 and b"No matching distribution found for idna" \
        in install.stdout, install.stdout



def test_fallback_mirror_deploys_and_lists_upstream_releases_beside_the_held_ones(
        caching, deployed, fab, developer, index):
    mirrored = fab("deploy", host=deployed.host, settings=deployed.settings(
        fallback="mirror", private_names=list(PRIVATE)))
    assert mirrored.returncode == 0, mirrored.stdout + mirrored.stderr
    # six 1.17.0 is held (cached above); PyPI's older releases are listed beside it, and
    # pip installs one of them through the index.
    listed = {file["filename"] for file in index.json_page("six")["files"]}
    assert {"six-1.17.0-py2.py3-none-any.whl", "six-1.16.0-py2.py3-none-any.whl"} <= listed, listed
    older = as_dev(developer, "python3 -m venv ~/mirror && ~/mirror/bin/pip install -q "
                              "--no-cache-dir six==1.16.0 && ~/mirror/bin/python -c 'import six'")
    assert older.returncode == 0, older.stdout + older.stderr
    for name in PRIVATE:  # and private names stay home
        assert index.request(f"/simple/{name}/").status == 404, name
