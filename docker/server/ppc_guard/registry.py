"""What the guard keeps beside pypicloud's own records, in its cache database, so that
every index host sees the same and a backup of the sqlite database carries it:

- every project the index has held, with its first uploader. A project stays when its
  files are deleted: its name never falls back to the upstream index, and its owner
  stays its owner;
- every file's size and core metadata (PEP 658), read from the file at upload (or by
  the backfill, for files from before): what an account's projects hold, for its quota;
- the releases an admin yanked (PEP 592), with the reason;
- generation tokens, one per project and one for the list of projects: a new random
  one with every change of the above, in the same transaction (answers.py keeps the
  simple API's answers while theirs stays the same);
- API tokens (tokens.py): each one's id, the sha256 of its secret, its account, scope,
  note and dates;
- the OIDC tokens trusted publishing took (publishing.py): issuer and `jti`, until they
  would expire anyway, so that each is taken once.

pypicloud rebuilds its own tables from the package store when they are empty; these it
never touches.
"""
from __future__ import annotations  # the operator's machine may run Python 3.9

import hashlib
import json
import logging
import secrets
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from .dates import stamp
from .tokens import Token

PROJECTS, FILES, YANKS, GENERATION = "ppc_projects", "ppc_files", "ppc_yanks", "ppc_generation"
LOG = logging.getLogger(__name__)
TOKENS, USED_JTIS = "ppc_tokens", "ppc_used_jtis"
# scope: the patterns as a JSON list
TOKENS_TABLE = (f"CREATE TABLE IF NOT EXISTS {TOKENS} (id VARCHAR(16) PRIMARY KEY, "
                f"secret_sha256 VARCHAR(64) NOT NULL, account VARCHAR(255) NOT NULL, "
                f"scope TEXT NOT NULL, note TEXT NOT NULL, created VARCHAR(32) NOT NULL, "
                f"expires VARCHAR(32) NOT NULL, last_used VARCHAR(32) NOT NULL, "
                f"single_use BOOLEAN NOT NULL DEFAULT FALSE)")
# OIDC tokens traded for an API token (publishing.py), until they would expire anyway.
USED_JTIS_TABLE = (f"CREATE TABLE IF NOT EXISTS {USED_JTIS} (jti VARCHAR(600) PRIMARY KEY, "
                   f"expires VARCHAR(32) NOT NULL)")
CREATE = (
    f"CREATE TABLE IF NOT EXISTS {PROJECTS} (name VARCHAR(255) PRIMARY KEY, "
    f"owner VARCHAR(255) NOT NULL)",
    # metadata: UTF-8 text, served byte for byte (distributions.py refuses anything else).
    f"CREATE TABLE IF NOT EXISTS {FILES} (filename VARCHAR(255) PRIMARY KEY, "
    f"name VARCHAR(255) NOT NULL, size BIGINT NOT NULL, metadata_sha256 VARCHAR(64), "
    f"metadata TEXT)",
    f"CREATE TABLE IF NOT EXISTS {YANKS} (name VARCHAR(255) NOT NULL, "
    f"version VARCHAR(255) NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (name, version))",
    f"CREATE TABLE IF NOT EXISTS {GENERATION} (scope VARCHAR(255) PRIMARY KEY, "
    f"token VARCHAR(64) NOT NULL)",
    TOKENS_TABLE,
    USED_JTIS_TABLE,
)
# First writer wins, on sqlite (3.24+) and PostgreSQL alike; the row is read back.
CLAIM = f"INSERT INTO {PROJECTS} (name, owner) VALUES (:name, :owner) ON CONFLICT (name) DO NOTHING"
OWNER = f"SELECT owner FROM {PROJECTS} WHERE name = :name"
RECORD_FILE = (f"INSERT INTO {FILES} (filename, name, size, metadata_sha256, metadata) "
               f"VALUES (:filename, :name, :size, :metadata_sha256, :metadata) "
               f"ON CONFLICT (filename) DO UPDATE SET name = excluded.name, "
               f"size = excluded.size, metadata_sha256 = excluded.metadata_sha256, "
               f"metadata = excluded.metadata")
FORGET_FILE = f"DELETE FROM {FILES} WHERE filename = :filename"
FILES_OF = f"SELECT filename, size, metadata_sha256 FROM {FILES} WHERE name = :name"
HELD_BY = (f"SELECT COALESCE(SUM({FILES}.size), 0) FROM {FILES} JOIN {PROJECTS} "
           f"ON {PROJECTS}.name = {FILES}.name WHERE {PROJECTS}.owner = :owner")
METADATA = f"SELECT metadata FROM {FILES} WHERE filename = :filename"
RECORDED = f"SELECT filename FROM {FILES}"
YANK = (f"INSERT INTO {YANKS} (name, version, reason) VALUES (:name, :version, :reason) "
        f"ON CONFLICT (name, version) DO UPDATE SET reason = excluded.reason")
UNYANK = f"DELETE FROM {YANKS} WHERE name = :name AND version = :version"
YANKS_OF = f"SELECT version, reason FROM {YANKS} WHERE name = :name"
TOKEN = f"SELECT token FROM {GENERATION} WHERE scope = "  # + the driver's placeholder
NEW_TOKEN = (f"INSERT INTO {GENERATION} (scope, token) VALUES (:scope, :token) "
             f"ON CONFLICT (scope) DO UPDATE SET token = excluded.token")
TOKEN_FIELDS = "id, secret_sha256, account, scope, note, created, expires, last_used, single_use"
ADD_API_TOKEN = (f"INSERT INTO {TOKENS} ({TOKEN_FIELDS}) VALUES (:id, :secret_sha256, :account, "
                 f":scope, :note, :created, :expires, :last_used, :single_use)")
API_TOKEN = f"SELECT {TOKEN_FIELDS} FROM {TOKENS} WHERE id = :id"
API_TOKENS = f"SELECT {TOKEN_FIELDS} FROM {TOKENS} ORDER BY created"
REVOKE_API_TOKEN = f"DELETE FROM {TOKENS} WHERE id = :id"
USED_API_TOKEN = f"UPDATE {TOKENS} SET last_used = :last_used WHERE id = :id"
# What holds now, never what held at a moment past: backups carry none of these tables, and
# a restore keeps the live index's ((table, its CREATE, its columns), ...): a restore
# neither revives a token revoked since nor lets an OIDC token be used again.
LIVE_TABLES = ((TOKENS, TOKENS_TABLE, TOKEN_FIELDS), (USED_JTIS, USED_JTIS_TABLE, "jti, expires"))
# Dates are ISO 8601 in UTC, all written alike: they compare as text.
FORGET_EXPIRED_MINTED = (f"DELETE FROM {TOKENS} WHERE note LIKE :note AND expires <> '' "
                         f"AND expires < :now")
FORGET_USED_JTIS = f"DELETE FROM {USED_JTIS} WHERE expires < :now"
USE_JTI = (f"INSERT INTO {USED_JTIS} (jti, expires) VALUES (:jti, :expires) "
           f"ON CONFLICT (jti) DO NOTHING")
# The scope of the index page (/simple/), which every change of a project may change.
EVERY_PROJECT = ""

REDIS_PROJECTS = "ppc-tasks:projects"
REDIS_FILES = "ppc-tasks:files:"  # + project name: filename -> JSON {size, metadata_sha256}
REDIS_METADATA = "ppc-tasks:metadata"  # filename -> core metadata
REDIS_YANKS = "ppc-tasks:yanks:"  # + project name: version -> reason
REDIS_GENERATION = "ppc-tasks:generation"  # scope -> token
REDIS_TOKENS = "ppc-tasks:tokens"  # API token id -> JSON of its fields
REDIS_USED_JTI = "ppc-tasks:used-jti:"  # + sha256 of issuer and jti, until it expires

# More than the server's threads (config.ini): each keeps its connection for the token.
SERVER_THREADS_AT_MOST = 64
_created = set()  # engines whose tables exist, in this process
_creating = threading.Lock()


@dataclass(frozen=True)
class FileRecord:
    size: int
    metadata_sha256: str | None  # None: no core metadata is served for the file


def create_tables(engine):
    if id(engine) not in _created:
        with _creating, engine.begin() as connection:
            for statement in CREATE:
                connection.execute(statement)
            _created.add(id(engine))


def token_reader(cache_class, cache_settings):
    """A function that reads the generation token of a scope (a project's name, or
    EVERY_PROJECT), outside any request's session and transaction: answers.py asks for
    it on every request of a page; None when the scope never changed. `cache_settings`
    are what the pypicloud cache class's configure() made of config.ini."""
    from pypicloud.cache.redis_cache import RedisCache
    from pypicloud.cache.sql import SQLCache

    if issubclass(cache_class, SQLCache):
        from sqlalchemy import create_engine
        from sqlalchemy.pool import SingletonThreadPool

        engine = cache_settings["dbmaker"].kw["bind"]
        create_tables(engine)  # once, here: pypicloud's configure has just reached it too
        if engine.dialect.name == "sqlite":  # a connection kept open by each thread
            engine = create_engine(engine.url, poolclass=SingletonThreadPool,
                                   pool_size=SERVER_THREADS_AT_MOST)

        # The driver's own connection: a third of the time SQLAlchemy's takes.
        statement = TOKEN + {"qmark": "?"}.get(engine.dialect.paramstyle, "%s")

        def sql_token(scope):
            connection = engine.raw_connection()
            try:
                cursor = connection.cursor()
                cursor.execute(statement, (scope,))
                row = cursor.fetchone()
                return row[0] if row else None
            finally:
                connection.close()
        return sql_token
    if issubclass(cache_class, RedisCache):
        client = cache_settings["db"]
        return lambda scope: text_of(client.hget(REDIS_GENERATION, scope))
    raise RuntimeError(f"ppc_guard keeps no registry in a {cache_class.__name__}")


STORE_FIGURES = f"SELECT COUNT(DISTINCT name), COUNT(*), COALESCE(SUM(size), 0) FROM {FILES}"


def figures_reader(cache_class, cache_settings):
    """A function that reads how many projects and files the index holds, and their
    bytes (and on a SQL cache with a pool, its connections), outside any request (for
    /metrics); `cache_settings` as for token_reader."""
    from pypicloud.cache.redis_cache import RedisCache
    from pypicloud.cache.sql import SQLCache

    if issubclass(cache_class, SQLCache):
        from sqlalchemy import text
        from sqlalchemy.pool import QueuePool

        engine = cache_settings["dbmaker"].kw["bind"]
        # The pool pypicloud's requests take their connections from: PostgreSQL's (and
        # MySQL's) keep one; SQLite's opens a connection for each use.
        pool = engine.pool if isinstance(engine.pool, QueuePool) else None

        def sql_figures():
            with engine.connect() as connection:
                projects, files, size = connection.execute(text(STORE_FIGURES)).fetchone()
            found = {"store_projects": projects, "store_files": files, "store_bytes": int(size)}
            if pool is not None:
                found.update(cache_connections_in_use=pool.checkedout(),
                             cache_connections_idle=pool.checkedin(), cache_pool_size=pool.size())
            return found
        return sql_figures
    if issubclass(cache_class, RedisCache):
        client = cache_settings["db"]
        records = RedisRegistry(client)

        def redis_figures():
            projects = files = size = 0
            for key in client.scan_iter(REDIS_FILES + "*"):
                held = records.files_of(text_of(key)[len(REDIS_FILES):])
                projects, files = projects + bool(held), files + len(held)
                size += sum(record.size for record in held.values())
            return {"store_projects": projects, "store_files": files, "store_bytes": size}
        return redis_figures
    raise RuntimeError(f"ppc_guard keeps no registry in a {cache_class.__name__}")


def of(cache):
    """The registry that lives where this pypicloud cache keeps its records."""
    from pypicloud.cache.redis_cache import RedisCache
    from pypicloud.cache.sql import SQLCache

    if isinstance(cache, SQLCache):
        return SqlRegistry(cache.db)
    if isinstance(cache, RedisCache):
        return RedisRegistry(cache.db)
    raise RuntimeError(f"ppc_guard keeps no registry in a {type(cache).__name__}")


class SqlRegistry:
    """Tables in the cache's database, written in the request's own transaction: what
    an upload records is undone with the upload that failed."""

    def __init__(self, session):
        self.session = session
        create_tables(session.get_bind())

    def _rows(self, statement, **values):
        from sqlalchemy import text

        return self.session.execute(text(statement), values).fetchall()

    def _write(self, statement, **values):
        """The statement's result (its rowcount), in the request's transaction."""
        from sqlalchemy import text
        from zope.sqlalchemy import mark_changed

        result = self.session.execute(text(statement), values)
        mark_changed(self.session)  # else the transaction ends in a rollback: no ORM change
        return result

    def _changed(self, project, statement, **values):
        """A write that changes what the simple API shows of `project`: with new
        generation tokens (the project's, then the list's: always in this order, so
        that two transactions never wait for each other's rows in a circle)."""
        self._write(statement, **values)
        token = new_token()
        for scope in (project, EVERY_PROJECT):
            self._write(NEW_TOKEN, scope=scope, token=token)

    def owner(self, name):
        rows = self._rows(OWNER, name=name)
        return rows[0][0] if rows else None

    def claim(self, name, owner):
        """Record the project's owner unless it has one; returns the one recorded."""
        self._write(CLAIM, name=name, owner=owner)
        return self.owner(name)

    def record_file(self, filename, name, distribution):
        metadata = distribution.metadata
        self._changed(name, RECORD_FILE, filename=filename, name=name,
                      size=distribution.size, metadata_sha256=distribution.metadata_sha256,
                      metadata=None if metadata is None else metadata.decode("utf-8"))

    def forget_file(self, filename, name):
        self._changed(name, FORGET_FILE, filename=filename)

    def files_of(self, name):
        """{filename: FileRecord} of a project's recorded files."""
        return {filename: FileRecord(size, sha256)
                for filename, size, sha256 in self._rows(FILES_OF, name=name)}

    def held_by(self, owner):
        """The bytes of the files of the projects `owner` owns."""
        return int(self._rows(HELD_BY, owner=owner)[0][0])

    def metadata(self, filename):
        rows = self._rows(METADATA, filename=filename)
        return rows[0][0].encode("utf-8") if rows and rows[0][0] is not None else None

    def recorded_filenames(self):
        return {row[0] for row in self._rows(RECORDED)}

    def yanks_of(self, name):
        """{version: reason} of a project's yanked releases."""
        return dict(self._rows(YANKS_OF, name=name))

    def yank(self, name, version, reason):
        self._changed(name, YANK, name=name, version=version, reason=reason)

    def unyank(self, name, version):
        self._changed(name, UNYANK, name=name, version=version)

    def add_api_token(self, token):
        self._write(ADD_API_TOKEN, **token_row(token))

    def api_token(self, token_id):
        rows = self._rows(API_TOKEN, id=token_id)
        return token_of(rows[0]) if rows else None

    def api_tokens(self):
        return [token_of(row) for row in self._rows(API_TOKENS)]

    def revoke_api_token(self, token_id):
        found = self.api_token(token_id) is not None
        self._write(REVOKE_API_TOKEN, id=token_id)
        return found

    def api_token_used(self, token_id, when):
        """In a transaction of its own, at once: a login is checked before the request's
        transaction begins (its begin would drop the write), and may end in a rollback.
        Best effort: a busy database loses a "last used", never the request."""
        from sqlalchemy import text

        try:
            with self.session.get_bind().begin() as connection:
                connection.execute(text(USED_API_TOKEN), {"id": token_id, "last_used": when})
        except Exception:  # noqa: BLE001  (whatever the driver raises)
            LOG.warning("the last use of API token %s was not recorded", token_id,
                        exc_info=True)

    def first_use_of_jti(self, jti, expires, now):
        """Records an OIDC token's issuer and jti; False when they were recorded before."""
        self._write(FORGET_USED_JTIS, now=stamp(now))
        return self._write(USE_JTI, jti=jti, expires=stamp(expires)).rowcount == 1

    def forget_expired_minted(self, note, now):
        """Minted tokens (their note begins with `note`) past their expiry."""
        self._write(FORGET_EXPIRED_MINTED, note=note + "%", now=stamp(now))


class RedisRegistry:
    """Hashes in the cache's Redis database."""

    def __init__(self, client):
        self.client = client

    def owner(self, name):
        return text_of(self.client.hget(REDIS_PROJECTS, name))

    def claim(self, name, owner):
        self.client.hsetnx(REDIS_PROJECTS, name, owner)
        return self.owner(name)

    @contextmanager
    def _changing(self, project):
        """A pipeline for writes that change what the simple API shows of `project`,
        run in one MULTI with new generation tokens (the project's and the list's)."""
        with self.client.pipeline() as pipe:
            yield pipe
            token = new_token()
            pipe.hset(REDIS_GENERATION, mapping={project: token, EVERY_PROJECT: token})
            pipe.execute()

    def record_file(self, filename, name, distribution):
        with self._changing(name) as pipe:
            pipe.hset(REDIS_FILES + name, filename, json.dumps({
                "size": distribution.size, "metadata_sha256": distribution.metadata_sha256}))
            if distribution.metadata is None:
                pipe.hdel(REDIS_METADATA, filename)
            else:
                pipe.hset(REDIS_METADATA, filename, distribution.metadata)

    def forget_file(self, filename, name):
        with self._changing(name) as pipe:
            pipe.hdel(REDIS_FILES + name, filename)
            pipe.hdel(REDIS_METADATA, filename)

    def files_of(self, name):
        return {text_of(filename): FileRecord(**json.loads(value))
                for filename, value in self.client.hgetall(REDIS_FILES + name).items()}

    def held_by(self, owner):
        return sum(record.size for name, value in self.client.hgetall(REDIS_PROJECTS).items()
                   if text_of(value) == owner for record in self.files_of(text_of(name)).values())

    def metadata(self, filename):
        value = self.client.hget(REDIS_METADATA, filename)
        return value.encode("utf-8") if isinstance(value, str) else value

    def recorded_filenames(self):
        return {text_of(filename) for key in self.client.scan_iter(REDIS_FILES + "*")
                for filename in self.client.hkeys(key)}

    def yanks_of(self, name):
        return {text_of(version): text_of(reason)
                for version, reason in self.client.hgetall(REDIS_YANKS + name).items()}

    def yank(self, name, version, reason):
        with self._changing(name) as pipe:
            pipe.hset(REDIS_YANKS + name, version, reason)

    def unyank(self, name, version):
        with self._changing(name) as pipe:
            pipe.hdel(REDIS_YANKS + name, version)

    def add_api_token(self, token):
        self.client.hset(REDIS_TOKENS, token.id, json.dumps(token_row(token)))

    def api_token(self, token_id):
        value = self.client.hget(REDIS_TOKENS, token_id)
        return None if value is None else token_of(json.loads(value))

    def api_tokens(self):
        found = [token_of(json.loads(value)) for value in self.client.hvals(REDIS_TOKENS)]
        return sorted(found, key=lambda token: token.created)

    def revoke_api_token(self, token_id):
        return bool(self.client.hdel(REDIS_TOKENS, token_id))

    def api_token_used(self, token_id, when):
        token = self.api_token(token_id)
        if token is not None:  # never brings back one revoked meanwhile
            self.client.hset(REDIS_TOKENS, token_id,
                             json.dumps({**token_row(token), "last_used": when}))

    def first_use_of_jti(self, jti, expires, now):
        key = REDIS_USED_JTI + hashlib.sha256(jti.encode()).hexdigest()
        return bool(self.client.set(key, "1", nx=True, exat=int(expires.timestamp())))

    def forget_expired_minted(self, note, now):
        gone = [token.id for token in self.api_tokens()
                if token.note.startswith(note) and token.expired(now)]
        if gone:
            self.client.hdel(REDIS_TOKENS, *gone)


def token_row(token):
    """A Token as the registry stores it: its fields, the scope as a JSON list."""
    return {**asdict(token), "scope": json.dumps(list(token.scope))}


def token_of(row):
    """A Token from a stored row (a database row, or Redis's JSON of token_row)."""
    values = dict(row._mapping) if hasattr(row, "_mapping") else dict(row)
    return Token(**{**values, "scope": tuple(json.loads(values["scope"])),
                    "single_use": bool(values.get("single_use"))})


def new_token():
    """Random, so that a token never comes back (not even from a restored database)."""
    return secrets.token_hex(16)


def text_of(value):
    return value.decode() if isinstance(value, bytes) else value
