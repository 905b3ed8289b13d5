"""The guard's simple API without a server (docker/server/ppc_guard/): what it reads from a
distribution (distributions.py), the pages it makes of what the index holds (pages.py,
views.listed_files), checked against the PEPs' own words."""

import bz2
import datetime
import gzip
import hashlib
import io
import lzma
import sys
import tarfile
import zipfile

import pytest

from ppc_tasks.render import DOCKER_DIR
from tests.dists import build_wheel

sys.path.insert(0, str(DOCKER_DIR / "server"))
from ppc_guard import distributions, pages, upstream, views  # noqa: E402  (the image's, not ours)
from ppc_guard.registry import FileRecord  # noqa: E402

sys.path.remove(str(DOCKER_DIR / "server"))
UPLOADED = datetime.datetime(2026, 11, 29, 12, 30, 5, 250000, tzinfo=datetime.timezone.utc)


def read(path):
    with open(path, "rb") as stream:
        return distributions.read(path.name, stream)


def zipped(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def sdist(path, pkg_info: bytes | None):
    root = path.name[:-len(".tar.gz")]
    return tar(path, gzip.open, {f"{root}/setup.py": b"",
                                 **({f"{root}/PKG-INFO": pkg_info} if pkg_info else {})})


def tar(path, opener, members: dict[str, bytes]):
    """A tar of these members, compressed by `opener` (gzip.open, bz2.open, lzma.open)
    whatever `path`'s suffix says; GNU format, so long names get headers of their own."""
    with opener(path, "wb") as compressed, tarfile.open(fileobj=compressed, mode="w",
                                                       format=tarfile.GNU_FORMAT) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


# -- what a distribution says about itself -------------------------------------------------
def test_a_wheel_gives_its_metadata_byte_for_byte_with_size_and_hash(tmp_path):
    wheel = build_wheel("acme-tools", "1.0", tmp_path, requires=("acme-core>=2",))
    found = read(wheel)
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read("acme_tools-1.0.dist-info/METADATA")
    assert found.metadata == metadata and b"Requires-Dist: acme-core>=2" in metadata
    assert found.metadata_sha256 == hashlib.sha256(metadata).hexdigest()
    assert found.size == wheel.stat().st_size
    assert found.sha256 == hashlib.sha256(wheel.read_bytes()).hexdigest()


def test_the_stream_is_left_at_its_start_for_the_store(tmp_path):
    wheel = build_wheel("acme-tools", "1.0", tmp_path)
    with open(wheel, "rb") as stream:
        distributions.read(wheel.name, stream)
        assert stream.tell() == 0


@pytest.mark.parametrize("members, reason", [
    ({"acme_tools/__init__.py": b""}, "holds 0 .dist-info/METADATA files, not one"),
    ({"acme_tools-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: acme-tools\nVersion: 1.0\n",
      "other-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: other\nVersion: 1.0\n"},
     "holds 2 .dist-info/METADATA files, not one"),
    ({"acme_tools-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n"},
     "is no wheel of acme-tools 1.0: its metadata says evil 1.0"),
    ({"acme_tools-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: acme-tools\nVersion: 2.0\n"},
     "is no wheel of acme-tools 1.0: its metadata says acme-tools 2.0"),
    ({"acme_tools-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nSummary: x\n"},
     "its metadata names no project or version"),
    ({"acme_tools-1.0.dist-info/METADATA": b"Name: acme-tools\nVersion: 1.0\nSummary: \xff\n"},
     "its metadata is not UTF-8"),
])
def test_a_wheel_that_contradicts_its_name_is_refused_naming_why(tmp_path, members, reason):
    wheel = zipped(tmp_path / "acme_tools-1.0-py3-none-any.whl", members)
    with pytest.raises(distributions.NotADistribution, match=reason):
        read(wheel)


def test_a_wheel_that_is_no_zip_or_a_metadata_bomb_is_refused(tmp_path):
    fake = tmp_path / "acme_tools-1.0-py3-none-any.whl"
    fake.write_bytes(b"not a zip at all")
    with pytest.raises(distributions.NotADistribution, match="not a zip archive"):
        read(fake)
    huge = b"Metadata-Version: 2.1\nName: acme-tools\nVersion: 1.0\n" + b"x" * (5 * 1024 * 1024)
    bomb = zipped(tmp_path / "acme_tools-1.0-py3-none-any.whl",
                  {"acme_tools-1.0.dist-info/METADATA": huge})
    with pytest.raises(distributions.NotADistribution, match="metadata is over"):
        read(bomb)


def test_a_wheel_with_a_build_tag_and_an_escaped_name_is_read(tmp_path):
    wheel = build_wheel("Acme.Tools", "1.0", tmp_path, build="1", tag="cp311-cp311-manylinux_2_17_x86_64")
    assert read(wheel).metadata.startswith(b"Metadata-Version")


@pytest.mark.parametrize("pkg_info, served", [
    (b"Metadata-Version: 2.2\nName: acme-tools\nVersion: 1.0\nRequires-Dist: six\n", True),
    (b"Metadata-Version: 2.4\nName: acme-tools\nVersion: 1.0\n", True),
    # What a build makes may differ: nothing is served, clients build (PEP 643).
    (b"Metadata-Version: 2.2\nName: acme-tools\nVersion: 1.0\nDynamic: Requires-Dist\n", False),
    (b"Metadata-Version: 2.1\nName: acme-tools\nVersion: 1.0\n", False),
    (b"Metadata-Version: 2.2\nName: other\nVersion: 1.0\n", False),
    (None, False),
])
def test_an_sdist_serves_metadata_only_when_it_is_static(tmp_path, pkg_info, served):
    found = read(sdist(tmp_path / "acme_tools-1.0.tar.gz", pkg_info))
    assert found.metadata == (pkg_info if served else None)


STATIC = b"Metadata-Version: 2.2\nName: acme-tools\nVersion: 1.0\n"


@pytest.mark.parametrize("suffix, opener", [(".tar.gz", gzip.open), (".tgz", gzip.open),
                                            (".tar.bz2", bz2.open), (".tar.xz", lzma.open)])
def test_each_sdist_suffix_is_read_with_its_own_compression(tmp_path, suffix, opener):
    found = read(tar(tmp_path / f"acme_tools-1.0{suffix}", opener,
                     {"acme_tools-1.0/PKG-INFO": STATIC}))
    assert found.metadata == STATIC


@pytest.mark.parametrize("suffix", [".tar.gz", ".tgz", ".tar.bz2", ".tar.xz"])
@pytest.mark.parametrize("opener", [gzip.open, bz2.open, lzma.open])
def test_an_sdist_compressed_otherwise_than_its_name_says_is_not_read(tmp_path, monkeypatch,
                                                                      suffix, opener):
    """The suffix says how it is read, and nothing else: under another name, a stream is
    not unpacked at all (a tar header of 300 MB in it never reaches memory)."""
    monkeypatch.setattr(distributions, "MAX_TAR_READ", 100_000)
    path = tar(tmp_path / f"acme_tools-1.0{suffix}", opener,
               {"acme_tools-1.0/" + "a" * 200_000: b"", "acme_tools-1.0/PKG-INFO": STATIC})
    expected = {".tar.gz": gzip.open, ".tgz": gzip.open, ".tar.bz2": bz2.open,
                ".tar.xz": lzma.open}[suffix]
    if opener is expected:
        with pytest.raises(distributions.OverLimit):
            read(path)
    else:
        assert read(path).metadata is None


def test_a_tar_header_over_the_cap_is_refused_before_it_is_read(tmp_path):
    name = "acme_tools-1.0/" + "a" * distributions.MAX_TAR_READ  # its own long-name header
    path = tar(tmp_path / "acme_tools-1.0.tar.gz", gzip.open,
               {name: b"", "acme_tools-1.0/PKG-INFO": STATIC})
    with pytest.raises(distributions.OverLimit) as refused:
        read(path)
    assert str(refused.value) == ("acme_tools-1.0.tar.gz: a tar header asks to read 8389120 "
                                  "bytes at once (at most 8388608 are read)")


def test_members_and_bytes_before_the_pkg_info_are_capped(tmp_path, monkeypatch):
    members = {f"acme_tools-1.0/file{number}": b"x" * 4000 for number in range(5)}
    path = tar(tmp_path / "acme_tools-1.0.tar.gz", gzip.open,
               {**members, "acme_tools-1.0/PKG-INFO": STATIC})
    assert read(path).metadata == STATIC
    monkeypatch.setattr(distributions, "MAX_TAR_MEMBERS", 4)
    with pytest.raises(distributions.OverLimit, match="over 4 members before its PKG-INFO"):
        read(path)
    monkeypatch.setattr(distributions, "MAX_TAR_MEMBERS", 100)
    monkeypatch.setattr(distributions, "MAX_TAR_BYTES", 10_000)
    with pytest.raises(distributions.OverLimit, match="not within its first 10000 bytes unpacked"):
        read(path)


def test_a_damaged_sdist_is_taken_without_metadata(tmp_path):
    broken = tmp_path / "acme_tools-1.0.tar.gz"
    broken.write_bytes(b"\x1f\x8b not really gzip")
    found = read(broken)
    assert found.metadata is None and found.size == len(b"\x1f\x8b not really gzip")


# -- pages ---------------------------------------------------------------------------------
def listed(filename="acme_tools-1.0-py3-none-any.whl", version="1.0", **values):
    defaults = dict(url=f"https://pypi.test/api/package/acme-tools/{filename}", sha256="ab" * 32,
                    requires_python=">=3.9", size=1234, uploaded=UPLOADED,
                    metadata_sha256="cd" * 32, yanked=None)
    return pages.ListedFile(filename=filename, version=version, **{**defaults, **values})


def test_the_json_page_has_pep_691_and_700_fields():
    page = pages.project_json("acme-tools", [
        listed(), listed("acme_tools-1.0.tar.gz", metadata_sha256=None, requires_python=None),
        listed("acme_tools-1.10-py3-none-any.whl", "1.10", yanked="broken build"),
        listed("acme_tools-1.9-py3-none-any.whl", "1.9", yanked="")])
    assert page["meta"] == {"api-version": "1.1"} and page["name"] == "acme-tools"
    assert page["versions"] == ["1.0", "1.9", "1.10"]  # as PEP 440 orders them
    wheel, sdist_file, newest, older = page["files"]
    assert wheel == {
        "filename": "acme_tools-1.0-py3-none-any.whl",
        "url": "https://pypi.test/api/package/acme-tools/acme_tools-1.0-py3-none-any.whl",
        "hashes": {"sha256": "ab" * 32}, "requires-python": ">=3.9",
        "core-metadata": {"sha256": "cd" * 32},
        "yanked": False, "size": 1234, "upload-time": "2026-11-29T12:30:05.250000Z"}
    assert sdist_file["core-metadata"] is False
    # Never PEP 658's old JSON key: pip 23.0 (Debian 12's) fails on it.
    assert all("dist-info-metadata" not in file for file in page["files"])
    assert "requires-python" not in sdist_file
    assert newest["yanked"] == "broken build" and older["yanked"] is True


def test_the_html_page_carries_the_same_in_data_attributes():
    html = pages.project_html("acme-tools", [
        listed(requires_python=">=3.9,<4", yanked='bad "quote" <b>'),
        listed("acme_tools-1.0.tar.gz", metadata_sha256=None, requires_python=None)]).decode()
    assert '<meta name="pypi:repository-version" content="1.1">' in html
    assert (f'<a href="https://pypi.test/api/package/acme-tools/acme_tools-1.0-py3-none-any.whl'
            f'#sha256={"ab" * 32}" data-requires-python="&gt;=3.9,&lt;4" '
            f'data-core-metadata="sha256={"cd" * 32}" data-dist-info-metadata="sha256={"cd" * 32}" '
            f'data-yanked="bad &#34;quote&#34; &lt;b&gt;">acme_tools-1.0-py3-none-any.whl</a>') in html
    assert ('acme_tools-1.0.tar.gz#sha256=' + "ab" * 32 + '">acme_tools-1.0.tar.gz</a>') in html


def test_the_index_page_lists_projects_in_both_forms():
    assert pages.index_json(["a", "b"]) == {"meta": {"api-version": "1.1"},
                                            "projects": [{"name": "a"}, {"name": "b"}]}
    assert '<a href="b/">b</a>' in pages.index_html(["a", "b"]).decode()


def test_listed_files_join_pypiclouds_entries_with_the_records_and_yanks():
    found = {
        "acme_tools-1.0-py3-none-any.whl": {
            "url": "https://pypi.test/api/package/acme-tools/acme_tools-1.0-py3-none-any.whl#sha256=" + "ab" * 32,
            "non_hashed_url": "https://pypi.test/api/package/acme-tools/acme_tools-1.0-py3-none-any.whl",
            "requires_python": None, "hash_sha256": "ab" * 32, "version": "1.0", "uploaded": UPLOADED},
        # a file of the upstream index (fallback = cache), not stored here yet
        "acme_tools-2.0.tar.gz": {"url": "https://files.example/acme_tools-2.0.tar.gz",
                                  "requires_python": ">=3.8", "hash_sha256": "ef" * 32},
    }
    recorded = {"acme_tools-1.0-py3-none-any.whl": FileRecord(99, "cd" * 32)}
    files = {file.filename: file for file in views.listed_files(found, recorded, {"1.0.0": "old"})}
    wheel, upstream = files["acme_tools-1.0-py3-none-any.whl"], files["acme_tools-2.0.tar.gz"]
    assert (wheel.size, wheel.metadata_sha256, wheel.yanked, wheel.uploaded) == (99, "cd" * 32, "old", UPLOADED)
    assert wheel.url.endswith(".whl")  # the hash goes into "hashes", not a fragment
    assert (upstream.version, upstream.size, upstream.metadata_sha256, upstream.yanked) == ("2.0", None, None, None)


# -- the upstream index (fallback = cache, mirror) ------------------------------------------
UPSTREAM_PAGE = {"meta": {"api-version": "1.1"}, "name": "requests", "files": [
    {"filename": "requests-2.32.0-py3-none-any.whl", "url": "../../packages/r/requests-2.32.0-py3-none-any.whl",
     "hashes": {"sha256": "f2"}, "requires-python": ">=3.8", "yanked": "CVE-2024-35195",
     "size": 63695, "upload-time": "2024-05-20T16:08:19.530618Z", "core-metadata": {"sha256": "36"}},
    {"filename": "requests-2.31.0.tar.gz", "url": "https://files.example/requests-2.31.0.tar.gz",
     "hashes": {}, "yanked": True},
    {"filename": "requests-2.30.0.tar.gz", "url": "https://files.example/requests-2.30.0.tar.gz"},
    {"filename": "not a distribution", "url": "https://files.example/x"},
]}


def test_the_upstream_page_keeps_what_pypiclouds_locator_drops():
    releases = upstream.releases_of(UPSTREAM_PAGE, "https://pypi.example/simple/requests/")
    assert [release["url"] for release in releases] == [
        "https://pypi.example/packages/r/requests-2.32.0-py3-none-any.whl",  # relative, resolved
        "https://files.example/requests-2.31.0.tar.gz", "https://files.example/requests-2.30.0.tar.gz"]
    newest, yanked_without_reason, plain = releases
    assert newest == {
        "name": "requests", "version": "2.32.0", "summary": None, "url": newest["url"],
        "digests": {"sha256": "f2"}, "requires_python": ">=3.8", "yanked": "CVE-2024-35195",
        "size": 63695, "uploaded": datetime.datetime(2024, 5, 20, 16, 8, 19, 530618,
                                                     tzinfo=datetime.timezone.utc)}
    assert yanked_without_reason["yanked"] == "" and plain["yanked"] is None
    assert upstream.release_of(releases, "requests-2.31.0.tar.gz") is yanked_without_reason
    assert upstream.release_of(releases, "requests-9.tar.gz") is None


def test_an_upstream_file_is_listed_with_the_upstreams_yank_size_and_time():
    found = {"requests-2.32.0-py3-none-any.whl": {
        "url": "https://pypi.test/api/package/requests/requests-2.32.0-py3-none-any.whl",
        "requires_python": ">=3.8", "hash_sha256": "f2", "version": "2.32.0",
        "yanked": "CVE-2024-35195", "size": 63695, "uploaded": UPLOADED}}
    file, = views.listed_files(found, {}, {"2.32.0": "the registry is not asked"})
    assert (file.yanked, file.size, file.uploaded) == ("CVE-2024-35195", 63695, UPLOADED)
