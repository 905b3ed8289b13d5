"""Distributions the tests build by hand: valid wheels and sdists of any name, version,
tag and dependencies, with no build backend."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile
from pathlib import Path


def sample_metadata(name: str, version: str, requires: tuple[str, ...] = ()) -> str:
    """Metadata-Version 2.1 keeps it readable by every twine and pip a client may have
    (Debian 12's twine 4.0 rejects the 2.4 metadata current setuptools writes)."""
    return (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: ppc-tasks sample\n"
            + "".join(f"Requires-Dist: {requirement}\n" for requirement in requires))


def build_wheel(name: str, version: str, directory: Path, *, tag: str = "py3-none-any",
                build: str = "", value: int = 42, payload: bytes = b"",
                requires: tuple[str, ...] = ()) -> Path:
    """A valid wheel of `name` `version`, written by hand: any tag, a build number if
    given, `VALUE = value` in its module (so two wheels of one release can differ), the
    dependencies `requires`."""
    module = re.sub(r"[-_.]+", "_", name).lower()
    metadata = sample_metadata(name, version, requires)
    wheel = directory / f"{module}-{version}{f'-{build}' if build else ''}-{tag}.whl"
    dist_info = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": f"VALUE = {value}\n".encode(),
        **({f"{module}/payload.bin": payload} if payload else {}),
        f"{dist_info}/METADATA": metadata.encode(),
        f"{dist_info}/WHEEL": (f"Wheel-Version: 1.0\nGenerator: ppc-tasks-tests\n"
                               f"Root-Is-Purelib: {'true' if tag.endswith('-none-any') else 'false'}\n"
                               f"Tag: {tag}\n{f'Build: {build}' + chr(10) if build else ''}").encode(),
    }
    record = "".join(
        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
        f"{len(data)}\n" for path, data in files.items()) + f"{dist_info}/RECORD,,\n"
    directory.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in {**files, f"{dist_info}/RECORD": record.encode()}.items():
            archive.writestr(path, data)
    return wheel


def build_sample_dists(name: str, version: str, directory: Path,
                       payload_bytes: int = 0) -> list[Path]:
    """An sdist and a wheel of a small package `name`, written by hand into `directory`;
    with payload_bytes, the wheel carries that much incompressible data as well."""
    module = name.replace("-", "_")
    metadata = sample_metadata(name, version)
    code = b"VALUE = 42\n"
    directory.mkdir(parents=True, exist_ok=True)
    wheel = build_wheel(name, version, directory,
                        payload=os.urandom(payload_bytes) if payload_bytes else b"")

    sdist = directory / f"{module}-{version}.tar.gz"
    root = f"{module}-{version}"
    with tarfile.open(sdist, "w:gz") as archive:
        for path, data in {f"{root}/PKG-INFO": metadata.encode(),
                           f"{root}/src/{module}/__init__.py": code}.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return [sdist, wheel]


def sdist_with_long_name(path: Path, opener, name_bytes: int) -> Path:
    """A hostile sdist: a tar whose first member has a name of `name_bytes` bytes (its
    own long-name header, which a reader takes whole into memory), then a PKG-INFO;
    compressed with `opener` (gzip.open, bz2.open, lzma.open), whatever `path`'s suffix
    says. A few hundred bytes of bzip2 can hold a name of hundreds of MB."""
    root = path.name.split("-")[0] + "-1.0"
    # Not tarfile's stream mode ("w|"): it copies its buffer over and over.
    with opener(path, "wb") as compressed, tarfile.open(fileobj=compressed, mode="w",
                                                       format=tarfile.GNU_FORMAT) as archive:
        archive.addfile(tarfile.TarInfo(f"{root}/" + "a" * name_bytes), io.BytesIO(b""))
        metadata = sample_metadata(path.name.split("-")[0], "1.0").encode()
        info = tarfile.TarInfo(f"{root}/PKG-INFO")
        info.size = len(metadata)
        archive.addfile(info, io.BytesIO(metadata))
    return path

