"""backup-stream.py (python3 -, in a throwaway container of the server image with the data
volume at /var/lib/pypicloud): write the index to stdout as an uncompressed tar stream.

First db.sqlite, a consistent snapshot taken with sqlite's online backup API (never a
copy of the live file), then every package file with its .meta file. pypicloud writes
a package's files before its database row, so every release the snapshot lists has
its files in the stream; files still being written (dot files) are left out. Last,
about.json: the pypicloud version. Nothing is written to the volume.
"""

import importlib.metadata
import io
import json
import os
import sqlite3
import sys
import tarfile

DATA = "/var/lib/pypicloud"
SNAPSHOT = "/tmp/db.sqlite"
OWNER = 10001  # the server image's user: what a restore gives every file

source = sqlite3.connect(f"file:{DATA}/db.sqlite?mode=ro", uri=True)
target = sqlite3.connect(SNAPSHOT)
source.backup(target)
target.close()
source.close()


def owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = OWNER
    info.uname = info.gname = ""
    return info


with tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.PAX_FORMAT) as stream:
    stream.add(SNAPSHOT, "db.sqlite", filter=owned)
    for root, directories, files in os.walk(f"{DATA}/packages"):
        directories.sort()
        for name in sorted(files):
            if name.startswith("."):  # an upload still being written
                continue
            path = os.path.join(root, name)
            stream.add(path, os.path.relpath(path, DATA), filter=owned)
    about = json.dumps({"pypicloud": importlib.metadata.version("pypicloud")}).encode()
    info = tarfile.TarInfo("about.json")
    info.size = len(about)
    stream.addfile(info, io.BytesIO(about))
