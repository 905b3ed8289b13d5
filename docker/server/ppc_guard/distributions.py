"""What a distribution file says about itself: its size, its sha256 and its core metadata
(PEP 658), read from the file without building or installing anything.

The core metadata is what a client needs to resolve (Requires-Dist, Requires-Python):
served beside the file, it spares every client the download of a whole wheel. It is
the wheel's own .dist-info/METADATA, byte for byte; for an sdist, its PKG-INFO when
that is Metadata 2.2 or later with no field left dynamic (else a build may say
otherwise, and nothing is served). A wheel whose METADATA is missing, unreadable or
names another project or version than its file name is no wheel of that release: the
upload is refused, so a page never names metadata that the file contradicts.

Reading an upload costs what its file is, never what it claims: an sdist is opened
as its suffix says (a .tar.gz as gzip, nothing else: one that is not is taken without
metadata, as a damaged one always was), and its tar headers, members and unpacked bytes
are capped (MAX_TAR_*): past a cap, the upload is refused, naming it.
"""
import bz2
import gzip
import hashlib
import io
import lzma
import posixpath
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, replace

from packaging.metadata import parse_email
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .names import project_of, same_version

# No real METADATA comes near this (a long description is tens of KB); a zip or tar
# member that claims more is not read.
MAX_METADATA_BYTES = 4 * 1024 * 1024
CHUNK = 1024 * 1024
# What an sdist's tar may ask of its reader, up to its PKG-INFO: the bytes of one read
# (tarfile reads a header's data whole, into memory: a long name or link, pax records;
# and the PKG-INFO), how many members, and how many bytes unpacked.
MAX_TAR_READ = 2 * MAX_METADATA_BYTES
MAX_TAR_MEMBERS = 20_000
MAX_TAR_BYTES = 1024 ** 3
# Each sdist suffix, and the one compression it is read with.
TAR_OPENERS = {".tar.gz": gzip.open, ".tgz": gzip.open, ".tar.bz2": bz2.open,
               ".tar.xz": lzma.open}


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
    `filename`. Raises NotADistribution for a wheel that is not what its name says, or
    an sdist that asks for more than a cap allows (OverLimit)."""
    try:
        if filename.endswith(".whl"):
            metadata = wheel_metadata(filename, stream)
        elif filename.endswith(tuple(TAR_OPENERS)):
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
    """PKG-INFO of a tar sdist when it can stand for what a build makes, else None.
    Raises NotADistribution for one that asks the reader for more than a cap allows."""
    name, version = project_of(filename)
    opener = next(opener for suffix, opener in TAR_OPENERS.items() if filename.endswith(suffix))
    stream.seek(0)
    metadata = None
    try:
        with opener(stream) as unpacked, tarfile.open(fileobj=Capped(unpacked),
                                                       mode="r:") as archive:
            for count, member in enumerate(archive, 1):
                if count > MAX_TAR_MEMBERS:
                    raise OverLimit(f"over {MAX_TAR_MEMBERS} members before its PKG-INFO")
                parts = member.name.split("/")
                if len(parts) == 2 and parts[1] == "PKG-INFO" and member.isfile():
                    metadata = member_bytes(filename, member.size,
                                            lambda: archive.extractfile(member))
                    break
    except OverLimit as error:
        raise OverLimit(f"{filename}: {error}") from None
    except (NotADistribution, tarfile.TarError, OSError, EOFError, lzma.LZMAError, zlib.error):
        # Damaged, not what its name says, or its PKG-INFO too large: taken without
        # metadata (pip tells its uploader what it makes of it).
        return None
    if metadata is None or disagreement(metadata, name, version):
        return None
    fields, _ = parse_email(metadata.decode("utf-8"))
    try:
        static = Version(fields.get("metadata_version", "1.0")) >= Version("2.2")
    except InvalidVersion:
        static = False
    return metadata if static and not fields.get("dynamic") else None


class OverLimit(NotADistribution):
    """An sdist that asks its reader for more than a cap (MAX_TAR_*) allows."""


class Capped:
    """An unpacked tar, as tarfile reads it (read, seek and tell: skipping a member
    unpacks it, a chunk at a time): no read over MAX_TAR_READ bytes at once, before
    anything is read, and nothing past its first MAX_TAR_BYTES."""

    def __init__(self, stream):
        self.stream = stream

    def read(self, size=-1):
        if size is None or size < 0 or size > MAX_TAR_READ:
            raise OverLimit(f"a tar header asks to read {size} bytes at once (at most "
                            f"{MAX_TAR_READ} are read)")
        self.reaching(self.stream.tell() + size)
        return self.stream.read(size)

    def seek(self, offset, whence=io.SEEK_SET):
        target = {io.SEEK_SET: 0, io.SEEK_CUR: self.stream.tell()}[whence] + offset
        self.reaching(target)
        return self.stream.seek(target)

    def tell(self):
        return self.stream.tell()

    @staticmethod
    def reaching(position):
        if position > MAX_TAR_BYTES:
            raise OverLimit(f"its PKG-INFO is not within its first {MAX_TAR_BYTES} bytes "
                            f"unpacked")


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
