"""Secrets kept on the operator's machine: admin passwords, beaker session keys, and the
secrets of the services the index uses (S3, the cache database), given once in the
environment (settings.S3_SECRET_ENV, settings.CACHE_PASSWORD_ENV).

One JSON file per index, `<state_dir>/<server name>/secrets.json`, mode 0600 in a 0700
folder. Generated once and kept, so redeploys neither change passwords nor log users out.
To choose a password yourself, edit it in that file and deploy again.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from passlib.hash import sha512_crypt

from . import state
from .errors import TaskError
from .plan import Change, LocalFile, Step, Unchanged
from .settings import CACHE_PASSWORD_ENV, S3_SECRET_ENV, Settings


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
    # Signs the manifest of every backup archive of this index (HMAC-SHA256): a restore
    # tells this index's archives from any other's, and from forged ones.
    backup_key: str = ""
    # What Prometheus sends as a bearer token to read /metrics (config.ini has its sha256).
    metrics_token: str = ""
    # The services' own: not the index's identity, so a new identity keeps them.
    s3_secret_access_key: str = ""
    cache_password: str = ""


# field, the environment variable that gives it, what it is
SERVICE_SECRETS = (("s3_secret_access_key", S3_SECRET_ENV, "the S3 secret access key"),
                   ("cache_password", CACHE_PASSWORD_ENV, "the cache database's password"))


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
    credentials.backup_key = credentials.backup_key or secrets.token_hex(32)
    credentials.metrics_token = credentials.metrics_token or secrets.token_urlsafe(32)
    return generated


def backup_key(settings: Settings) -> bytes:
    """The key that signs this index's backups, made (and kept) when it has none yet."""
    path = settings.secrets_path
    credentials = load(path)
    if not credentials.backup_key:
        credentials.backup_key = secrets.token_hex(32)
        save(path, credentials)
    return bytes.fromhex(credentials.backup_key)


def client_account_is_new(settings: Settings, kept: Credentials) -> bool:
    """Whether this deploy makes the client account of an index that has others (kept:
    secrets.json as read): one deployed when developer machines got an admin's password
    (the old default)."""
    return bool(kept.passwords) and settings.client_user not in kept.passwords


def take_service_secrets(credentials: Credentials, settings: Settings, path: Path,
                         environ: Mapping[str, str]) -> list[str]:
    """Take the service secrets this run's environment gives (a changed one replaces the
    kept one); returns the variables that changed something. A secret the settings
    need and nobody gave stops the run here, before anything changes."""
    taken = []
    for name, variable, what in SERVICE_SECRETS:
        given = environ.get(variable, "")
        if "\n" in given or "\r" in given:
            raise CredentialsError(f"{variable}: must be one line")
        if given and given != getattr(credentials, name):
            setattr(credentials, name, given)
            taken.append(variable)
        if (name == "s3_secret_access_key" and settings.storage == "s3"
                and not credentials.s3_secret_access_key):
            raise CredentialsError(f"ppc.storage = s3 needs {what}: set {variable} in the "
                                   f"environment of one deploy; it is then kept in {path}")
    return taken


def prepare(settings: Settings, fresh: bool = False, environ: Mapping[str, str] = os.environ,
            kept: Credentials | None = None) -> tuple[Credentials, Step]:
    """The credentials, completed in memory, and the step that saves them when anything
    was generated or given (so --dry creates nothing). kept: what secrets.json holds, as
    read (else read now). fresh (--new-identity) starts again but for the services'
    secrets."""
    path = settings.secrets_path
    kept = kept if kept is not None else load(path)
    credentials = Credentials(**copy.deepcopy(asdict(kept))) if not fresh else Credentials(**{
        name: getattr(kept, name) for name, _, _ in SERVICE_SECRETS})
    before = asdict(credentials)
    generated = complete(credentials, settings.accounts)
    new_key = not before["backup_key"]
    hashed = ({key: value for key, value in asdict(credentials).items() if key != "backup_key"}
              != {key: value for key, value in before.items() if key != "backup_key"})
    taken = take_service_secrets(credentials, settings, path, environ)
    if not new_key and not hashed and not taken:
        return credentials, Unchanged("index.secrets", str(path))
    done, would = [], []
    if generated:
        names = ", ".join(generated)
        done.append(f"generated passwords for {names}")
        would.append(f"generate passwords for {names}")
    elif hashed:
        done.append("made password hashes")
        would.append("make password hashes")
    if new_key and not generated:
        done.append("made the key that signs backups")
        would.append("make the key that signs backups")
    if taken:
        done.append(f"kept what {' and '.join(taken)} gave")
        would.append(f"keep what {' and '.join(taken)} gives")
    return credentials, Change(
        "index.secrets", done=f"{path}: {', '.join(done)} (mode 0600; the output never shows them)",
        would=f"{', '.join(would)} in {path}",
        local=[LocalFile(path, serialized(credentials))])


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
    for key in ("session_encrypt_key", "session_validate_key", "backup_key",
                *(name for name, _, _ in SERVICE_SECRETS)):
        if not isinstance(data.get(key, ""), str):
            raise CredentialsError(f"{path}: {key!r} must be a string")
    backup_key = data.get("backup_key", "")
    if backup_key and (len(backup_key) != 64 or any(char not in "0123456789abcdef"
                                                     for char in backup_key)):
        raise CredentialsError(f"{path}: 'backup_key' must be 64 hexadecimal digits (or absent: "
                               f"a new one is made)")
    return Credentials(**{key: data[key] for key in Credentials.__dataclass_fields__ if key in data})


def serialized(credentials: Credentials) -> bytes:
    return (json.dumps(asdict(credentials), indent=2, sort_keys=True) + "\n").encode()


def save(path: Path, credentials: Credentials) -> None:
    """Readable by the operator only."""
    state.write(path, serialized(credentials))


# -- the logins tasks use ------------------------------------------------------------------
def admin_credentials(settings: Settings, task: str) -> Credentials:
    """The index's secrets on this machine, for a task that logs in as an admin (`task`,
    as the message names it: roll back, restore, yank)."""
    creds = load(settings.secrets_path)
    if settings.admins[0] not in creds.passwords:
        raise TaskError(f"the index's admin passwords are not in {settings.secrets_path}: "
                        f"{task} from the machine that deploys it")
    return creds


def login_line(settings: Settings, creds: Credentials) -> bytes:
    """An admin's login, sent on stdin: the check that a new container serves accounts,
    and what an admin does through the index's API."""
    admin = settings.admins[0]
    return f"{admin}:{creds.passwords[admin]}\n".encode()


def client_password(settings: Settings) -> str:
    """The client account's password, from the index's secrets on this machine."""
    path = settings.secrets_path
    password = load(path).passwords.get(settings.client_user)
    if not password:
        raise TaskError(f"no password for {settings.client_user!r} in {path}: "
                        f"deploy the server first (with the same ppc settings)")
    return password
