"""What a backup archive may hold: one definition, used by ppc-tasks to verify an archive
on the operator's machine and by the restore that extracts it inside the server image.

An archive holds regular files only, each once: db.sqlite (a snapshot of pypicloud's
database), manifest.json, and packages/NAME/VERSION/FILE (with FILE.meta, pypicloud's
metadata of it), with the names the upload guard lets in. Nothing else: no link, no
folder, no path that leaves the package store. The database holds pypicloud's table of
releases and the guard's registry of projects, each row with those shapes and every
release with its file in the archive; no trigger, no view, no other table.
"""
import re
import sqlite3

from . import registry
from .names import canonical, is_name, shape_error

DATABASE = "db.sqlite"
MANIFEST = "manifest.json"
META = ".meta"  # pypicloud's metadata beside each file of its file store
# pypicloud's table of releases and the registry's tables, with their columns: a table of
# another shape would pass a restore's checks and then fail the server.
TABLES = {"packages": {"filename", "name", "version", "last_modified", "summary", "data"},
          registry.PROJECTS: {"name", "owner"},
          registry.FILES: {"filename", "name", "size", "metadata_sha256", "metadata"},
          registry.YANKS: {"name", "version", "reason"}}
ACCOUNT = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?$")


def package_path(name, version, filename):
    return f"packages/{name}/{version}/{filename}"


def member_problem(name, is_file):
    """Why an archive member may not be in an archive, or None."""
    if not is_file:
        return f"{name!r} is no regular file"
    if name in (DATABASE, MANIFEST):
        return None
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "packages":
        return f"{name!r} has no place in an index"
    _, project, version, filename = parts
    distribution = filename[:-len(META)] if filename.endswith(META) else filename
    problem = shape_error(distribution, project, version)
    if problem is None and canonical(project) != project:
        problem = f"the project {project!r} is not in its normalized form"
    return f"{name!r}: {problem}" if problem else None


def database_problem(path, members, stray_files=False):
    """Why the database at `path` does not fit an archive whose members are `members`,
    or None; and {file name: "project/version"} of the releases it lists. A package file
    it does not list is refused too (stray_files: archives from before, which took files
    uploaded while they were made)."""
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as error:
        return f"its database cannot be read ({error})", {}
    try:
        objects = connection.execute("SELECT type, name, tbl_name FROM sqlite_master").fetchall()
        strangers = [name for kind, name, table in objects
                     if kind not in ("table", "index") or table not in TABLES]
        if strangers:
            return f"its database holds {strangers[0]!r}, which no index has", {}
        for kind, name, _ in objects:
            columns = {row[1] for row in connection.execute(f"PRAGMA table_info({name})")} \
                if kind == "table" else None
            if columns is not None and columns != TABLES[name]:
                return f"its table {name} is not pypicloud's ({', '.join(sorted(columns))})", {}
        if not any(kind == "table" and name == "packages" for kind, name, _ in objects):
            return "its database has no table of releases", {}
        releases = {}
        for filename, name, version in connection.execute(
                "SELECT filename, name, version FROM packages"):
            problem = shape_error(filename, name, version)
            if problem is None and canonical(name) != name:
                problem = f"the project {name!r} is not in its normalized form"
            if problem:
                return f"its database lists a release it may not: {problem}", {}
            if package_path(name, version, filename) not in members:
                return f"its database lists {filename}, whose file it lacks", {}
            releases[filename] = f"{name}/{version}"
        listed = {package_path(*place.split("/"), filename) for filename, place in releases.items()}
        strays = sorted(member for member in members if member.startswith("packages/") and
                        (member[:-len(META)] if member.endswith(META) else member) not in listed)
        if strays and not stray_files:
            return f"it holds {strays[0]}, a file its database does not list", {}
        if any(kind == "table" and name == "ppc_projects" for kind, name, _ in objects):
            for name, owner in connection.execute("SELECT name, owner FROM ppc_projects"):
                if not is_name(name) or canonical(name) != name or not isinstance(owner, str) \
                        or (owner and not ACCOUNT.match(owner)):
                    return f"its registry of projects holds {name!r} ({owner!r})", {}
        return None, releases
    except sqlite3.Error as error:
        return f"its database cannot be read ({error})", {}
    finally:
        connection.close()
