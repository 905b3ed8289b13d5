"""Real engines for an index that outgrows one machine: OpenStack Swift's S3 API,
PostgreSQL and Redis (all from Debian packages; images in images/s3, postgres, redis),
each started as a container of the test machine's Docker."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from . import harness

BUCKET = "pypi-packages"
# Secrets as operators have them: characters a URL or an ini file would misread.
S3_SECRET = "s3/cr+t@1"
PG_PASSWORD = "p@ss%w:rd/1"
REDIS_PASSWORD = "r@d%s:1/x"


@dataclass
class Engines:
    s3: str  # the address of each engine's container
    postgres: str
    redis: str


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


def started() -> Iterator[Engines]:
    """Swift's S3 API, PostgreSQL and Redis, each in a container of its own, empty."""
    started = {"ppc-it-s3": ("s3", {"S3_SECRET": S3_SECRET}),
               "ppc-it-postgres": ("postgres", {"PG_USER": "pypi", "PG_PASSWORD": PG_PASSWORD}),
               "ppc-it-redis": ("redis", {"REDIS_PASSWORD": REDIS_PASSWORD})}
    for name, (kind, secrets) in started.items():
        docker("rm", "-f", name, check=False)
        docker("run", "-d", "--name", name, harness.ensure_built_image(kind), **secrets)
    harness.wait_for(lambda: succeeds("exec", "ppc-it-s3", "curl", "-fsS",
                                      "http://127.0.0.1:8080/healthcheck"), "Swift's S3 API")
    harness.wait_for(lambda: succeeds("exec", "ppc-it-postgres", "psql", "-h", "127.0.0.1", "-U",
                                      "pypi", "-c", "select 1", "pypi", PGPASSWORD=PG_PASSWORD),
                     "PostgreSQL")
    harness.wait_for(lambda: succeeds("exec", "ppc-it-redis", "redis-cli", "ping",
                                      REDISCLI_AUTH=REDIS_PASSWORD), "Redis")
    yield Engines(*(docker("inspect", "--format", "{{.NetworkSettings.IPAddress}}", name)
                    .stdout.decode().strip() for name in started))
    for name in started:
        docker("rm", "-f", name, check=False)


def bucket_listing(bucket: str = BUCKET) -> list[str]:
    """A bucket's object names, read through Swift's own API (not S3's); none when the
    bucket does not exist yet."""
    login = in_engine("ppc-it-s3", "curl -fsS -D - -o /dev/null -H 'X-Auth-User: test:tester' "
                                   "-H \"X-Auth-Key: $KEY\" http://127.0.0.1:8080/auth/v1.0",
                      KEY=S3_SECRET)
    headers = dict(line.split(": ", 1) for line in login.splitlines() if ": " in line)
    return in_engine("ppc-it-s3", f"code=$(curl -sS -o /tmp/listing -w '%{{http_code}}' -H "
                                  f"'X-Auth-Token: {headers['X-Auth-Token'].strip()}' "
                                  f"{headers['X-Storage-Url'].strip()}/{bucket}) && "
                                  f"{{ [ $code = 404 ] || {{ [ $code -lt 300 ] && cat /tmp/listing; }}; }}"
                     ).split()
