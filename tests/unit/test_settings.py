import datetime
from pathlib import Path

import pytest

from ppc_tasks import settings, values
from ppc_tasks.settings import DEFAULTS, Settings, SettingsError
from tests.own_certificate import write_own_certificate


def make(**ppc) -> Settings:
    return Settings.from_config(ppc, host="pypi-internal")


def test_defaults_name_the_index_after_the_host():
    settings = make()
    assert settings.server_names == ("pypi-internal",)
    assert settings.admins == ("admin",)
    assert settings.port == 3031
    assert settings.config_path == "/etc/pypicloud/config.ini"
    assert settings.server_state_dir == Path("~/.local/state/ppc-tasks/pypi-internal").expanduser()


def test_every_default_is_valid():
    assert Settings.from_config(dict(DEFAULTS), host="h").base_image == "debian:bookworm-slim"


@pytest.mark.parametrize("key, value, message", [
    ("port", 70000, "ppc.port: must be a whole number from 1 to 65534"),
    ("port", True, "ppc.port"),
    ("port", "31x", "ppc.port"),
    ("server_image", "ppc/pypi cloud:1", "ppc.server_image: 'ppc/pypi cloud:1' is not an image"),
    ("data_image", "Ppc/UPPER", "ppc.data_image"),
    ("admins", [], "ppc.admins: give at least one admin"),
    ("admins", ["ok", "ok"], "ppc.admins: 'ok' is listed twice"),
    ("admins", ["bad name"], "ppc.admins: 'bad name'"),
    ("server_names", ["pypi_internal!"], "ppc.server_names"),
    ("fallback", "sometimes", "ppc.fallback: must be one of none, redirect, cache, mirror"),
    ("config_dir", "etc/pypicloud", "ppc.config_dir: must be an absolute path"),
    # Docker would read these as volume syntax, a shell or nginx as their own.
    ("config_dir", "/etc/py:pi", "ppc.config_dir: must be an absolute path"),
    ("config_dir", "/etc/py,pi", "ppc.config_dir: must be an absolute path"),
    ("config_dir", "/etc/py\npi", "ppc.config_dir: must be an absolute path"),
    ("config_dir", "/etc/../root", "ppc.config_dir: must be an absolute path"),
    ("tls_host_cert", "/etc/ssl/x.pem; include /etc/shadow", "ppc.tls_host_cert: must be an absolute path"),
    # An IPv6 scope id is no name for a certificate, and the way in for a shell command.
    ("server_names", ["fe80::1%$(touch${IFS}X)"], "ppc.server_names: 'fe80::1%$(touch${IFS}X)' is not"),
    ("server_names", ["fe80::1%eth0"], "ppc.server_names: 'fe80::1%eth0' is not"),
    ("data_volume", "../data", "ppc.data_volume: '../data' is not a volume name"),
    ("build_index_url", "ftp://mirror", "ppc.build_index_url"),
    ("index_url", "http://pypi.example/simple/", "ppc.index_url: must be an https:// URL"),
    ("users", ["admin"], "ppc.users: 'admin' is an admin already"),
    ("client_user", "nobody", "ppc.client_user: 'nobody' is not in"),
    ("client_index", "both", "ppc.client_index: must be one of index-url, extra-index-url"),
    ("build_ca_bundle", "/nonexistent/ca.pem", "ppc.build_ca_bundle: /nonexistent/ca.pem is not a readable file"),
    ("server_container", "pypi_data", "ppc.server_container: must differ"),
    ("storage", "gcs", "ppc.storage: must be one of file, s3"),
    ("storage", "s3", "ppc.s3_bucket: set it for ppc.storage = s3"),
    # S3 settings without storage = s3 would be silently ignored: a mistake.
    ("s3_bucket", "packages", "ppc.s3_bucket: is set, but ppc.storage is 'file'"),
    ("stream_files", True, "ppc.stream_files: is set, but ppc.storage is 'file'"),
    ("s3_bucket", "Packages_1", "ppc.s3_bucket: 'Packages_1' is not an S3 bucket name"),
    ("s3_region", "us east", "ppc.s3_region: 'us east' is not a region"),
    ("s3_addressing_style", "dns", "ppc.s3_addressing_style: must be one of auto, path, virtual"),
    ("s3_endpoint_url", "s3.example:9000", "ppc.s3_endpoint_url: must be an http:// or https:// URL"),
    ("s3_access_key_id", "AKIA x", "ppc.s3_access_key_id: 'AKIA x' is not an access key id"),
    # A password in the URL would live in the settings (the repo); it goes elsewhere.
    ("cache_url", "postgresql://pypi:hunter2@db/pypi", "ppc.cache_url: holds a password: give "
                                                      "it in the environment as PPC_CACHE_PASSWORD"),
    ("cache_url", "redis://:hunter2@cache", "ppc.cache_url: holds a password"),
    ("cache_url", "mysql://pypi@db/pypi", "ppc.cache_url: must be sqlite, postgresql://"),
    ("cache_url", "postgresql://db/pypi", "ppc.cache_url: must be sqlite, postgresql://"),
    ("cache_url", "postgresql://pypi@db/pypi;drop", "ppc.cache_url: must be sqlite"),
    ("cache_url", "postgresql://pypi@db/pypi?sslmode=require\nx=1", "ppc.cache_url: must be sqlite"),
    ("cache_url", "redis://cache:99999/0", "ppc.cache_url: must be sqlite"),
    ("cache_url", "redis://cache/db1", "ppc.cache_url: a Redis database is a number"),
    ("cache_url", "sqlite:///tmp/x.db", "ppc.cache_url: must be sqlite"),
    ("owners", {"acme-*": ["nobody"]}, "ppc.owners: 'nobody' (for 'acme-*') is not in ppc.admins or ppc.users"),
    ("owners", {"acme/*": ["admin"]}, "ppc.owners: 'acme/*' is not a project name pattern"),
    ("owners", {"acme-*": []}, "ppc.owners: 'acme-*' must name a list of accounts"),
    ("owners", ["acme-*"], "ppc.owners: must map project name patterns to lists of accounts"),
    ("owners", "acme-* ci", "ppc.owners: must map project name patterns to accounts"),
    ("release_window", "two hours", "ppc.release_window: must be a duration like 90s, 30m or 2h"),
    ("release_window", True, "ppc.release_window: must be a duration"),
    ("private_names", ["acme-*", "x y"], "ppc.private_names: 'x y' is not a project name pattern"),
    ("private_names", ["acme\n*"], "ppc.private_names: 'acme\\n*' is not a project name pattern"),
    ("max_upload_size", "lots", "ppc.max_upload_size: must be a size like 500m or 2g"),
    ("max_upload_size", "-1", "ppc.max_upload_size: must be a size"),
])
def test_bad_values_name_the_key(key, value, message):
    with pytest.raises(SettingsError) as error:
        make(**{key: value})
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_unknown_key_is_rejected():
    with pytest.raises(SettingsError, match=r"^ppc.adminz: unknown setting"):
        make(adminz=["x"])


def test_publishing_settings_as_files_and_the_environment_give_them():
    settings = make(owners={"acme-*": ["admin"], "tools": "admin"}, release_window="90m",
                    private_names=["acme-*"], max_upload_size="2g")
    assert settings.owners == (("acme-*", ("admin",)), ("tools", ("admin",)))
    assert (settings.release_window, settings.max_upload_size) == (5400, 2 * 1024 ** 3)
    from_environment = Settings.from_config(
        {"users": "ci,dev", "release_window": "3600", "max_upload_size": "512k"}, host="h",
        environ={"FABRIC_PPC_OWNERS": "acme-*=ci dev;tools-?=ci"})
    assert from_environment.owners == (("acme-*", ("ci", "dev")), ("tools-?", ("ci",)))
    assert (from_environment.release_window, from_environment.max_upload_size) == (3600, 524288)


def test_developer_machines_get_a_plain_account_by_default():
    settings = make()
    assert settings.users == ("client",) and settings.client_user == "client"
    assert make(users=["dev"]).users == ("dev",)
    assert make(admins=["client"]).users == ()  # never the admin's name twice


def test_environment_strings_are_accepted():
    settings = make(port="3032", admins="alice, bob", server_names="pypi.example.com,10.0.0.5")
    assert settings.port == 3032
    assert settings.admins == ("alice", "bob")
    assert settings.server_names == ("pypi.example.com", "10.0.0.5")


def test_ca_bundle_must_hold_a_certificate(tmp_path):
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("hello")
    with pytest.raises(SettingsError, match="holds no PEM certificate"):
        make(build_ca_bundle=str(not_pem))


def test_own_certificate_settings(tmp_path):
    write_own_certificate(tmp_path, ("pypi-internal",))
    settings = make(tls_cert=str(tmp_path / "cert.pem"), tls_key=str(tmp_path / "key.pem"),
                    tls_ca_cert=str(tmp_path / "ca.pem"))
    assert settings.tls_cert == tmp_path / "cert.pem"
    with pytest.raises(SettingsError, match=r"^ppc.tls_key: set it together with ppc.tls_cert"):
        make(tls_cert=str(tmp_path / "cert.pem"))
    with pytest.raises(SettingsError, match=r"^ppc.tls_key: .*ca-key.pem is not the key of"):
        make(tls_cert=str(tmp_path / "cert.pem"), tls_key=str(tmp_path / "ca-key.pem"))
    with pytest.raises(SettingsError, match=r"^ppc.tls_key: .* holds no PEM private key"):
        make(tls_cert=str(tmp_path / "cert.pem"), tls_key=str(tmp_path / "cert.pem"))
    with pytest.raises(SettingsError, match=r"^ppc.tls_host_cert: set either"):
        make(tls_cert=str(tmp_path / "cert.pem"), tls_key=str(tmp_path / "key.pem"),
             tls_host_cert="/etc/c.pem", tls_host_key="/etc/k.pem")
    with pytest.raises(SettingsError, match=r"^ppc.tls_host_key: set it together"):
        make(tls_host_cert="/etc/c.pem")


def test_ipv6_and_ipv4_addresses_are_names():
    assert make(server_names=["fe80::1", "10.0.0.5"]).server_names == ("fe80::1", "10.0.0.5")


def test_unknown_environment_variables_are_refused():
    environ = {"FABRIC_PPC_SERVER_NAMES": "a", "FABRIC_PPC_SERVERNAMES": "b", "HOME": "/root"}
    with pytest.raises(SettingsError, match=r"^FABRIC_PPC_SERVERNAMES: no such setting \(known: "
                                            r"FABRIC_PPC_SERVER_NAMES, "):
        Settings.from_config({}, host="h", environ=environ)
    assert Settings.from_config({}, host="h", environ={"FABRIC_PPC_PORT": "1"}).port == 3031


def test_damaged_certificate_is_one_line(tmp_path):
    files = write_own_certificate(tmp_path, ("pypi-internal",))
    damaged = tmp_path / "damaged.pem"
    lines = files["cert"].read_text().splitlines()
    damaged.write_text("\n".join(lines[:6] + lines[-1:]) + "\n")  # truncated, markers intact
    with pytest.raises(SettingsError, match=r"^ppc.tls_cert: .*damaged.pem holds a PEM certificate "
                                            r"that cannot be read"):
        make(tls_cert=str(damaged), tls_key=str(files["key"]))
    damaged_key = tmp_path / "damaged-key.pem"
    damaged_key.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(SettingsError, match=r"^ppc.tls_key: .* cannot be read"):
        make(tls_cert=str(files["cert"]), tls_key=str(damaged_key))


@pytest.mark.parametrize("days, state", [(-900, "expired"), (10, "not valid yet")])
def test_own_certificate_must_be_valid_today(tmp_path, days, state):
    issued = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days)
    files = write_own_certificate(tmp_path, ("pypi-internal",), issued=issued)
    with pytest.raises(SettingsError) as error:
        make(tls_cert=str(files["cert"]), tls_key=str(files["key"]))
    message = str(error.value)
    assert message.startswith(f"ppc.tls_cert: {files['cert']} is {state}: valid from ")
    assert f"{issued - datetime.timedelta(minutes=5):%Y-%m-%d}" in message and message.endswith(" UTC")


def test_own_certificate_must_cover_every_name(tmp_path):
    files = write_own_certificate(tmp_path, ("pypi-internal", "*.example.com"))
    own = {"tls_cert": str(files["cert"]), "tls_key": str(files["key"])}
    assert make(server_names=["pypi-internal", "pypi.example.com"], **own)
    with pytest.raises(SettingsError, match=r"^ppc.tls_cert: .* does not cover a.b.example.com, "
                                            r"10.0.0.5 \(every name"):
        make(server_names=["pypi-internal", "a.b.example.com", "10.0.0.5"], **own)


def test_s3_storage_and_a_shared_cache():
    settings = make(storage="s3", s3_bucket="pypi-packages", s3_access_key_id="test:tester",
                    s3_endpoint_url="http://s3.internal:8080", s3_addressing_style="path",
                    stream_files="true", cache_url="postgres://pypi@db.internal/pypi?sslmode=require")
    assert (settings.storage, settings.s3_bucket, settings.s3_region) == ("s3", "pypi-packages", "us-east-1")
    assert settings.stream_files is True
    assert settings.cache.kind == "postgresql"
    # The password is percent-encoded into the URL pypicloud gets, never into the setting.
    assert str(settings.cache) == "postgresql://pypi@db.internal:5432/pypi?sslmode=require"
    assert settings.cache.url("p@ss/w%rd") == \
        "postgresql://pypi:p%40ss%2Fw%25rd@db.internal:5432/pypi?sslmode=require"
    redis = make(cache_url="rediss://cache.internal:6380").cache
    assert (redis.kind, redis.url("pw")) == ("redis", "rediss://:pw@cache.internal:6380/0")
    assert make().cache is None and make().storage == "file"
    # pypicloud gets connect timeouts; one the URL gives itself wins.
    given = make(cache_url="postgresql://pypi@db/pypi?connect_timeout=20&sslmode=require").cache
    assert given.url(timeouts=True) == \
        "postgresql://pypi@db:5432/pypi?connect_timeout=20&sslmode=require"
    assert redis.url(timeouts=True).endswith("/0?socket_connect_timeout=5&socket_timeout=15")


def test_several_index_hosts_share_one_certificate_and_need_shared_stores():
    shared = dict(storage="s3", s3_bucket="pypi-packages", s3_access_key_id="k",
                  cache_url="redis://cache.internal")
    settings = make(server_names=["pypi.example.com", "pypi1.example.com"],
                    index_hosts="pypi1.example.com,pypi2.example.com,10.0.0.7", **shared)
    assert settings.certificate_names == ("pypi.example.com", "pypi1.example.com",
                                          "pypi2.example.com", "10.0.0.7")
    for alone in ({"cache_url": "sqlite"}, {"storage": "file", "s3_bucket": "",
                                            "s3_access_key_id": ""}):
        with pytest.raises(SettingsError, match="^ppc.index_hosts: several index hosts serve "
                                                "one index only from shared stores"):
            make(index_hosts=["pypi1", "pypi2"], **{**shared, **alone})
    assert make(index_hosts=["pypi1"]).certificate_names == ("pypi-internal", "pypi1")


def test_a_new_setting_is_one_entry_of_the_table():
    table = settings.SETTINGS + (settings.Setting("greeting", "hello", values.string,
                                                  "what the index says"),)
    with_greeting = settings.settings_class(table)
    assert with_greeting.from_config({}, host="h").greeting == "hello"
    assert with_greeting.from_config({"greeting": "hi"}, host="h").greeting == "hi"
    assert "| `greeting` | `hello` | what the index says |\n" in settings.readme_table(table)
    with pytest.raises(SettingsError, match="^ppc.greeting: unknown setting"):
        Settings.from_config({"greeting": "hi"}, host="h")
    assert set(settings.DEFAULTS) == {setting.key for setting in settings.SETTINGS}
