"""The one settings object, read from the `ppc` key of Fabric's configuration.

Every layer Fabric reads feeds it: the project's `fabric.yaml`, `~/.fabric.yaml`,
`/etc/fabric.yaml`, `-f FILE`, and `FABRIC_PPC_<KEY>` environment variables. It is
validated once, before anything touches a host; a bad value stops the run with one
line that names the key.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
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
    "admins": "admin",
    "users": "",
    "state_dir": "~/.local/state/ppc-tasks",
    "base_image": "debian:bookworm-slim",
    "data_image": "ppc/pypicloud-data:1.3.12",
    "server_image": "ppc/pypicloud:1.3.12",
    "build_ca_bundle": "",
    "build_index_url": "",
    "data_container": "pypi_data",
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
}
CLIENT_INDEX_MODES = ("index-url", "extra-index-url")

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?"
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_USER = re.compile(rf"^{_NAME}$")
_USER_WHAT = "a user name of letters, digits, '_', '.', '-'"
_CONTAINER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# [registry[:port]/]path[:tag], as `docker build -t` accepts it (no digests).
_IMAGE = re.compile(r"^(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-]+[a-z0-9]+)*"
                    r"(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$")


class SettingsError(ValueError):
    """A setting is missing or wrong; the message names the key."""


@dataclass(frozen=True)
class Settings:
    server_names: tuple[str, ...]
    admins: tuple[str, ...]
    users: tuple[str, ...]
    state_dir: Path
    base_image: str
    data_image: str
    server_image: str
    build_ca_bundle: Path | None
    build_index_url: str
    data_container: str
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
    index_url: str
    client_user: str
    client_index: str

    @property
    def primary_name(self) -> str:
        return self.server_names[0]

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
        return self.state_dir / self.primary_name

    @property
    def secrets_path(self) -> Path:
        return self.server_state_dir / "secrets.json"

    @classmethod
    def from_config(cls, ppc: dict, host: str | None = None) -> Settings:
        """Validate the `ppc` config mapping; `host` names the index when server_names is empty."""
        unknown = sorted(set(ppc) - set(DEFAULTS))
        if unknown:
            raise SettingsError(f"ppc.{unknown[0]}: unknown setting (known: {', '.join(DEFAULTS)})")
        raw = {**DEFAULTS, **ppc}
        names = _string_list(raw, "server_names") or ([host] if host else [])
        values = {
            "server_names": tuple(_check_each(names, "server_names", _is_host_name,
                                              "a DNS name or IP address")),
            "admins": tuple(_check_each(_string_list(raw, "admins"), "admins", _USER.match, _USER_WHAT)),
            "users": tuple(_check_each(_string_list(raw, "users"), "users", _USER.match, _USER_WHAT)),
            "state_dir": Path(_string(raw, "state_dir")).expanduser(),
            "base_image": _matching(raw, "base_image", _IMAGE, "an image reference like debian:bookworm-slim"),
            "data_image": _matching(raw, "data_image", _IMAGE, "an image reference like ppc/pypicloud-data:1"),
            "server_image": _matching(raw, "server_image", _IMAGE, "an image reference like ppc/pypicloud:1"),
            "build_ca_bundle": _pem_file(raw, "build_ca_bundle"),
            "build_index_url": _url(raw, "build_index_url"),
            "data_container": _matching(raw, "data_container", _CONTAINER, "a container name"),
            "server_container": _matching(raw, "server_container", _CONTAINER, "a container name"),
            "port": _integer(raw, "port", 1, 65535),
            "config_dir": _absolute_path(raw, "config_dir"),
            "fallback": _choice(raw, "fallback", FALLBACK_MODES),
            "start_timeout": _integer(raw, "start_timeout", 1, 3600),
            "ca_name_constraints": _boolean(raw, "ca_name_constraints"),
            "tls_cert": _pem_file(raw, "tls_cert"),
            "tls_key": _pem_file(raw, "tls_key", "PRIVATE KEY-----"),
            "tls_ca_cert": _pem_file(raw, "tls_ca_cert"),
            "tls_host_cert": _absolute_path(raw, "tls_host_cert", required=False),
            "tls_host_key": _absolute_path(raw, "tls_host_key", required=False),
            "index_url": _url(raw, "index_url", schemes=("https",)),
            "client_user": _string(raw, "client_user"),
            "client_index": _choice(raw, "client_index", CLIENT_INDEX_MODES),
        }
        _check_tls_choice(values)
        if not values["server_names"]:
            raise SettingsError("ppc.server_names: set the name(s) of the index, as used for its deploy")
        if not values["admins"]:
            raise SettingsError("ppc.admins: give at least one admin user name")
        both = set(values["admins"]) & set(values["users"])
        if both:
            raise SettingsError(f"ppc.users: {sorted(both)[0]!r} is an admin already")
        accounts = values["admins"] + values["users"]
        values["client_user"] = values["client_user"] or (values["users"] or accounts)[0]
        if values["client_user"] not in accounts:
            raise SettingsError(f"ppc.client_user: {values['client_user']!r} is not in ppc.admins or ppc.users")
        values["index_url"] = values["index_url"] or f"https://{values['server_names'][0]}/simple/"
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
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return bool(_HOSTNAME.match(name))


def _matching(raw: dict, key: str, pattern: re.Pattern, what: str) -> str:
    value = _string(raw, key)
    if not pattern.match(value):
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


def _absolute_path(raw: dict, key: str, required: bool = True) -> str:
    value = _string(raw, key).rstrip("/")
    if not value and not required:
        return value
    if not value.startswith("/") or re.search(r"[\s'\"\\$`]", value):
        raise SettingsError(f"ppc.{key}: must be an absolute path without spaces or quotes, got {value!r}")
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


def _pem_file(raw: dict, key: str, marker: str = "BEGIN CERTIFICATE-----") -> Path | None:
    value = _string(raw, key)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_file() or not os.access(path, os.R_OK):
        raise SettingsError(f"ppc.{key}: {value} is not a readable file on this machine")
    if marker.encode() not in path.read_bytes():
        what = "private key" if "KEY" in marker else "certificate"
        raise SettingsError(f"ppc.{key}: {value} holds no PEM {what}")
    return path


def _check_tls_choice(values: dict) -> None:
    """Own certificate: both files of a pair, one pair at most, and a key that fits."""
    for cert, key in (("tls_cert", "tls_key"), ("tls_host_cert", "tls_host_key")):
        if bool(values[cert]) != bool(values[key]):
            missing = key if values[cert] else cert
            raise SettingsError(f"ppc.{missing}: set it together with ppc.{cert if missing == key else key}")
    if values["tls_cert"] and values["tls_host_cert"]:
        raise SettingsError("ppc.tls_host_cert: set either tls_cert/tls_key (files here) "
                            "or tls_host_cert/tls_host_key (files on the server), not both")
    if values["tls_cert"]:
        certificate = x509.load_pem_x509_certificate(values["tls_cert"].read_bytes())
        try:
            key = serialization.load_pem_private_key(values["tls_key"].read_bytes(), password=None)
        except (ValueError, TypeError) as error:
            raise SettingsError(f"ppc.tls_key: cannot read it without a passphrase ({error})") from None
        if _public_der(key.public_key()) != _public_der(certificate.public_key()):
            raise SettingsError(f"ppc.tls_key: {values['tls_key']} is not the key of {values['tls_cert']}")


def _public_der(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)
