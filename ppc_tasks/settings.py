"""The one settings object, read from the `ppc` key of Fabric's configuration.

Every layer Fabric reads feeds it: the project's `fabric.yaml`, `~/.fabric.yaml`,
`/etc/fabric.yaml`, `-f FILE`, and `FABRIC_PPC_<KEY>` environment variables. It is
validated once, before anything touches a host; a bad value stops the run with one
line that names the key.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

# Numeric id of the `pypicloud` user in the server image. The data volume and the
# mounted config.ini belong to it; passed to both image builds as a build argument.
PYPICLOUD_UID = 10001
# Where the server image listens, and what nginx proxies to.
SERVER_PORT = 3031
# Inside the data volume.
DATA_DIR = "/var/lib/pypicloud"
FALLBACK_MODES = ("none", "redirect", "cache", "mirror")

# Every default is written as a string, so that Invoke takes each key from a
# FABRIC_PPC_<KEY> environment variable as a plain string too (it cannot cast one into a
# list, and reads "false" as true); from_config parses and validates them all.
# Lists are comma-separated; config files may use real lists, numbers and booleans.
DEFAULTS = {
    "server_names": "",
    "index_hosts": "",
    "admins": "admin",
    "users": "",
    "state_dir": "~/.local/state/ppc-tasks",
    "base_image": "debian:bookworm-slim",
    "data_image": "ppc/pypicloud-data:1.3.12",
    "server_image": "ppc/pypicloud:1.3.12",
    "build_ca_bundle": "",
    "build_index_url": "",
    "build_wheelhouse": "",
    "data_container": "pypi_data",
    "data_volume": "pypicloud-data",
    "server_container": "pypicloud",
    "port": str(SERVER_PORT),
    "config_dir": "/etc/pypicloud",
    "fallback": "redirect",
    "start_timeout": "90",
    "ca_name_constraints": "true",
    "tls_cert": "",
    "tls_key": "",
    "tls_ca_cert": "",
    "tls_host_cert": "",
    "tls_host_key": "",
    "index_url": "",
    "client_user": "",
    "client_index": "index-url",
    "storage": "file",
    "s3_bucket": "",
    "s3_endpoint_url": "",
    "s3_region": "us-east-1",
    "s3_addressing_style": "auto",
    "s3_signature_version": "s3v4",
    "s3_access_key_id": "",
    "s3_prefix": "",
    "stream_files": "false",
    "cache_url": "sqlite",
    # A mapping: Invoke cannot merge one from a config file into a string default, so
    # this one default is a dict, and FABRIC_PPC_OWNERS is read by from_config itself.
    "owners": {},
    "release_window": "2h",
    "private_names": "",
    "allow_admin_client": "false",
    "max_upload_size": "0",
}
STORAGE_KINDS = ("file", "s3")
S3_ADDRESSING_STYLES = ("auto", "path", "virtual")
S3_SIGNATURE_VERSIONS = ("s3v4", "s3")
# Secrets a setting needs are never settings (those live in files and in the repo):
# they come from the environment of one run and are then kept in secrets.json.
S3_SECRET_ENV = "PPC_S3_SECRET_ACCESS_KEY"
CACHE_PASSWORD_ENV = "PPC_CACHE_PASSWORD"
CLIENT_INDEX_MODES = ("index-url", "extra-index-url")
# The account developer machines get when ppc.users names none: never an admin's, whose
# password would then be on every laptop.
CLIENT_ACCOUNT = "client"
# How Invoke names a setting in the environment when fab reads its config.
ENV_PREFIX = "FABRIC_PPC_"

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?"
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_USER = re.compile(rf"^{_NAME}$")
_USER_WHAT = "a user name of letters, digits, '_', '.', '-'"
_CONTAINER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# [registry[:port]/]path[:tag], as `docker build -t` accepts it (no digests).
_IMAGE = re.compile(r"^(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-]+[a-z0-9]+)*"
                    r"(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$")


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_REGION = re.compile(r"^[a-z0-9][a-z0-9-]*$")
# AWS ids are letters and digits; Swift's s3api takes ACCOUNT:USER.
_ACCESS_KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:_.+=/-]*$")
_PREFIX = re.compile(r"^[A-Za-z0-9._/-]+$")
# A glob pattern of project names: name characters and the wildcards * ? [ ].
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9*?\[\]._-]+$")
_NAME_PATTERN_WHAT = "a project name pattern of letters, digits, '._-' and the wildcards '*?[]'"
_DURATION = re.compile(r"^([0-9]+)\s*([smh]?)$")
_SIZE = re.compile(r"^([0-9]+)\s*([kmgt]?)b?$", re.IGNORECASE)
_DATABASE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_QUERY = re.compile(r"^[A-Za-z0-9_]+=[A-Za-z0-9_./-]+(&[A-Za-z0-9_]+=[A-Za-z0-9_./-]+)*$")
CACHE_PORTS = {"postgresql": 5432, "redis": 6379, "rediss": 6379}
# Seconds to connect, and for Redis to answer; an option the URL gives itself wins.
CACHE_TIMEOUTS = {"postgresql": ["connect_timeout=5"],
                  "redis": ["socket_connect_timeout=5", "socket_timeout=15"]}


def certificate_names(server_names: tuple[str, ...], index_hosts: tuple[str, ...]) -> tuple[str, ...]:
    """What the index's certificate covers: its names, then each index host's own."""
    return server_names + tuple(name for name in index_hosts if name not in server_names)


class SettingsError(ValueError):
    """A setting is missing or wrong; the message names the key."""


@dataclass(frozen=True)
class CacheUrl:
    """pypicloud's cache database shared by every index host: PostgreSQL or Redis. Its
    password is no setting (see CACHE_PASSWORD_ENV)."""

    scheme: str  # postgresql | redis | rediss
    user: str
    host: str
    port: int
    database: str  # a PostgreSQL database name, or a Redis database number
    query: str  # PostgreSQL connection options, e.g. sslmode=require

    @property
    def kind(self) -> str:
        return "postgresql" if self.scheme == "postgresql" else "redis"

    def url(self, password: str = "", timeouts: bool = False) -> str:
        """The URL for pypicloud's db.url, the password percent-encoded into it. With
        timeouts, a cache that stops answering fails a request (and /health) in seconds
        instead of holding it for TCP's minutes."""
        login = quote(self.user, safe="")
        if password:
            login += ":" + quote(password, safe="")
        at = f"{login}@" if login else ""
        options = [self.query] if self.query else []
        if timeouts:
            given = {option.split("=")[0] for option in self.query.split("&")}
            options += [option for option in CACHE_TIMEOUTS[self.kind]
                        if option.split("=")[0] not in given]
        query = f"?{'&'.join(options)}" if options else ""
        return f"{self.scheme}://{at}{self.host}:{self.port}/{self.database}{query}"

    def __str__(self) -> str:
        return self.url()


@dataclass(frozen=True)
class Settings:
    server_names: tuple[str, ...]
    index_hosts: tuple[str, ...]  # several hosts serving one index: each one's own name
    admins: tuple[str, ...]
    users: tuple[str, ...]
    state_dir: Path
    base_image: str
    data_image: str
    server_image: str
    build_ca_bundle: Path | None
    build_index_url: str
    build_wheelhouse: Path | None
    data_container: str
    data_volume: str
    server_container: str
    port: int
    config_dir: str
    fallback: str
    start_timeout: int
    ca_name_constraints: bool
    tls_cert: Path | None
    tls_key: Path | None
    tls_ca_cert: Path | None
    tls_host_cert: str
    tls_host_key: str
    explicit_index_url: str  # the index_url setting; see index_url
    client_user: str
    client_index: str
    storage: str  # file (the data volume) | s3
    s3_bucket: str
    s3_endpoint_url: str  # empty: AWS
    s3_region: str
    s3_addressing_style: str
    s3_signature_version: str
    s3_access_key_id: str
    s3_prefix: str
    stream_files: bool  # pypicloud serves files itself instead of redirecting to S3
    cache: CacheUrl | None  # None: sqlite in the data volume
    owners: tuple[tuple[str, tuple[str, ...]], ...]  # (project name pattern, accounts) pairs
    release_window: int  # seconds after a release's first file that its owners may add more
    private_names: tuple[str, ...]  # project name patterns never looked up upstream
    allow_admin_client: bool  # clients.configure may hand an admin's password to clients
    max_upload_size: int  # bytes; 0: no limit
    index_name: str  # the index's folder in state_dir: its identity (see index.py)

    @property
    def primary_name(self) -> str:
        return self.server_names[0]

    @property
    def certificate_names(self) -> tuple[str, ...]:
        return certificate_names(self.server_names, self.index_hosts)

    @property
    def index_url(self) -> str:
        """The index as clients and this machine reach it."""
        return self.explicit_index_url or f"https://{self.primary_name}/simple/"

    @property
    def accounts(self) -> tuple[str, ...]:
        """Every pypicloud account: admins, then the other users."""
        return self.admins + self.users

    @property
    def config_path(self) -> str:
        return f"{self.config_dir}/config.ini"

    @property
    def server_state_dir(self) -> Path:
        """Operator-side files for this index (secrets, CA), one folder per index."""
        return self.state_dir / self.index_name

    @property
    def secrets_path(self) -> Path:
        return self.server_state_dir / "secrets.json"

    @classmethod
    def from_config(cls, ppc: dict, host: str | None = None, environ: dict | None = None,
                    now: datetime.datetime | None = None, require_names: bool = True) -> Settings:
        """Validate the `ppc` config mapping; `host` names the index when server_names is
        empty (without require_names they may stay empty: index.for_clients finds them).
        `environ` is checked for FABRIC_PPC_* variables naming no setting (Invoke would
        silently ignore them)."""
        unknown = sorted(set(ppc) - set(DEFAULTS))
        if unknown:
            raise SettingsError(f"ppc.{unknown[0]}: unknown setting (known: {', '.join(DEFAULTS)})")
        unknown = sorted(name for name in environ or {} if name.startswith(ENV_PREFIX)
                         and name[len(ENV_PREFIX):].lower() not in DEFAULTS)
        if unknown:
            raise SettingsError(f"{unknown[0]}: no such setting (known: "
                                f"{', '.join(ENV_PREFIX + key.upper() for key in DEFAULTS)})")
        raw = {**DEFAULTS, **ppc}
        if not raw["owners"] and (environ or {}).get(ENV_PREFIX + "OWNERS"):
            raw["owners"] = environ[ENV_PREFIX + "OWNERS"]
        names = _string_list(raw, "server_names") or ([host] if host else [])
        values = {
            "server_names": tuple(_check_each(names, "server_names", _is_host_name,
                                              "a DNS name or IP address")),
            "index_hosts": tuple(_check_each(_string_list(raw, "index_hosts"), "index_hosts",
                                             _is_host_name, "a DNS name or IP address")),
            "admins": tuple(_check_each(_string_list(raw, "admins"), "admins", _USER.match, _USER_WHAT)),
            "users": tuple(_check_each(_string_list(raw, "users"), "users", _USER.match, _USER_WHAT)),
            "state_dir": Path(_string(raw, "state_dir")).expanduser(),
            "base_image": _matching(raw, "base_image", _IMAGE, "an image reference like debian:bookworm-slim"),
            "data_image": _matching(raw, "data_image", _IMAGE, "an image reference like ppc/pypicloud-data:1"),
            "server_image": _matching(raw, "server_image", _IMAGE, "an image reference like ppc/pypicloud:1"),
            "build_ca_bundle": _pem_file(raw, "build_ca_bundle", parse=False),
            "build_index_url": _url(raw, "build_index_url"),
            "build_wheelhouse": _wheelhouse(raw, "build_wheelhouse"),
            "data_container": _matching(raw, "data_container", _CONTAINER, "a container name"),
            "data_volume": _matching(raw, "data_volume", _CONTAINER, "a volume name"),
            "server_container": _matching(raw, "server_container", _CONTAINER, "a container name"),
            "port": _integer(raw, "port", 1, 65534),  # and port + 1, for a replacement
            "config_dir": _absolute_path(raw, "config_dir"),
            "fallback": _choice(raw, "fallback", FALLBACK_MODES),
            "start_timeout": _integer(raw, "start_timeout", 1, 3600),
            "ca_name_constraints": _boolean(raw, "ca_name_constraints"),
            "tls_cert": _pem_file(raw, "tls_cert"),
            "tls_key": _pem_file(raw, "tls_key", "PRIVATE KEY-----"),
            "tls_ca_cert": _pem_file(raw, "tls_ca_cert"),
            "tls_host_cert": _absolute_path(raw, "tls_host_cert", required=False),
            "tls_host_key": _absolute_path(raw, "tls_host_key", required=False),
            "explicit_index_url": _url(raw, "index_url", schemes=("https",)),
            "client_user": _string(raw, "client_user"),
            "client_index": _choice(raw, "client_index", CLIENT_INDEX_MODES),
            "storage": _choice(raw, "storage", STORAGE_KINDS),
            "s3_bucket": _matching(raw, "s3_bucket", _BUCKET, "an S3 bucket name (3 to 63 "
                                   "lowercase letters, digits, '.', '-')", required=False),
            "s3_endpoint_url": _url(raw, "s3_endpoint_url"),
            "s3_region": _matching(raw, "s3_region", _REGION, "a region like us-east-1"),
            "s3_addressing_style": _choice(raw, "s3_addressing_style", S3_ADDRESSING_STYLES),
            "s3_signature_version": _choice(raw, "s3_signature_version", S3_SIGNATURE_VERSIONS),
            "s3_access_key_id": _matching(raw, "s3_access_key_id", _ACCESS_KEY_ID,
                                          "an access key id", required=False),
            "s3_prefix": _matching(raw, "s3_prefix", _PREFIX, "a key prefix of letters, "
                                   "digits and '._/-'", required=False),
            "stream_files": _boolean(raw, "stream_files"),
            "cache": _cache_url(raw, "cache_url"),
            "owners": _owners(raw, "owners"),
            "release_window": _duration(raw, "release_window"),
            "private_names": tuple(_check_each(_string_list(raw, "private_names"), "private_names",
                                               _NAME_PATTERN.match, _NAME_PATTERN_WHAT)),
            "allow_admin_client": _boolean(raw, "allow_admin_client"),
            "max_upload_size": _size(raw, "max_upload_size"),
        }
        _check_storage_choice(values)
        if not values["server_names"] and require_names:
            raise SettingsError("ppc.server_names: set the name(s) of the index, or name "
                                "its server with -H")
        _check_tls_choice(values, now or datetime.datetime.now(datetime.timezone.utc))
        if not values["admins"]:
            raise SettingsError("ppc.admins: give at least one admin user name")
        both = set(values["admins"]) & set(values["users"])
        if both:
            raise SettingsError(f"ppc.users: {sorted(both)[0]!r} is an admin already")
        if not values["users"] and CLIENT_ACCOUNT not in values["admins"]:
            values["users"] = (CLIENT_ACCOUNT,)  # developer machines never get an admin's password
        accounts = values["admins"] + values["users"]
        values["client_user"] = values["client_user"] or (values["users"] or accounts)[0]
        if values["client_user"] not in accounts:
            raise SettingsError(f"ppc.client_user: {values['client_user']!r} is not in ppc.admins or ppc.users")
        for pattern, owners in values["owners"]:
            strangers = [owner for owner in owners if owner not in accounts]
            if strangers:
                raise SettingsError(f"ppc.owners: {strangers[0]!r} (for {pattern!r}) is not in "
                                    f"ppc.admins or ppc.users")
        values["index_name"] = values["server_names"][0] if values["server_names"] else ""
        if values["data_container"] == values["server_container"]:
            raise SettingsError("ppc.server_container: must differ from ppc.data_container")
        return cls(**values)


def _string(raw: dict, key: str) -> str:
    value = raw[key]
    if not isinstance(value, str):
        raise SettingsError(f"ppc.{key}: must be a string, got {value!r}")
    return value.strip()


def _string_list(raw: dict, key: str) -> list[str]:
    value = raw[key]
    if isinstance(value, str):  # comma-separated
        value = [part for part in value.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise SettingsError(f"ppc.{key}: must be a list of strings, got {value!r}")
    items = [v.strip() for v in value]
    duplicates = sorted({v for v in items if items.count(v) > 1})
    if duplicates:
        raise SettingsError(f"ppc.{key}: {duplicates[0]!r} is listed twice")
    return items


def _check_each(items: list[str], key: str, valid, what: str) -> list[str]:
    for item in items:
        if not valid(item):
            raise SettingsError(f"ppc.{key}: {item!r} is not {what}")
    return items


def _is_host_name(name: str) -> bool:
    """A DNS name or a plain IP address (no IPv6 scope id: it is no name for a certificate)."""
    if "%" in name:
        return False
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return bool(_HOSTNAME.match(name))


def _matching(raw: dict, key: str, pattern: re.Pattern, what: str, required: bool = True) -> str:
    value = _string(raw, key)
    if (value or required) and not pattern.match(value):
        raise SettingsError(f"ppc.{key}: {value!r} is not {what}")
    return value


def _integer(raw: dict, key: str, low: int, high: int) -> int:
    value = raw[key]
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SettingsError(f"ppc.{key}: must be a whole number from {low} to {high}, got {value!r}")
    return value


def _choice(raw: dict, key: str, choices: tuple[str, ...]) -> str:
    value = _string(raw, key)
    if value not in choices:
        raise SettingsError(f"ppc.{key}: must be one of {', '.join(choices)}, got {value!r}")
    return value


# Absolute, and nothing Docker's --volume (":" ","), nginx (";" "{" "#") or a shell could
# read as syntax.
_HOST_PATH = re.compile(r"^(/[A-Za-z0-9._+@-]+)+$")


def _absolute_path(raw: dict, key: str, required: bool = True) -> str:
    value = _string(raw, key)
    value = value.rstrip("/") if value != "/" else value
    if not value and not required:
        return value
    if not _HOST_PATH.match(value) or "/../" in value + "/" or "/./" in value + "/":
        raise SettingsError(f"ppc.{key}: must be an absolute path of letters, digits and "
                            f"'._+@-' (no spaces, ':', ',' or '..'), got {value!r}")
    return value


def _url(raw: dict, key: str, schemes: tuple[str, ...] = ("http", "https")) -> str:
    value = _string(raw, key)
    if value and not re.match(rf"^({'|'.join(schemes)})://[^\s/@]+(/[^\s]*)?$", value):
        shown = " or ".join(f"{scheme}://" for scheme in schemes)
        raise SettingsError(f"ppc.{key}: must be an {shown} URL, got {value!r}")
    return value


def _boolean(raw: dict, key: str) -> bool:
    value = raw[key]
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        value = value.lower() in ("true", "1", "yes")
    if not isinstance(value, bool):
        raise SettingsError(f"ppc.{key}: must be true or false, got {value!r}")
    return value


def _duration(raw: dict, key: str) -> int:
    """Seconds, from a whole number of seconds or one like 90s, 30m, 2h."""
    value = raw[key]
    match = _DURATION.match(str(value).strip().lower()) if not isinstance(value, bool) else None
    if not match:
        raise SettingsError(f"ppc.{key}: must be a duration like 90s, 30m or 2h, got {value!r}")
    return int(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[match[2]]


def _size(raw: dict, key: str) -> int:
    """Bytes, from a whole number or one like 512k, 100m, 2g (powers of 1024); 0: no limit."""
    value = raw[key]
    match = _SIZE.match(str(value).strip()) if not isinstance(value, bool) else None
    if not match:
        raise SettingsError(f"ppc.{key}: must be a size like 500m or 2g (0: no limit), "
                            f"got {value!r}")
    return int(match[1]) * {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3,
                            "t": 1024 ** 4}[match[2].lower()]


def _owners(raw: dict, key: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """{pattern: [account, ...]}, in a config file; in the environment (FABRIC_PPC_OWNERS)
    "PATTERN=ACCOUNT ACCOUNT;PATTERN=ACCOUNT"."""
    value = raw[key]
    if isinstance(value, str):
        pairs = [part.partition("=") for part in value.split(";") if part.strip()]
        if any(not separator for _, separator, _ in pairs):
            raise SettingsError(f"ppc.{key}: must map project name patterns to accounts, "
                                f"e.g. acme-*=ci release (several joined by ';'), got {value!r}")
        value = {pattern.strip(): accounts.split() for pattern, _, accounts in pairs}
    if hasattr(value, "items") and not isinstance(value, dict):  # Invoke's DataProxy
        value = dict(value.items())
    if not isinstance(value, dict):
        raise SettingsError(f"ppc.{key}: must map project name patterns to lists of accounts, "
                            f"got {value!r}")
    owners = []
    for pattern, accounts in value.items():
        accounts = [accounts] if isinstance(accounts, str) else accounts
        if not isinstance(pattern, str) or not _NAME_PATTERN.match(pattern):
            raise SettingsError(f"ppc.{key}: {pattern!r} is not {_NAME_PATTERN_WHAT}")
        if not isinstance(accounts, (list, tuple)) or not accounts or \
                not all(isinstance(account, str) and _USER.match(account) for account in accounts):
            raise SettingsError(f"ppc.{key}: {pattern!r} must name a list of accounts, "
                                f"got {accounts!r}")
        owners.append((pattern, tuple(accounts)))
    return tuple(owners)


def _wheelhouse(raw: dict, key: str) -> Path | None:
    """A folder on this machine holding the server image's packages (docker/lock
    --wheelhouse makes one)."""
    value = _string(raw, key)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir() or not any(path.glob("*.whl")):
        raise SettingsError(f"ppc.{key}: {value} is no folder of wheels on this machine "
                            f"(make one with docker/lock --wheelhouse {value})")
    return path


def _pem_file(raw: dict, key: str, marker: str = "BEGIN CERTIFICATE-----",
              parse: bool = True) -> Path | None:
    """A readable PEM file on this machine; a certificate is parsed too (a bundle of a
    whole system's CAs is not: one odd old CA in it must not stop the run)."""
    value = _string(raw, key)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_file() or not os.access(path, os.R_OK):
        raise SettingsError(f"ppc.{key}: {value} is not a readable file on this machine")
    data = path.read_bytes()
    what = "private key" if "KEY" in marker else "certificate"
    if marker.encode() not in data:
        raise SettingsError(f"ppc.{key}: {value} holds no PEM {what}")
    if what == "certificate" and parse:
        try:
            x509.load_pem_x509_certificates(data)
        except ValueError:
            raise SettingsError(f"ppc.{key}: {value} holds a PEM certificate that cannot be "
                                f"read (damaged or truncated)") from None
    return path


def _cache_url(raw: dict, key: str) -> CacheUrl | None:
    """sqlite, or postgresql://USER@HOST[:PORT]/DATABASE[?OPTIONS], or
    redis[s]://[USER@]HOST[:PORT][/NUMBER]; never with a password in it."""
    value = _string(raw, key)
    if value == "sqlite":
        return None
    usage = ("sqlite, postgresql://USER@HOST[:PORT]/DATABASE or "
             "redis://[USER@]HOST[:PORT][/NUMBER]")
    try:
        if any(character.isspace() for character in value):
            raise ValueError  # urlsplit would drop a newline silently
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise SettingsError(f"ppc.{key}: must be {usage}, got {value!r}") from None
    scheme = "postgresql" if parts.scheme == "postgres" else parts.scheme
    if parts.password is not None:
        raise SettingsError(f"ppc.{key}: holds a password: give it in the environment as "
                            f"{CACHE_PASSWORD_ENV} instead (it is then kept in secrets.json)")
    if scheme not in CACHE_PORTS or not parts.hostname or not _is_host_name(parts.hostname) \
            or parts.fragment or (parts.username is not None and not _USER.match(parts.username)):
        raise SettingsError(f"ppc.{key}: must be {usage}, got {value!r}")
    database = parts.path.lstrip("/")
    if scheme == "postgresql":
        if not parts.username or not _DATABASE.match(database) or \
                (parts.query and not _QUERY.match(parts.query)):
            raise SettingsError(f"ppc.{key}: must be {usage}, got {value!r}")
    elif not (database or "0").isdigit() or parts.query:
        raise SettingsError(f"ppc.{key}: a Redis database is a number (redis://HOST:6379/0), "
                            f"got {value!r}")
    return CacheUrl(scheme, parts.username or "", parts.hostname, port or CACHE_PORTS[scheme],
                    database or "0", parts.query)


def _check_storage_choice(values: dict) -> None:
    """S3 needs a bucket and a key id; S3 settings without storage = s3 are a mistake;
    several index hosts need both stores shared (pypicloud's cache is not per host)."""
    if len(values["index_hosts"]) > 1 and (values["storage"] != "s3" or values["cache"] is None):
        raise SettingsError("ppc.index_hosts: several index hosts serve one index only from "
                            "shared stores: set ppc.storage = s3 and ppc.cache_url")
    if values["storage"] == "s3":
        for key in ("s3_bucket", "s3_access_key_id"):
            if not values[key]:
                raise SettingsError(f"ppc.{key}: set it for ppc.storage = s3")
        return
    for key in ("s3_bucket", "s3_endpoint_url", "s3_access_key_id", "s3_prefix", "stream_files"):
        if values[key]:
            raise SettingsError(f"ppc.{key}: is set, but ppc.storage is {values['storage']!r}: "
                                f"set ppc.storage = s3 to keep the packages in S3")


def _check_tls_choice(values: dict, now: datetime.datetime) -> None:
    """Own certificate: both files of a pair, one pair at most, a key that fits, valid
    today, for every server name."""
    for cert, key in (("tls_cert", "tls_key"), ("tls_host_cert", "tls_host_key")):
        if bool(values[cert]) != bool(values[key]):
            missing = key if values[cert] else cert
            raise SettingsError(f"ppc.{missing}: set it together with ppc.{cert if missing == key else key}")
    if values["tls_cert"] and values["tls_host_cert"]:
        raise SettingsError("ppc.tls_host_cert: set either tls_cert/tls_key (files here) "
                            "or tls_host_cert/tls_host_key (files on the server), not both")
    if not values["tls_cert"]:
        return
    path = values["tls_cert"]
    certificate = x509.load_pem_x509_certificates(path.read_bytes())[0]  # the leaf comes first
    try:
        key = serialization.load_pem_private_key(values["tls_key"].read_bytes(), password=None)
    except TypeError:
        raise SettingsError(f"ppc.tls_key: {values['tls_key']} is encrypted: give the key "
                            f"without a passphrase (nginx reads it unattended)") from None
    except (ValueError, UnsupportedAlgorithm):
        raise SettingsError(f"ppc.tls_key: {values['tls_key']} holds a private key that cannot "
                            f"be read (damaged, truncated or of an unknown kind)") from None
    if _public_der(key.public_key()) != _public_der(certificate.public_key()):
        raise SettingsError(f"ppc.tls_key: {values['tls_key']} is not the key of {path}")
    valid_from, valid_until = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if not valid_from <= now <= valid_until:
        state = "expired" if now > valid_until else "not valid yet"
        raise SettingsError(f"ppc.tls_cert: {path} is {state}: valid from {valid_from:%Y-%m-%d %H:%M} "
                            f"to {valid_until:%Y-%m-%d %H:%M} UTC")
    uncovered = [name for name in certificate_names(values["server_names"], values["index_hosts"])
                 if not certificate_covers(certificate, name)]
    if uncovered:
        raise SettingsError(f"ppc.tls_cert: {path} does not cover {', '.join(uncovered)} "
                            f"(every name in ppc.server_names and ppc.index_hosts must be in it)")


def certificate_covers(certificate: x509.Certificate, name: str) -> bool:
    """Whether a TLS client accepts the certificate for `name` (SANs; one-label wildcards)."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        address = None
    if address is not None:
        return address in san.get_values_for_type(x509.IPAddress)
    wanted = name.lower().rstrip(".")
    for pattern in san.get_values_for_type(x509.DNSName):
        pattern = pattern.lower().rstrip(".")
        if pattern == wanted or (pattern.startswith("*.") and "." in wanted
                                 and wanted.split(".", 1)[1] == pattern[2:]):
            return True
    return False


def _public_der(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)
