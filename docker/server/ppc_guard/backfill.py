"""Records for files stored before the guard kept them: each such file is read from the
package store once, and its size and core metadata recorded, as an upload does.

A deploy runs it inside the server container (python -m ppc_guard CONFIG_INI record).
Each file is committed on its own, so an interrupted run loses nothing and the next one
goes on where it stopped. A wheel that contradicts its own name (an upload from before
the guard refused those) is recorded without metadata: clients download it, as they
always did.
"""
import shutil
import tempfile

from . import registry
from .distributions import NotADistribution, measured, read


def unrecorded(cache, records):
    """The file names of pypicloud's packages that have no record yet."""
    recorded = records.recorded_filenames()
    return [package.filename for name in cache.distinct() for package in cache.all(name)
            if package.filename not in recorded]


def record(cache, records, filename):
    package = cache.fetch(filename)
    if package is None:  # deleted meanwhile
        return
    with tempfile.TemporaryFile() as copy:
        with cache.storage.open(package) as stored:
            shutil.copyfileobj(stored, copy)
        try:
            distribution = read(package.filename, copy)
        except NotADistribution:
            distribution = measured(copy)
    records.record_file(package.filename, package.name, distribution)


def record_all(request):
    """Record every unrecorded file; returns the lines to print and whether all went."""
    with request.tm:
        missing = unrecorded(request.db, registry.of(request.db))
    failed = []
    for filename in missing:
        try:
            with request.tm:
                record(request.db, registry.of(request.db), filename)
        except OSError as error:  # the store lost it: said, and tried again next time
            failed.append(f"unreadable: {filename} ({error})")
    return [f"{len(missing) - len(failed)} files recorded", *failed], not failed
