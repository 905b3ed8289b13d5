"""What an upload may be called: project names, versions and distribution file names.

pypicloud builds storage paths from these, and pip decides what a file is from its
name alone, so an upload whose name, version and file name do not agree is refused
before anything is written.
"""
import fnmatch
import re

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

# PEP 508 project names, as uploads carry them (normalized or not).
NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
# PEP 440 versions, public and local (the pattern from the PEP's appendix).
VERSION = re.compile(
    r"^v?(?:(?:[0-9]+!)?[0-9]+(?:\.[0-9]+)*"
    r"(?:[-_.]?(?:a|b|c|rc|alpha|beta|pre|preview)[-_.]?[0-9]*)?"
    r"(?:-[0-9]+|[-_.]?(?:post|rev|r)[-_.]?[0-9]*)?"
    r"(?:[-_.]?dev[-_.]?[0-9]*)?)(?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?$",
    re.IGNORECASE)
# A distribution file: sdist archives, wheels and eggs; no path, no hidden file.
FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!-]*\.(tar\.gz|tar\.bz2|tar\.xz|tgz|zip|whl|egg)$")
SDIST_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".zip")
# A distribution's core metadata file (PEP 658) is its file's name and this.
METADATA_SUFFIX = ".metadata"


def canonical(name):
    """The PEP 503 form of a project name: what pip and the index compare."""
    return canonicalize_name(name)


def same_version(one, other):
    """Whether two versions are one (1.0 == 1.0.0 == v1.0 == 0!1.0; not 1.0+local)."""
    try:
        return Version(one) == Version(other)
    except InvalidVersion:
        return one == other


def same_release(one, other):
    """Whether two versions label one release as `pip install NAME==V` matches it: a
    local version (1.0+anything) is the release it labels."""
    try:
        return Version(Version(one).public) == Version(Version(other).public)
    except InvalidVersion:
        return one == other


def project_of(filename):
    """(canonical project name, version) that pip reads from a file name, or None."""
    try:
        if filename.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(filename)
            return str(name), str(version)
        if filename.endswith(".egg"):  # name-version[-pyX.Y[-platform]].egg
            name, _, rest = filename[:-len(".egg")].partition("-")
            return canonical(name), rest.split("-")[0]
        stem = next(filename[:-len(suffix)] for suffix in SDIST_SUFFIXES if filename.endswith(suffix))
        name, version = parse_sdist_filename(stem + ".tar.gz")
        return str(name), str(version)
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion, StopIteration):
        return None


def is_name(name):
    return isinstance(name, str) and bool(NAME.match(name))


def shape_error(filename, name=None, version=None):
    """Why these names cannot be a stored distribution's (pypicloud makes a path of
    them: packages/NAME/VERSION/FILENAME), or None."""
    if not isinstance(filename, str) or not FILENAME.match(filename) or ".." in filename:
        return f"invalid distribution file name: {filename!r}"
    if name is not None and not is_name(name):
        return f"invalid project name: {name!r}"
    if version is not None and (not isinstance(version, str) or not VERSION.match(version)):
        return f"invalid version: {version!r}"
    return None


def upload_error(filename, name=None, version=None):
    """Why an upload must be refused, or None when its names are safe to store and agree."""
    shape = shape_error(filename, name, version)
    if shape:
        return shape
    named = project_of(filename)
    if named is None:
        return f"invalid distribution file name: {filename!r}"
    if name is not None and canonical(name) != named[0]:
        return f"the file {filename} is no distribution of {name}"
    if version is not None and not same_version(version, named[1]):
        return f"the file {filename} is no distribution of {name or named[0]} {version}"
    return None


def named_in(path):
    """(the project name as the path spells it, the file name or "") of a path that names
    a project: /simple/NAME/, /pypi/NAME/json, /api/package/NAME/FILE; else None."""
    parts = path.split("/")
    if len(parts) > 2 and parts[1] in ("simple", "pypi") and parts[2]:
        return parts[2], ""
    if len(parts) > 3 and parts[1:3] == ["api", "package"] and parts[3]:
        return parts[3], "/".join(parts[4:])
    return None


def path_refusal(path):
    """Why a request's path names no project, or no file of the project it names, as
    (HTTP status, message); None when it does, or names none. Every spelling of a name
    is decided on here, before anything looks it up: a name that is not a project name
    (one still percent-encoded, say) is refused, and a file is a project's only when its
    own name says so (pypicloud finds a file by its file name alone)."""
    named = named_in(path)
    if named is None:
        return None
    name, filename = named
    if not is_name(name):
        return 400, f"invalid project name: {name!r}"
    if filename:
        named = project_of(filename.removesuffix(METADATA_SUFFIX))
        if named is None or named[0] != canonical(name):
            return 404, f"{filename} is no file of {canonical(name)}"
    return None


def matches(name, patterns):
    """Whether a project name matches any glob pattern (both compared in PEP 503 form)."""
    name = canonical(name)
    return any(fnmatch.fnmatchcase(name, canonical_pattern(pattern)) for pattern in patterns)


def canonical_pattern(pattern):
    """A name pattern in PEP 503 form; its wildcards stay as they are."""
    return re.sub(r"[-_.]+", "-", pattern).lower()
