"""Secrets kept on the operator's machine: admin passwords and beaker session keys.

One JSON file per index, `<state_dir>/<server name>/secrets.json`, mode 0600 in a 0700
folder. Generated once and kept, so redeploys neither change passwords nor log users out.
To choose a password yourself, edit it in that file and deploy again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

from passlib.hash import sha512_crypt

from . import state
from .errors import TaskError
from .plan import Change, Step, Unchanged


@dataclass
class Credentials:
    passwords: dict[str, str] = field(default_factory=dict)
    # Kept so config.ini stays byte-identical between runs (each hash has a random salt).
    password_hashes: dict[str, str] = field(default_factory=dict)
    # sha256 of the password each hash was made from: a hand-edited password is noticed
    # without a slow sha512_crypt verify per account on every deploy. (The file holds
    # the passwords themselves, so this tells nothing more.)
    hashed_from: dict[str, str] = field(default_factory=dict)
    session_encrypt_key: str = ""
    session_validate_key: str = ""


def new_password() -> str:
    return secrets.token_urlsafe(24)


def new_session_key() -> str:
    """What pypicloud's docs ask for: base64 of 32 random bytes."""
    return base64.b64encode(os.urandom(32)).decode()


def hash_password(password: str) -> str:
    """The passlib sha512_crypt hash that `ppc-gen-password` makes (without its newline bug)."""
    return sha512_crypt.hash(password)


def complete(credentials: Credentials, users: tuple[str, ...]) -> list[str]:
    """Fill in what is missing; returns the users whose password was generated now."""
    generated = []
    for user in users:
        if not credentials.passwords.get(user):
            credentials.passwords[user] = new_password()
            generated.append(user)
        password = credentials.passwords[user]
        digest = hashlib.sha256(password.encode()).hexdigest()
        known_hash = credentials.password_hashes.get(user, "")
        if credentials.hashed_from.get(user) != digest or not sha512_crypt.identify(known_hash):
            if not (sha512_crypt.identify(known_hash) and sha512_crypt.verify(password, known_hash)):
                credentials.password_hashes[user] = hash_password(password)
            credentials.hashed_from[user] = digest
    credentials.session_encrypt_key = credentials.session_encrypt_key or new_session_key()
    credentials.session_validate_key = credentials.session_validate_key or new_session_key()
    return generated


def prepare(path: Path, users: tuple[str, ...], fresh: bool = False) -> tuple[Credentials, Step]:
    """The credentials, completed in memory, and the step that saves them when anything
    was generated (so --dry creates nothing). fresh ignores the file (--new-identity)."""
    credentials = Credentials() if fresh else load(path)
    before = asdict(credentials)
    generated = complete(credentials, users)
    if asdict(credentials) == before:
        return credentials, Unchanged("index.secrets", str(path))
    what = (f"passwords for {', '.join(generated)}" if generated else "password hashes")
    return credentials, Change(
        "index.secrets", done=f"{path}: generated {what} (mode 0600; the output never shows them)",
        would=f"generate {what} and keep them in {path}",
        local=lambda: save(path, credentials))


class CredentialsError(TaskError):
    """secrets.json cannot be used as it is; the message says what to fix."""


def load(path: Path) -> Credentials:
    if not path.exists():
        return Credentials()
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise CredentialsError(f"{path} is not valid JSON (line {error.lineno}: {error.msg}): "
                               f"fix it or restore it from a backup") from None
    return parse(path, data)


def parse(path: Path, data) -> Credentials:
    """Credentials from the file's JSON, checked: a hand edit must not end in a traceback."""
    if not isinstance(data, dict):
        raise CredentialsError(f"{path} must hold a JSON object")
    for key in ("passwords", "password_hashes", "hashed_from"):
        table = data.get(key, {})
        if not isinstance(table, dict):
            raise CredentialsError(f"{path}: {key!r} must be an object of user: string")
        for user, value in table.items():
            if not isinstance(value, str):
                raise CredentialsError(f"{path}: {key}[{user!r}] must be a string, "
                                       f"got {json.dumps(value)}")
    for key in ("session_encrypt_key", "session_validate_key"):
        if not isinstance(data.get(key, ""), str):
            raise CredentialsError(f"{path}: {key!r} must be a string")
    return Credentials(**{key: data[key] for key in Credentials.__dataclass_fields__ if key in data})


def save(path: Path, credentials: Credentials) -> None:
    """Readable by the operator only."""
    state.write(path, (json.dumps(asdict(credentials), indent=2, sort_keys=True) + "\n").encode())
