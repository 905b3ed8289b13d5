"""The one settings object, read from the `ppc` key of Fabric's configuration.

Every layer Fabric reads feeds it: the project's `fabric.yaml`, `~/.fabric.yaml`,
`/etc/fabric.yaml`, `-f FILE`, and `FABRIC_PPC_<KEY>` environment variables. It is
validated once, before anything touches a host; a bad value stops the run with one
line that names the key.

Each setting is defined once, in SETTINGS: its key, its default, the reader that checks
its value (values.py) and what it means. DEFAULTS, the Settings class and the table of
settings in docs/settings.md all come from there (`python -m ppc_tasks.overview` writes
the table; a unit test keeps it the same): a new setting is one line here.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from . import certificates, values
from .values import CACHE_PASSWORD_ENV, S3_SECRET_ENV, CacheUrl, SettingsError  # noqa: F401

# Numeric id of the `pypicloud` user in the server image. The data volume and the
# mounted config.ini belong to it; passed to both image builds as a build argument.
PYPICLOUD_UID = 10001
# Where the server image listens, and what nginx proxies to.
SERVER_PORT = 3031
# Inside the data volume.
DATA_DIR = "/var/lib/pypicloud"
FALLBACK_MODES = ("none", "redirect", "cache", "mirror")
STORAGE_KINDS = ("file", "s3")
S3_ADDRESSING_STYLES = ("auto", "path", "virtual")
S3_SIGNATURE_VERSIONS = ("s3v4", "s3")
CLIENT_INDEX_MODES = ("index-url", "extra-index-url")
# The account developer machines get when ppc.users names none: never an admin's, whose
# password would then be on every laptop.
CLIENT_ACCOUNT = "client"
# How Invoke names a setting in the environment when ppc (or fab) reads its config.
ENV_PREFIX = "FABRIC_PPC_"


@dataclass(frozen=True)
class Setting:
    """One key of the `ppc` configuration.

    The default is written as a string (a mapping's as {}), so that Invoke takes the key
    from a FABRIC_PPC_<KEY> environment variable as a plain string too (it cannot cast
    one into a list, and reads "false" as true); `read` parses and checks every form.
    Lists are comma-separated; config files may use real lists, numbers and booleans."""

    key: str
    default: str | dict
    read: Callable[[dict, str], object]
    meaning: str  # the docs' words
    shown_default: str = ""  # the docs' default, when not the default as written
    attribute: str = ""  # the Settings attribute, when not the key

    @property
    def name(self) -> str:
        return self.attribute or self.key


def _choice(choices: tuple[str, ...]):
    return functools.partial(values.choice, choices=choices)


def _matching(pattern, what: str, required: bool = True):
    return functools.partial(values.matching, pattern=pattern, what=what, required=required)


def _integer(low: int, high: int):
    return functools.partial(values.integer, low=low, high=high)


SETTINGS = (
    Setting("server_names", "", values.host_names,
            "DNS names and plain IP addresses clients use for the index; the first one of the "
            "first deploy names the index, and its CA signs for these only (see Identity). "
            "Unset, a first deploy asks to take the `-H` host's name (or takes it with "
            "`--name-from-host`); later runs find the index by it",
            "the `-H` host, as typed (an `~/.ssh/config` alias)"),
    Setting("admins", "admin", values.accounts,
            "pypicloud admin users; passwords are generated on first deploy (see below)",
            "`[admin]`"),
    Setting("users", "", values.accounts,
            "other accounts (read, and upload to the projects they own; no admin rights), "
            "e.g. one for developer machines", "`[]`: deploy makes one account, `client`"),
    Setting("client_user", "", values.string,
            "the account `clients.configure` and `packages.upload` use; its password is in "
            "every developer machine's files, so `clients.configure` refuses an admin unless "
            "`allow_admin_client: true`", "first of `users` (`client`)"),
    Setting("allow_admin_client", "false", values.boolean,
            "let `clients.configure` hand an admin's password to developer machines"),
    Setting("owners", {}, values.owners,
            "accounts that may publish to projects besides their first uploader and the "
            "admins: `{\"acme-*\": [ci]}` (glob patterns of project names); a pattern also "
            "reserves its names: only its accounts and the admins may create such a project; "
            "in the environment `FABRIC_PPC_OWNERS=\"acme-*=ci release;tools-*=bob\"`", "`{}`"),
    Setting("release_window", "2h", values.duration,
            "how long after a release's first file its owners may add more files (`90s`, "
            "`30m`, `2h`); after that, admins only. See Security"),
    Setting("private_names", "", values.name_patterns,
            "glob patterns of project names (`acme-*`) that are never looked up on PyPI, "
            "whatever `fallback` says; every name the index ever held is private too. See "
            "Security", "`[]`"),
    Setting("max_upload_size", "1g", values.size,
            "the largest upload request, for nginx and pypicloud alike: `500m`, `2g`; "
            "`0`: no limit. Larger gets 413"),
    Setting("account_quota", "20g", values.size,
            "the most the projects an account created may hold, all files together (admins "
            "have no cap): `50g`; `0`: no cap. An upload past it gets 413 naming it"),
    Setting("trusted_publishers", "", values.trusted_publishers,
            "CI jobs that publish without a password (trusted publishing): a list of "
            "`{issuer: github, repository: acme/tools, workflow: release.yml, projects: "
            "[acme-tools]}`; issuers `github`, `gitlab` or an https URL with `claims`; "
            "optional `environment`, `account` (default `client_user`), `jwks_file`, "
            "`ca_bundle`. See Publishing", "`[]`"),
    Setting("metrics_allow", "", values.networks,
            "addresses and networks (`10.0.0.5`, `10.0.0.0/24`) whose Prometheus reads "
            "`/metrics` without the scrape credential (`metrics.scrape-config` writes it); "
            "every other scrape needs it. See Monitoring", "`[]`"),
    Setting("server_memory", "1g", values.size,
            "the most memory the server container may use (Docker's `--memory`, no swap "
            "beyond it): an upload or a flood of requests cannot take the host's; `0`: no "
            "limit"),
    Setting("index_url", "", functools.partial(values.url, schemes=("https",)),
            "the index as clients and this machine reach it",
            "`https://<first server name>/simple/`", attribute="explicit_index_url"),
    Setting("client_index", "index-url", _choice(CLIENT_INDEX_MODES),
            "how pip.conf names the index: `index-url` (only this index) or "
            "`extra-index-url` (PyPI and this one); see Clients"),
    Setting("state_dir", "~/.local/state/ppc-tasks", values.local_path,
            "operator-side state, one folder per index"),
    Setting("base_image", "debian:bookworm-slim",
            _matching(values.IMAGE, "an image reference like debian:bookworm-slim"),
            "base of both images"),
    Setting("data_image", "ppc/pypicloud-data:1.3.12",
            _matching(values.IMAGE, "an image reference like ppc/pypicloud-data:1"),
            "tag of the data image"),
    Setting("server_image", "ppc/pypicloud:1.3.12",
            _matching(values.IMAGE, "an image reference like ppc/pypicloud:1"),
            "tag of the server image"),
    Setting("build_ca_bundle", "", functools.partial(values.pem_file, parse=False),
            "PEM bundle on this machine that pip in the image build trusts, and the server "
            "for the upstream index (`fallback: cache`, `mirror`): for TLS-intercepting proxies"),
    Setting("build_index_url", "", values.url,
            "package index the image build's pip uses instead of PyPI (a mirror)"),
    Setting("build_wheelhouse", "", values.wheelhouse,
            "folder on this machine with the locked packages (`docker/lock --wheelhouse DIR` "
            "makes it): the build uses no package index at all, for hosts without internet "
            "access"),
    Setting("data_container", "pypi_data", _matching(values.CONTAINER, "a container name"),
            "name of the data container"),
    Setting("data_volume", "pypicloud-data", _matching(values.CONTAINER, "a volume name"),
            "the named volume holding packages and database"),
    Setting("server_container", "pypicloud", _matching(values.CONTAINER, "a container name"),
            "name of the server container"),
    Setting("port", str(SERVER_PORT), _integer(1, 65534),  # and port + 1, for a replacement
            "port on the host's 127.0.0.1 where pypicloud is published; a replacement starts "
            "on `port + 1`, and the two take turns"),
    Setting("config_dir", "/etc/pypicloud", values.absolute_path,
            "the folder on the host holding `config.ini` (mounted read-only into the server)"),
    Setting("fallback", "redirect", _choice(FALLBACK_MODES),
            "pypicloud `pypi.fallback` for names the index never held: `none`, `redirect`, "
            "`cache`, `mirror` (what each exposes: see Security)"),
    Setting("start_timeout", "90", _integer(1, 3600),
            "seconds to wait for a (re)started server to answer"),
    Setting("ca_name_constraints", "true", values.boolean,
            "limit the local CA to `server_names` (see TLS)"),
    Setting("tls_cert", "", values.pem_file,
            "your own certificate (full chain), a file on this machine; with `tls_key`"),
    Setting("tls_key", "", functools.partial(values.pem_file, marker="PRIVATE KEY-----"),
            "the key of `tls_cert`, a file on this machine"),
    Setting("tls_host_cert", "", functools.partial(values.absolute_path, required=False),
            "your own certificate as a path on the server (e.g. certbot's); with "
            "`tls_host_key`"),
    Setting("tls_host_key", "", functools.partial(values.absolute_path, required=False),
            "the key of `tls_host_cert`, a path on the server"),
    Setting("tls_ca_cert", "", values.pem_file,
            "with your own certificate: the private CA that issued it, for `certs.trust`"),
    Setting("storage", "file", _choice(STORAGE_KINDS),
            "where the packages are: `file` (the data volume) or `s3` (S3 or a compatible "
            "store; see Scaling out)"),
    Setting("s3_bucket", "", _matching(values.BUCKET, "an S3 bucket name (3 to 63 lowercase "
                                                      "letters, digits, '.', '-')", False),
            "with `storage: s3`: the bucket (created when missing)"),
    Setting("s3_access_key_id", "", _matching(values.ACCESS_KEY_ID, "an access key id", False),
            "with `storage: s3`: the access key id; the secret key is no setting (see "
            "Secrets)"),
    Setting("s3_endpoint_url", "", values.url,
            "an S3-compatible store's URL, e.g. `http://swift.internal:8080`", "(none: AWS)"),
    Setting("s3_region", "us-east-1", _matching(values.REGION, "a region like us-east-1"),
            "pypicloud's S3 region"),
    Setting("s3_addressing_style", "auto", _choice(S3_ADDRESSING_STYLES),
            "pypicloud's S3 addressing style; a compatible store usually wants `path`"),
    Setting("s3_signature_version", "s3v4", _choice(S3_SIGNATURE_VERSIONS),
            "pypicloud's S3 signature version"),
    Setting("s3_prefix", "", _matching(values.PREFIX, "a key prefix of letters, digits and "
                                                      "'._/-'", False),
            "a prefix of every key in the bucket"),
    Setting("stream_files", "false", values.boolean,
            "with `storage: s3`: files go to clients through pypicloud instead of a redirect "
            "to a signed URL of the store (for clients that cannot reach the store)"),
    Setting("cache_url", "sqlite", values.cache_url,
            "pypicloud's cache of what the store holds: `sqlite` (in the data volume), "
            "`postgresql://USER@HOST[:PORT]/DATABASE[?sslmode=...]` or "
            "`redis[s]://[USER@]HOST[:PORT][/NUMBER]`, without the password (see Secrets). "
            "pypicloud gets connect timeouts (5 s; Redis also 15 s per command), so a cache "
            "that is down fails requests and `/health` in seconds; a PostgreSQL "
            "`connect_timeout` in the URL wins", attribute="cache"),
    Setting("index_hosts", "", values.host_names,
            "several hosts serving one index behind `balancer.deploy`: each one's own DNS "
            "name or IP address. The index's certificate covers them besides "
            "`server_names`, and the balancer forwards to them. More than one needs "
            "`storage: s3` and a shared `cache_url`"),
    Setting("trusted_proxies", "", values.proxies,
            "the balancer's addresses: an index host takes the client's address from the "
            "X-Forwarded-For these send (from no one else), so logins are throttled, and "
            "`metrics_allow` and the logs see, per client rather than per balancer. Name "
            "the balancer alone: a host named here may speak for any address", "`[]`"),
)
DEFAULTS = {setting.key: setting.default for setting in SETTINGS}


def certificate_names(server_names: tuple[str, ...], index_hosts: tuple[str, ...]) -> tuple[str, ...]:
    """What the index's certificate covers: its names, then each index host's own."""
    return server_names + tuple(name for name in index_hosts if name not in server_names)


class _Behaviour:
    """What Settings knows beyond its values: names derived from them, and how it is read."""

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
    def verified_backup_path(self) -> str:
        """On the server: when its last verified backup was made (backup.create writes it;
        /metrics reads it)."""
        return f"{self.config_dir}/last-verified-backup"

    @property
    def secrets_path(self) -> Path:
        return self.server_state_dir / "secrets.json"

    @classmethod
    def from_config(cls, ppc: dict, host: str | None = None, environ: dict | None = None,
                    now: datetime.datetime | None = None, require_names: bool = True):
        """Validate the `ppc` config mapping; `host` names the index when server_names is
        empty (without require_names they may stay empty: index.for_clients finds them).
        `environ` is checked for FABRIC_PPC_* variables naming no setting (Invoke would
        silently ignore them)."""
        defaults = {setting.key: setting.default for setting in cls.TABLE}
        unknown = sorted(set(ppc) - set(defaults))
        if unknown:
            raise SettingsError(f"ppc.{unknown[0]}: unknown setting (known: {', '.join(defaults)})")
        unknown = sorted(name for name in environ or {} if name.startswith(ENV_PREFIX)
                         and name[len(ENV_PREFIX):].lower() not in defaults)
        if unknown:
            raise SettingsError(f"{unknown[0]}: no such setting (known: "
                                f"{', '.join(ENV_PREFIX + key.upper() for key in defaults)})")
        raw = {**defaults, **ppc}
        # Invoke cannot merge a mapping into a string default, so owners' default is a
        # dict, and FABRIC_PPC_OWNERS is read here.
        if not raw["owners"] and (environ or {}).get(ENV_PREFIX + "OWNERS"):
            raw["owners"] = environ[ENV_PREFIX + "OWNERS"]
        named_by_host = not values.string_list(raw, "server_names") and bool(host)
        if named_by_host:
            raw["server_names"] = [host]
        read = {setting.name: setting.read(raw, setting.key) for setting in cls.TABLE}
        return cls(**_check_together(read, require_names,
                                     now or datetime.datetime.now(datetime.timezone.utc)),
                   names_from_host=named_by_host)


def settings_class(table: tuple[Setting, ...]) -> type:
    """The class of settings a table defines: one attribute per setting, index_name, the
    index's folder in state_dir (its identity, see index.py), and names_from_host: the
    -H host named the index, server_names being empty."""
    made = dataclasses.make_dataclass(
        "Settings", [(setting.name, object) for setting in table] + [
            ("index_name", str), ("names_from_host", bool, dataclasses.field(default=False))],
        bases=(_Behaviour,), frozen=True, namespace={"TABLE": table})
    made.__module__ = __name__
    made.__doc__ = "The validated settings of a run (see settings_class)."
    return made


Settings = settings_class(SETTINGS)


# -- what only several settings together can say ------------------------------------------
def _check_together(read: dict, require_names: bool, now: datetime.datetime) -> dict:
    _check_storage_choice(read)
    if not read["server_names"] and require_names:
        raise SettingsError("ppc.server_names: set the name(s) of the index, or name "
                            "its server with -H")
    _check_tls_choice(read, now)
    if not read["admins"]:
        raise SettingsError("ppc.admins: give at least one admin user name")
    both = set(read["admins"]) & set(read["users"])
    if both:
        raise SettingsError(f"ppc.users: {sorted(both)[0]!r} is an admin already")
    if not read["users"] and CLIENT_ACCOUNT not in read["admins"]:
        read["users"] = (CLIENT_ACCOUNT,)  # developer machines never get an admin's password
    accounts = read["admins"] + read["users"]
    read["client_user"] = read["client_user"] or (read["users"] or accounts)[0]
    if read["client_user"] not in accounts:
        raise SettingsError(f"ppc.client_user: {read['client_user']!r} is not in ppc.admins or ppc.users")
    for pattern, owners in read["owners"]:
        strangers = [owner for owner in owners if owner not in accounts]
        if strangers:
            raise SettingsError(f"ppc.owners: {strangers[0]!r} (for {pattern!r}) is not in "
                                f"ppc.admins or ppc.users")
    read["trusted_publishers"] = tuple(
        _publishing_account(publisher, read) for publisher in read["trusted_publishers"])
    read["index_name"] = read["server_names"][0] if read["server_names"] else ""
    if read["data_container"] == read["server_container"]:
        raise SettingsError("ppc.server_container: must differ from ppc.data_container")
    return read


def _publishing_account(publisher, read: dict):
    """A publisher's account: a plain one (an admin's uploads pass every rule), by default
    ppc.client_user."""
    account = publisher.account or read["client_user"]
    where = f"ppc.trusted_publishers ({publisher.name})"
    if account not in read["users"]:
        what = "an admin" if account in read["admins"] else "not in ppc.users"
        raise SettingsError(f"{where}: account {account!r} is {what}: name a plain account "
                            f"(ppc.users) as its `account`")
    return dataclasses.replace(publisher, account=account)


def _check_storage_choice(read: dict) -> None:
    """S3 needs a bucket and a key id; S3 settings without storage = s3 are a mistake;
    several index hosts need both stores shared (pypicloud's cache is not per host)."""
    if len(read["index_hosts"]) > 1 and (read["storage"] != "s3" or read["cache"] is None):
        raise SettingsError("ppc.index_hosts: several index hosts serve one index only from "
                            "shared stores: set ppc.storage = s3 and ppc.cache_url")
    if read["storage"] == "s3":
        for key in ("s3_bucket", "s3_access_key_id"):
            if not read[key]:
                raise SettingsError(f"ppc.{key}: set it for ppc.storage = s3")
        return
    for key in ("s3_bucket", "s3_endpoint_url", "s3_access_key_id", "s3_prefix", "stream_files"):
        if read[key]:
            raise SettingsError(f"ppc.{key}: is set, but ppc.storage is {read['storage']!r}: "
                                f"set ppc.storage = s3 to keep the packages in S3")


def _check_tls_choice(read: dict, now: datetime.datetime) -> None:
    """Own certificate: both files of a pair, one pair at most, a key that fits, valid
    today, for every server name."""
    for cert, key in (("tls_cert", "tls_key"), ("tls_host_cert", "tls_host_key")):
        if bool(read[cert]) != bool(read[key]):
            missing = key if read[cert] else cert
            raise SettingsError(f"ppc.{missing}: set it together with ppc.{cert if missing == key else key}")
    if read["tls_cert"] and read["tls_host_cert"]:
        raise SettingsError("ppc.tls_host_cert: set either tls_cert/tls_key (files here) "
                            "or tls_host_cert/tls_host_key (files on the server), not both")
    if not read["tls_cert"]:
        return
    path = read["tls_cert"]
    certificate = x509.load_pem_x509_certificates(path.read_bytes())[0]  # the leaf comes first
    try:
        key = serialization.load_pem_private_key(read["tls_key"].read_bytes(), password=None)
    except TypeError:
        raise SettingsError(f"ppc.tls_key: {read['tls_key']} is encrypted: give the key "
                            f"without a passphrase (nginx reads it unattended)") from None
    except (ValueError, UnsupportedAlgorithm):
        raise SettingsError(f"ppc.tls_key: {read['tls_key']} holds a private key that cannot "
                            f"be read (damaged, truncated or of an unknown kind)") from None
    if not certificates.key_fits(key, certificate):
        raise SettingsError(f"ppc.tls_key: {read['tls_key']} is not the key of {path}")
    problem = certificates.validity_problem(certificate, now)
    if problem:
        raise SettingsError(f"ppc.tls_cert: {path} is {problem}")
    uncovered = certificates.uncovered(
        certificate, certificate_names(read["server_names"], read["index_hosts"]))
    if uncovered:
        raise SettingsError(f"ppc.tls_cert: {path} does not cover {', '.join(uncovered)} "
                            f"(every name in ppc.server_names and ppc.index_hosts must be in it)")


# -- the docs' table ----------------------------------------------------------------------
def readme_table(table: tuple[Setting, ...] = SETTINGS) -> str:
    """The docs' table of settings, as the table defines them."""
    rows = ["| key | default | meaning |", "| --- | --- | --- |"]
    for setting in table:
        default = setting.shown_default or (f"`{setting.default}`" if setting.default else "(none)")
        rows.append(f"| `{setting.key}` | {default} | {setting.meaning} |")
    return "\n".join(rows) + "\n"

