"""backup-stream.py (python3 -, in a throwaway container of the server image with the data
volume at /var/lib/pypicloud): write the index to stdout as an uncompressed tar stream.

First db.sqlite, a consistent snapshot taken with sqlite's online backup API (never a
copy of the live file), then the file of every release the snapshot lists, with its
.meta file (each path of the shape ppc_guard.archive allows): exactly what the snapshot saw (pypicloud writes a release's file before its
database row, so each one is there). Last, about.json: the pypicloud version. Nothing
is written to the volume. The snapshot leaves out the generation tokens: they belong to
the running servers (ppc_guard/answers.py), not to the index.
"""

import importlib.metadata
import io
import json
import os
import sqlite3
import sys
import tarfile

from ppc_guard.archive import member_problem
from ppc_guard.registry import GENERATION, LIVE_TABLES

DATA = "/var/lib/pypicloud"
SNAPSHOT = "/tmp/db.sqlite"
OWNER = 10001  # the server image's user: what a restore gives every file

source = sqlite3.connect(f"file:{DATA}/db.sqlite?mode=ro", uri=True)
target = sqlite3.connect(SNAPSHOT)
source.backup(target)
target.execute(f"DROP TABLE IF EXISTS {GENERATION}")
# No API token leaves the index, not even as a hash, nor its record of used OIDC tokens: a
# restore keeps the live index's (registry.LIVE_TABLES).
for table, _, _ in LIVE_TABLES:
    target.execute(f"DROP TABLE IF EXISTS {table}")
target.commit()
releases = target.execute("SELECT name, version, filename FROM packages "
                          "ORDER BY name, version, filename").fetchall()
target.close()
source.close()


def owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = OWNER
    info.uname = info.gname = ""
    return info


with tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.PAX_FORMAT) as stream:
    stream.add(SNAPSHOT, "db.sqlite", filter=owned)
    for name, version, filename in releases:
        path = f"packages/{name}/{version}/{filename}"
        problem = member_problem(path, True)
        if problem:  # only a restore of a forged database could have put it there
            sys.exit(f"the database lists {problem}")
        for member in (path, path + ".meta"):
            if member != path and not os.path.exists(os.path.join(DATA, member)):
                continue
            try:
                stream.add(os.path.join(DATA, member), member, filter=owned, recursive=False)
            except FileNotFoundError:
                sys.exit(f"{member} was deleted while the backup ran: run it again")
    about = json.dumps({"pypicloud": importlib.metadata.version("pypicloud")}).encode()
    info = tarfile.TarInfo("about.json")
    info.size = len(about)
    stream.addfile(info, io.BytesIO(about))
