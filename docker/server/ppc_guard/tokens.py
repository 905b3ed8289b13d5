"""API tokens: the password of one account that uploads to and reads only the projects
in its scope, until it expires or is revoked.

A token is `ppc1-<id>-<secret>`, used as PyPI's are: the user name `__token__`, the
token as the password (twine, uv, Poetry and PDM unchanged). The index keeps its id, the
sha256 of its secret (a long random secret needs no slow hash: a token login costs one
hash of 64 bytes), the account it acts for, its scope (project name patterns), a note and
its dates; never the secret, which ppc-tasks prints once, where it was made.

Plain functions: the ppc-tasks repo unit-tests them, and makes tokens with them.
"""
import datetime
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from .dates import stamp
from .names import matches

USER = "__token__"
FORMAT = re.compile(r"^ppc1-([0-9a-f]{8})-([0-9a-f]{64})$")


@dataclass(frozen=True)
class Token:
    id: str
    secret_sha256: str
    account: str  # whose uploads they are: its projects, its quota
    scope: tuple  # project name patterns (names.matches)
    note: str
    created: str  # ISO 8601, UTC
    expires: str  # ISO 8601, UTC; "" for never
    last_used: str = ""
    single_use: bool = False  # revoked by its first upload (PEP 807's single-use-token)

    def expired(self, now):
        return bool(self.expires) and datetime.datetime.fromisoformat(self.expires) <= now

    def admits(self, secret, now):
        """Whether `secret` is this token's, and the token still valid."""
        return hmac.compare_digest(digest(secret), self.secret_sha256) and not self.expired(now)

    def covers(self, name):
        return matches(name, self.scope)


def new(account, scope, note, now, lifetime=None, single_use=False):
    """(the token as its user types it, the Token the index keeps)."""
    token_id, secret = secrets.token_hex(4), secrets.token_hex(32)
    expires = stamp(now + lifetime) if lifetime else ""
    return (f"ppc1-{token_id}-{secret}",
            Token(token_id, digest(secret), account, tuple(scope), note, stamp(now), expires,
                  single_use=single_use))


def parse(password):
    """(id, secret) of a token, or None for anything else."""
    found = FORMAT.match(password or "")
    return (found[1], found[2]) if found else None


def digest(secret):
    return hashlib.sha256(secret.encode()).hexdigest()
