"""The simple repository API's pages, in both of its forms: HTML (PEP 503, the default,
what every pip reads) and JSON (PEP 691, what uv and newer pips ask for first), each
with what clients read from them beyond links: the Python versions a file supports
(PEP 503), its core metadata's hash (PEP 658 and 714), yanks (PEP 592), and the size,
upload time and version list (PEP 700) that `--exclude-newer` and cooldowns need.

Pure: views.py collects what the index holds into ListedFile values.
"""
import datetime
from dataclasses import dataclass

from jinja2 import Environment, PackageLoader, StrictUndefined
from packaging.version import InvalidVersion, Version

from .dates import upload_time

API_VERSION = "1.1"  # PEP 700's fields are in
JSON = "application/vnd.pypi.simple.v1+json"
HTML = "application/vnd.pypi.simple.v1+html"
LEGACY_HTML = "text/html"
# What a client may ask for, best first when it has no preference (HTML stays the default).
MEDIA_TYPES = (LEGACY_HTML, HTML, JSON)

templates = Environment(loader=PackageLoader("ppc_guard", "templates"), autoescape=True,
                        undefined=StrictUndefined, keep_trailing_newline=True)


@dataclass(frozen=True)
class ListedFile:
    """One file of a project's page."""

    filename: str
    url: str  # without a fragment
    version: str
    sha256: str | None
    requires_python: str | None
    size: int | None  # None: not known (a file of the upstream index not cached yet)
    uploaded: datetime.datetime | None  # timezone-aware
    metadata_sha256: str | None  # None: no core metadata file is served
    yanked: str | None  # the reason ("" for none given), None when not yanked


def project_json(name, files):
    """The PEP 691 (API 1.1) JSON page of a project."""
    return {
        "meta": {"api-version": API_VERSION},
        "name": name,
        "versions": versions(files),
        "files": [file_json(file) for file in sorted(files, key=lambda file: file.filename)],
    }


def file_json(file):
    entry = {
        "filename": file.filename,
        "url": file.url,
        "hashes": {"sha256": file.sha256} if file.sha256 else {},
        # PEP 714's name only: pips 22.3 to 23.1 fail on a dict under PEP 658's old
        # one (the HTML page keeps both, as a string each of them reads).
        "core-metadata": {"sha256": file.metadata_sha256} if file.metadata_sha256 else False,
        "yanked": yanked_json(file.yanked),
    }
    if file.requires_python:
        entry["requires-python"] = file.requires_python
    if file.size is not None:
        entry["size"] = file.size
    if file.uploaded is not None:
        entry["upload-time"] = upload_time(file.uploaded)
    return entry


def yanked_json(reason):
    if reason is None:
        return False
    return reason or True


def versions(files):
    """Every version among the files, oldest first (as PEP 440 orders them)."""
    def order(version):
        try:
            return (0, Version(version), version)
        except InvalidVersion:
            return (1, Version("0"), version)
    return sorted({file.version for file in files}, key=order)


def project_html(name, files):
    return templates.get_template("project.html.j2").render(
        name=name, files=sorted(files, key=lambda file: file.filename),
        api_version=API_VERSION).encode()


def index_json(names):
    return {"meta": {"api-version": API_VERSION}, "projects": [{"name": name} for name in names]}


def index_html(names):
    return templates.get_template("index.html.j2").render(
        names=names, api_version=API_VERSION).encode()
