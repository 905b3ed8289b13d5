from pathlib import Path

import pytest

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
    ("port", 70000, "ppc.port: must be a whole number from 1 to 65535"),
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
    ("build_index_url", "ftp://mirror", "ppc.build_index_url"),
    ("index_url", "http://pypi.example/simple/", "ppc.index_url: must be an https:// URL"),
    ("users", ["admin"], "ppc.users: 'admin' is an admin already"),
    ("client_user", "nobody", "ppc.client_user: 'nobody' is not in"),
    ("client_index", "both", "ppc.client_index: must be one of index-url, extra-index-url"),
    ("build_ca_bundle", "/nonexistent/ca.pem", "ppc.build_ca_bundle: /nonexistent/ca.pem is not a readable file"),
    ("server_container", "pypi_data", "ppc.server_container: must differ"),
])
def test_bad_values_name_the_key(key, value, message):
    with pytest.raises(SettingsError) as error:
        make(**{key: value})
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_unknown_key_is_rejected():
    with pytest.raises(SettingsError, match=r"^ppc.adminz: unknown setting"):
        make(adminz=["x"])


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
    write_own_certificate(tmp_path, ("pypi.test",))
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
