"""Every project the index has held, with its first uploader: kept beside pypicloud's
own records, in its cache database, so that every index host sees one registry and a
backup of the sqlite database carries it.

A project stays in the registry when its files are deleted: its name never falls back
to the upstream index, and its owner stays its owner. pypicloud rebuilds its own tables
from the package store when they are empty; this table it never touches.
"""
import threading

TABLE = "ppc_projects"
REDIS_KEY = "ppc-tasks:projects"
CREATE = (f"CREATE TABLE IF NOT EXISTS {TABLE} (name VARCHAR(255) PRIMARY KEY, "
          f"owner VARCHAR(255) NOT NULL)")
# First writer wins, on sqlite (3.24+) and PostgreSQL alike; the row is read back.
CLAIM = f"INSERT INTO {TABLE} (name, owner) VALUES (:name, :owner) ON CONFLICT (name) DO NOTHING"
OWNER = f"SELECT owner FROM {TABLE} WHERE name = :name"

_created = set()  # engines whose table exists, in this process
_creating = threading.Lock()


def of(cache):
    """The registry that lives where this pypicloud cache keeps its records."""
    from pypicloud.cache.redis_cache import RedisCache
    from pypicloud.cache.sql import SQLCache

    if isinstance(cache, SQLCache):
        return SqlRegistry(cache.db)
    if isinstance(cache, RedisCache):
        return RedisRegistry(cache.db)
    raise RuntimeError(f"ppc_guard keeps no project registry in a {type(cache).__name__}")


class SqlRegistry:
    """A table in the cache's database, written in the request's own transaction: a
    claim is undone with the upload that failed."""

    def __init__(self, session):
        self.session = session
        engine = session.get_bind()
        if id(engine) not in _created:
            with _creating, engine.begin() as connection:
                connection.execute(CREATE)
                _created.add(id(engine))

    def owner(self, name):
        from sqlalchemy import text

        row = self.session.execute(text(OWNER), {"name": name}).fetchone()
        return None if row is None else row[0]

    def claim(self, name, owner):
        """Record the project's owner unless it has one; returns the one recorded."""
        from sqlalchemy import text

        self.session.execute(text(CLAIM), {"name": name, "owner": owner})
        return self.owner(name)


class RedisRegistry:
    """A hash in the cache's Redis database."""

    def __init__(self, client):
        self.client = client

    def owner(self, name):
        value = self.client.hget(REDIS_KEY, name)
        return None if value is None else (value.decode() if isinstance(value, bytes) else value)

    def claim(self, name, owner):
        self.client.hsetnx(REDIS_KEY, name, owner)
        return self.owner(name)
