"""Secrets kept on the operator's machine: admin passwords and beaker session keys.

One JSON file per index, `<state_dir>/<server name>/secrets.json`, mode 0600 in a 0700
folder. Generated once and kept, so redeploys neither change passwords nor log users out.
To choose a password yourself, edit it in that file and deploy again.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

from passlib.hash import sha512_crypt

from . import state


@dataclass
class Credentials:
    passwords: dict[str, str] = field(default_factory=dict)
    # Kept so config.ini stays byte-identical between runs (each hash has a random salt).
    password_hashes: dict[str, str] = field(default_factory=dict)
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
        known_hash = credentials.password_hashes.get(user, "")
        if not (sha512_crypt.identify(known_hash)
                and sha512_crypt.verify(credentials.passwords[user], known_hash)):
            credentials.password_hashes[user] = hash_password(credentials.passwords[user])
    credentials.session_encrypt_key = credentials.session_encrypt_key or new_session_key()
    credentials.session_validate_key = credentials.session_validate_key or new_session_key()
    return generated


def ensure(path: Path, users: tuple[str, ...]) -> tuple[Credentials, list[str]]:
    """Load the file, fill in what is missing and save it if anything was; returns the
    credentials and the users whose password was generated now."""
    credentials = load(path)
    before = asdict(credentials)
    generated = complete(credentials, users)
    if asdict(credentials) != before:
        save(path, credentials)
    return credentials, generated


def load(path: Path) -> Credentials:
    if not path.exists():
        return Credentials()
    data = json.loads(path.read_text())
    return Credentials(**{key: data[key] for key in Credentials.__dataclass_fields__ if key in data})


def save(path: Path, credentials: Credentials) -> None:
    """Readable by the operator only."""
    state.write(path, (json.dumps(asdict(credentials), indent=2, sort_keys=True) + "\n").encode())
