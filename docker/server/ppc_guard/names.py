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


def canonical(name):
    """The PEP 503 form of a project name: what pip and the index compare."""
    return canonicalize_name(name)


def same_version(one, other):
    """Whether pip takes two versions for the same release (1.0 == 1.0.0)."""
    try:
        return Version(one) == Version(other)
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


def matches(name, patterns):
    """Whether a project name matches any glob pattern (both compared in PEP 503 form)."""
    name = canonical(name)
    return any(fnmatch.fnmatchcase(name, canonical_pattern(pattern)) for pattern in patterns)


def canonical_pattern(pattern):
    """A name pattern in PEP 503 form; its wildcards stay as they are."""
    return re.sub(r"[-_.]+", "-", pattern).lower()
