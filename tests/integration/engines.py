"""Real engines for an index that outgrows one machine: OpenStack Swift's S3 API,
PostgreSQL and Redis (all from Debian packages; images in images/s3, postgres, redis),
each a container of the test machine's Docker.

A test run starts them once; each module that uses them gets stores of its own in them
(`Stores`: a bucket, a database and a Redis db), so modules never see each other's."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass

from . import harness

# Secrets as operators have them: characters a URL or an ini file would misread.
S3_SECRET = "s3/cr+t@1"
PG_PASSWORD = "p@ss%w:rd/1"
REDIS_PASSWORD = "r@d%s:1/x"
PG_USER = "pypi"

KINDS = {"s3": {"S3_SECRET": S3_SECRET},
         "postgres": {"PG_USER": PG_USER, "PG_PASSWORD": PG_PASSWORD},
         "redis": {"REDIS_PASSWORD": REDIS_PASSWORD}}


@dataclass(frozen=True)
class Engines:
    """The running engines: each one's container and its address."""

    containers: dict[str, str]  # kind -> container name
    addresses: dict[str, str]  # kind -> IP address

    @property
    def s3(self) -> str:
        return self.addresses["s3"]

    @property
    def postgres(self) -> str:
        return self.addresses["postgres"]

    @property
    def redis(self) -> str:
        return self.addresses["redis"]


def docker(*argv: str, check: bool = True, **secrets: str) -> subprocess.CompletedProcess:
    """The docker CLI; secrets go through its environment, never onto its command line."""
    names = [flag for name in secrets for flag in ("-e", name)]
    command = [argv[0], *names, *argv[1:]] if argv[0] in ("run", "exec") else list(argv)
    return subprocess.run(["docker", *command], capture_output=True, check=check,
                          env={**os.environ, **secrets})


def in_engine(name: str, command: str, **secrets: str) -> str:
    return docker("exec", name, "sh", "-c", command, **secrets).stdout.decode().strip()


def succeeds(*argv: str, **secrets: str) -> bool:
    return docker(*argv, check=False, **secrets).returncode == 0


def start(containers: dict[str, str], run_flags: tuple[str, ...] = ()) -> Engines:
    """Start Swift's S3 API, PostgreSQL and Redis, empty, as the containers named
    ({kind: name}); returns once each one answers."""
    for kind, name in containers.items():
        docker("rm", "-f", name, check=False)
        docker("run", "-d", "--name", name, *run_flags, harness.ensure_built_image(kind),
               **KINDS[kind])
    harness.wait_for(lambda: succeeds("exec", containers["s3"], "curl", "-fsS",
                                      "http://127.0.0.1:8080/healthcheck"), "Swift's S3 API")
    harness.wait_for(lambda: succeeds("exec", containers["postgres"], "psql", "-h", "127.0.0.1",
                                      "-U", PG_USER, "-c", "select 1", PG_USER,
                                      PGPASSWORD=PG_PASSWORD), "PostgreSQL")
    harness.wait_for(lambda: succeeds("exec", containers["redis"], "redis-cli", "ping",
                                      REDISCLI_AUTH=REDIS_PASSWORD), "Redis")
    return Engines(containers, {kind: docker("inspect", "--format", "{{.NetworkSettings.IPAddress}}",
                                             name).stdout.decode().strip()
                                for kind, name in containers.items()})


def remove(engines: Engines) -> None:
    for name in engines.containers.values():
        docker("rm", "-f", name, check=False)


@dataclass(frozen=True)
class Stores:
    """One user's own part of the engines: a bucket (made by the index on its first
    use), a PostgreSQL database owned by PG_USER, and a Redis db."""

    engines: Engines
    bucket: str
    database: str
    redis_db: int

    @classmethod
    def create(cls, engines: Engines, name: str, redis_db: int) -> Stores:
        """Stores named after `name` (letters, digits and dashes)."""
        database = re.sub(r"\W", "_", name)
        in_engine(engines.containers["postgres"],
                  f"su postgres -c \"psql -q -c 'CREATE DATABASE {database} OWNER {PG_USER}'\"")
        return cls(engines, f"ppc-{name}", database, redis_db)

    @property
    def s3_endpoint_url(self) -> str:
        return f"http://{self.engines.s3}:8080"

    @property
    def postgres_url(self) -> str:
        """The cache URL of this database, as an operator gives it (no password)."""
        return f"postgresql://{PG_USER}@{self.engines.postgres}/{self.database}"

    @property
    def redis_url(self) -> str:
        return f"redis://{self.engines.redis}:6379/{self.redis_db}"

    def sql(self, statement: str) -> str:
        """A statement's rows, one a line, read in this database."""
        return in_engine(self.engines.containers["postgres"],
                         f"psql -h 127.0.0.1 -U {PG_USER} -tA -c '{statement}' {self.database}",
                         PGPASSWORD=PG_PASSWORD)

    def redis_cli(self, command: str) -> str:
        return in_engine(self.engines.containers["redis"],
                         f"redis-cli -n {self.redis_db} {command}", REDISCLI_AUTH=REDIS_PASSWORD)

    def bucket_listing(self, bucket: str | None = None) -> list[str]:
        """A bucket's object names (this one's unless named), read through Swift's own API
        (not S3's); none when the bucket does not exist yet."""
        s3 = self.engines.containers["s3"]
        login = in_engine(s3, "curl -fsS -D - -o /dev/null -H 'X-Auth-User: test:tester' "
                              "-H \"X-Auth-Key: $KEY\" http://127.0.0.1:8080/auth/v1.0",
                          KEY=S3_SECRET)
        headers = dict(line.split(": ", 1) for line in login.splitlines() if ": " in line)
        # A file of its own: other modules list their buckets at the same time.
        return in_engine(s3, f"listing=$(mktemp) && code=$(curl -sS -o $listing -w "
                             f"'%{{http_code}}' -H 'X-Auth-Token: {headers['X-Auth-Token'].strip()}' "
                             f"{headers['X-Storage-Url'].strip()}/{bucket or self.bucket}) && "
                             f"{{ [ $code = 404 ] || {{ [ $code -lt 300 ] && cat $listing; }}; }}"
                         ).split()
