"""What a distribution file says about itself: its size, its sha256 and its core metadata
(PEP 658), read from the file without building or installing anything.

The core metadata is what a client needs to resolve (Requires-Dist, Requires-Python):
served beside the file, it spares every client the download of a whole wheel. It is
the wheel's own .dist-info/METADATA, byte for byte; for an sdist, its PKG-INFO when
that is Metadata 2.2 or later with no field left dynamic (else a build may say
otherwise, and nothing is served). A wheel whose METADATA is missing, unreadable or
names another project or version than its file name is no wheel of that release: the
upload is refused, so a page never names metadata that the file contradicts.
"""
import hashlib
import posixpath
import tarfile
import zipfile
from dataclasses import dataclass, replace

from packaging.metadata import parse_email
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .names import project_of, same_version

# No real METADATA comes near this (a long description is tens of KB); a zip or tar
# member that claims more is not read.
MAX_METADATA_BYTES = 4 * 1024 * 1024
CHUNK = 1024 * 1024


class NotADistribution(ValueError):
    """A wheel that is not the distribution its file name says (the upload's refusal)."""


@dataclass(frozen=True)
class Distribution:
    """One distribution file, as the index records it."""

    size: int
    sha256: str
    metadata: bytes | None  # its core metadata, or None where none can be served

    @property
    def metadata_sha256(self):
        return None if self.metadata is None else hashlib.sha256(self.metadata).hexdigest()


def read(filename, stream):
    """The Distribution in `stream` (a seekable binary file, left at its start), named
    `filename`. Raises NotADistribution for a wheel that is not what its name says."""
    try:
        if filename.endswith(".whl"):
            metadata = wheel_metadata(filename, stream)
        elif filename.endswith((".tar.gz", ".tgz")):
            metadata = sdist_metadata(filename, stream)
        else:  # .zip sdists, eggs and the rest: no metadata file
            metadata = None
    finally:
        stream.seek(0)
    return replace(measured(stream), metadata=metadata)


def measured(stream):
    """Only the size and sha256 of the file in `stream` (left at its start)."""
    digest, size = hashlib.sha256(), 0
    stream.seek(0)
    for chunk in iter(lambda: stream.read(CHUNK), b""):
        digest.update(chunk)
        size += len(chunk)
    stream.seek(0)
    return Distribution(size=size, sha256=digest.hexdigest(), metadata=None)


def wheel_metadata(filename, stream):
    name, version = project_of(filename)
    stream.seek(0)
    try:
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, OSError, EOFError):
        raise NotADistribution(f"{filename} is no wheel: not a zip archive") from None
    with archive:
        found = [info for info in archive.infolist()
                 if posixpath.dirname(info.filename).endswith(".dist-info")
                 and "/" not in posixpath.dirname(info.filename)
                 and posixpath.basename(info.filename) == "METADATA"]
        if len(found) != 1:
            raise NotADistribution(f"{filename} is no wheel: it holds {len(found)} "
                                   f".dist-info/METADATA files, not one")
        metadata = member_bytes(filename, found[0].file_size, lambda: archive.open(found[0]))
    problem = disagreement(metadata, name, version)
    if problem:
        raise NotADistribution(f"{filename} is no wheel of {name} {version}: {problem}")
    return metadata


def sdist_metadata(filename, stream):
    """PKG-INFO of a .tar.gz sdist when it can stand for what a build makes, else None."""
    name, version = project_of(filename)
    stream.seek(0)
    try:
        with tarfile.open(fileobj=stream, mode="r:*") as archive:
            for member in archive:
                parts = member.name.split("/")
                if len(parts) == 2 and parts[1] == "PKG-INFO" and member.isfile():
                    metadata = member_bytes(filename, member.size,
                                            lambda: archive.extractfile(member))
                    break
            else:
                return None
    except (tarfile.TarError, OSError, EOFError, NotADistribution):
        return None  # an sdist pypicloud took before: served as it is, without metadata
    if disagreement(metadata, name, version):
        return None
    fields, _ = parse_email(metadata.decode("utf-8"))
    try:
        static = Version(fields.get("metadata_version", "1.0")) >= Version("2.2")
    except InvalidVersion:
        static = False
    return metadata if static and not fields.get("dynamic") else None


def member_bytes(filename, declared_size, opener):
    if declared_size > MAX_METADATA_BYTES:
        raise NotADistribution(f"{filename}: its metadata is over {MAX_METADATA_BYTES} bytes")
    with opener() as member:
        data = member.read(MAX_METADATA_BYTES + 1)
    if len(data) > MAX_METADATA_BYTES:
        raise NotADistribution(f"{filename}: its metadata is over {MAX_METADATA_BYTES} bytes")
    return data


def disagreement(metadata, name, version):
    """Why this core metadata is not that of `name` `version`, or None."""
    try:
        fields, _ = parse_email(metadata.decode("utf-8"))  # the spec says UTF-8
    except UnicodeDecodeError:
        return "its metadata is not UTF-8"
    said_name, said_version = fields.get("name"), fields.get("version")
    if not said_name or not said_version:
        return "its metadata names no project or version"
    if canonicalize_name(said_name) != name or not same_version(said_version, version):
        return f"its metadata says {said_name} {said_version}"
    return None
