"""How a setting's value is read and checked: strings, lists, names, numbers, paths,
URLs, files on this machine, durations, sizes, the cache's URL. Each reader takes the raw
`ppc` mapping and a key, and returns the value or raises SettingsError with one line
that names the key. The settings table (settings.py) says which reader each key has.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from cryptography import x509

from .render import guard_module

# Secrets a setting needs are never settings (those live in files and in the repo):
# they come from the environment of one run and are then kept in secrets.json.
S3_SECRET_ENV = "PPC_S3_SECRET_ACCESS_KEY"
CACHE_PASSWORD_ENV = "PPC_CACHE_PASSWORD"

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?"
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
USER = re.compile(rf"^{_NAME}$")
USER_WHAT = "a user name of letters, digits, '_', '.', '-'"
CONTAINER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# [registry[:port]/]path[:tag], as `docker build -t` accepts it (no digests).
IMAGE = re.compile(r"^(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-]+[a-z0-9]+)*"
                    r"(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$")


BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
REGION = re.compile(r"^[a-z0-9][a-z0-9-]*$")
# AWS ids are letters and digits; Swift's s3api takes ACCOUNT:USER.
ACCESS_KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:_.+=/-]*$")
PREFIX = re.compile(r"^[A-Za-z0-9._/-]+$")
# A glob pattern of project names: name characters and the wildcards * ? [ ].
NAME_PATTERN = re.compile(r"^[A-Za-z0-9*?\[\]._-]+$")
NAME_PATTERN_WHAT = "a project name pattern of letters, digits, '._-' and the wildcards '*?[]'"
_DURATION = re.compile(r"^([0-9]+)\s*([smhd]?)$")
_SIZE = re.compile(r"^([0-9]+)\s*([kmgt]?)b?$", re.IGNORECASE)
_DATABASE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_QUERY = re.compile(r"^[A-Za-z0-9_]+=[A-Za-z0-9_./-]+(&[A-Za-z0-9_]+=[A-Za-z0-9_./-]+)*$")
CACHE_PORTS = {"postgresql": 5432, "redis": 6379, "rediss": 6379}
# Seconds to connect, and for Redis to answer; an option the URL gives itself wins.
CACHE_TIMEOUTS = {"postgresql": ["connect_timeout=5"],
                  "redis": ["socket_connect_timeout=5", "socket_timeout=15"]}


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


def string(raw: dict, key: str) -> str:
    value = raw[key]
    if not isinstance(value, str):
        raise SettingsError(f"ppc.{key}: must be a string, got {value!r}")
    return value.strip()


def string_list(raw: dict, key: str) -> list[str]:
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


def check_each(items: list[str], key: str, valid, what: str) -> list[str]:
    for item in items:
        if not valid(item):
            raise SettingsError(f"ppc.{key}: {item!r} is not {what}")
    return items


def is_host_name(name: str) -> bool:
    """A DNS name or a plain IP address (no IPv6 scope id: it is no name for a certificate)."""
    if "%" in name:
        return False
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return bool(_HOSTNAME.match(name))


def matching(raw: dict, key: str, pattern: re.Pattern, what: str, required: bool = True) -> str:
    value = string(raw, key)
    if (value or required) and not pattern.match(value):
        raise SettingsError(f"ppc.{key}: {value!r} is not {what}")
    return value


def integer(raw: dict, key: str, low: int, high: int) -> int:
    value = raw[key]
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SettingsError(f"ppc.{key}: must be a whole number from {low} to {high}, got {value!r}")
    return value


def choice(raw: dict, key: str, choices: tuple[str, ...]) -> str:
    value = string(raw, key)
    if value not in choices:
        raise SettingsError(f"ppc.{key}: must be one of {', '.join(choices)}, got {value!r}")
    return value


# Absolute, and nothing Docker's --volume (":" ","), nginx (";" "{" "#") or a shell could
# read as syntax.
HOST_PATH = re.compile(r"^(/[A-Za-z0-9._+@-]+)+$")


def absolute_path(raw: dict, key: str, required: bool = True) -> str:
    value = string(raw, key)
    value = value.rstrip("/") if value != "/" else value
    if not value and not required:
        return value
    if not HOST_PATH.match(value) or "/../" in value + "/" or "/./" in value + "/":
        raise SettingsError(f"ppc.{key}: must be an absolute path of letters, digits and "
                            f"'._+@-' (no spaces, ':', ',' or '..'), got {value!r}")
    return value


def url(raw: dict, key: str, schemes: tuple[str, ...] = ("http", "https")) -> str:
    value = string(raw, key)
    if value and not re.match(rf"^({'|'.join(schemes)})://[^\s/@]+(/[^\s]*)?$", value):
        shown = " or ".join(f"{scheme}://" for scheme in schemes)
        raise SettingsError(f"ppc.{key}: must be an {shown} URL, got {value!r}")
    return value


def boolean(raw: dict, key: str) -> bool:
    value = raw[key]
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        value = value.lower() in ("true", "1", "yes")
    if not isinstance(value, bool):
        raise SettingsError(f"ppc.{key}: must be true or false, got {value!r}")
    return value


def duration(raw: dict, key: str) -> int:
    """Seconds, from a whole number of seconds or one like 90s, 30m, 2h, 90d."""
    value = raw[key]
    match = _DURATION.match(str(value).strip().lower()) if not isinstance(value, bool) else None
    if not match:
        raise SettingsError(f"ppc.{key}: must be a duration like 90s, 30m or 2h, got {value!r}")
    return int(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]


def size(raw: dict, key: str) -> int:
    """Bytes, from a whole number or one like 512k, 100m, 2g (powers of 1024); 0: no limit."""
    value = raw[key]
    match = _SIZE.match(str(value).strip()) if not isinstance(value, bool) else None
    if not match:
        raise SettingsError(f"ppc.{key}: must be a size like 500m or 2g (0: no limit), "
                            f"got {value!r}")
    return int(match[1]) * {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3,
                            "t": 1024 ** 4}[match[2].lower()]


def owners(raw: dict, key: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """{pattern: [account, ...]}, in a config file; in the environment (FABRIC_PPC_OWNERS)
    "PATTERN=ACCOUNT ACCOUNT;PATTERN=ACCOUNT"."""
    value = plain(raw[key])
    if isinstance(value, str):
        pairs = [part.partition("=") for part in value.split(";") if part.strip()]
        if any(not separator for _, separator, _ in pairs):
            raise SettingsError(f"ppc.{key}: must map project name patterns to accounts, "
                                f"e.g. acme-*=ci release (several joined by ';'), got {value!r}")
        value = {pattern.strip(): accounts.split() for pattern, _, accounts in pairs}
    if not isinstance(value, dict):
        raise SettingsError(f"ppc.{key}: must map project name patterns to lists of accounts, "
                            f"got {value!r}")
    owners = []
    for pattern, accounts in value.items():
        accounts = [accounts] if isinstance(accounts, str) else accounts
        if not isinstance(pattern, str) or not NAME_PATTERN.match(pattern):
            raise SettingsError(f"ppc.{key}: {pattern!r} is not {NAME_PATTERN_WHAT}")
        if not isinstance(accounts, (list, tuple)) or not accounts or not all(
                isinstance(account, str) and USER.match(account) for account in accounts):
            raise SettingsError(f"ppc.{key}: {pattern!r} must name a list of accounts, "
                                f"got {accounts!r}")
        owners.append((pattern, tuple(accounts)))
    return tuple(owners)


def networks(raw: dict, key: str) -> tuple[str, ...]:
    """IP addresses and networks (`10.0.0.5`, `10.0.0.0/24`, `fd00::/8`), as written."""
    items = string_list(raw, key)
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise SettingsError(f"ppc.{key}: {item!r} is no IP address or network "
                                f"(10.0.0.5, 10.0.0.0/24)") from None
    return tuple(items)


def proxies(raw: dict, key: str) -> tuple[str, ...]:
    """Addresses and networks of proxies whose X-Forwarded-For is believed: never every
    address (each client could then say it is any other)."""
    items = networks(raw, key)
    for item in items:
        if ipaddress.ip_network(item, strict=False).prefixlen == 0:
            raise SettingsError(f"ppc.{key}: {item} would believe every client's own "
                                f"X-Forwarded-For: name the balancer's address")
    return items


def trusted_publishers(raw: dict, key: str) -> tuple:
    """The CI jobs that may publish without a password: a list of mappings, each an
    issuer, its claims, `projects` and optionally `account`, `jwks_file`, `ca_bundle`
    (ppc_guard/publishers.py says what each issuer takes); in the environment
    (FABRIC_PPC_TRUSTED_PUBLISHERS), that list as JSON. A publisher without `account`
    has "" here: the settings give it ppc.client_user."""
    value = plain(raw[key])
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except ValueError:
            raise SettingsError(f"ppc.{key}: must be a list of publishers (in the "
                                f"environment: that list as JSON)") from None
    if not isinstance(value, list):
        raise SettingsError(f"ppc.{key}: must be a list of publishers, got {value!r}")
    publishers = guard_module("publishers")
    made = []
    for number, entry in enumerate(value, 1):
        where = f"ppc.{key}[{number}]"
        if not isinstance(entry, dict):
            raise SettingsError(f"{where}: must be a mapping (issuer, its claims, projects)")
        projects = entry.get("projects")
        projects = [projects] if isinstance(projects, str) else projects
        if not isinstance(projects, list) or not projects or not all(
                isinstance(name, str) and NAME_PATTERN.match(name) for name in projects):
            raise SettingsError(f"{where}.projects: a list of {NAME_PATTERN_WHAT}s, got "
                                f"{entry.get('projects')!r}")
        account = entry.get("account", "")
        if account and not (isinstance(account, str) and USER.match(account)):
            raise SettingsError(f"{where}.account: {account!r} is not {USER_WHAT}")
        jwks = _read_text(entry, "jwks_file", where)
        ca_bundle = _read_text(entry, "ca_bundle", where)
        if ca_bundle and "BEGIN CERTIFICATE-----" not in ca_bundle:
            raise SettingsError(f"{where}.ca_bundle: {entry['ca_bundle']} holds no PEM certificate")
        try:
            made.append(publishers.from_setting(entry, tuple(projects), account, jwks, ca_bundle))
        except publishers.SettingError as error:
            raise SettingsError(f"{where}.{error}") from None
        # An issuer has one key set: its tokens are checked against the first publisher's.
        first = next(publisher for publisher in made if publisher.issuer == made[-1].issuer)
        if (first.jwks, first.ca_bundle) != (jwks, ca_bundle):
            raise SettingsError(f"{where}: another publisher of {first.issuer} names other "
                                f"jwks_file or ca_bundle: give them the same")
    return tuple(made)


def _read_text(entry: dict, key: str, where: str) -> str:
    """The text of a file named in a mapping (a path on this machine), or ""."""
    value = entry.get(key)
    if not value:
        return ""
    path = Path(str(value)).expanduser()
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise SettingsError(f"{where}.{key}: {value} is not a readable text file on this "
                            f"machine") from None


def plain(value):
    """Invoke's configuration proxies as plain dicts and lists."""
    if hasattr(value, "items"):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def wheelhouse(raw: dict, key: str) -> Path | None:
    """A folder on this machine holding the server image's packages (docker/lock
    --wheelhouse makes one)."""
    value = string(raw, key)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir() or not any(path.glob("*.whl")):
        raise SettingsError(f"ppc.{key}: {value} is no folder of wheels on this machine "
                            f"(make one with docker/lock --wheelhouse {value})")
    return path


def pem_file(raw: dict, key: str, marker: str = "BEGIN CERTIFICATE-----",
              parse: bool = True) -> Path | None:
    """A readable PEM file on this machine; a certificate is parsed too (a bundle of a
    whole system's CAs is not: one odd old CA in it must not stop the run)."""
    value = string(raw, key)
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


def cache_url(raw: dict, key: str) -> CacheUrl | None:
    """sqlite, or postgresql://USER@HOST[:PORT]/DATABASE[?OPTIONS], or
    redis[s]://[USER@]HOST[:PORT][/NUMBER]; never with a password in it."""
    value = string(raw, key)
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
    if (scheme not in CACHE_PORTS or not parts.hostname or not is_host_name(parts.hostname)
            or parts.fragment or (parts.username is not None and not USER.match(parts.username))):
        raise SettingsError(f"ppc.{key}: must be {usage}, got {value!r}")
    database = parts.path.lstrip("/")
    if scheme == "postgresql":
        if (not parts.username or not _DATABASE.match(database)
                or (parts.query and not _QUERY.match(parts.query))):
            raise SettingsError(f"ppc.{key}: must be {usage}, got {value!r}")
    elif not (database or "0").isdigit() or parts.query:
        raise SettingsError(f"ppc.{key}: a Redis database is a number (redis://HOST:6379/0), "
                            f"got {value!r}")
    return CacheUrl(scheme, parts.username or "", parts.hostname, port or CACHE_PORTS[scheme],
                    database or "0", parts.query)


# -- readers the settings table names, one per kind of value -------------------------------
def host_names(raw: dict, key: str) -> tuple[str, ...]:
    return tuple(check_each(string_list(raw, key), key, is_host_name, "a DNS name or IP address"))


def accounts(raw: dict, key: str) -> tuple[str, ...]:
    return tuple(check_each(string_list(raw, key), key, USER.match, USER_WHAT))


def name_patterns(raw: dict, key: str) -> tuple[str, ...]:
    return tuple(check_each(string_list(raw, key), key, NAME_PATTERN.match, NAME_PATTERN_WHAT))


def local_path(raw: dict, key: str) -> Path:
    return Path(string(raw, key)).expanduser()
