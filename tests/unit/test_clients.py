import configparser

import pytest

from ppc_tasks import certs, clients, packages
from ppc_tasks.facts import Facts, FileFacts, parse_pip_versions
from ppc_tasks.settings import Settings, SettingsError
from ppc_tasks.system import FAMILIES, parse_platform

PASSWORD = "s3cret/+"


@pytest.fixture
def settings(tmp_path):
    return Settings.from_config({"server_names": ["pypi.example.com"], "users": ["dev"],
                                 "state_dir": str(tmp_path)}, host=None)


def parsed(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return parser


def test_pypirc_adds_internal_and_keeps_other_repositories(settings):
    existing = ("[distutils]\nindex-servers =\n    pypi\n    company\n\n"
                "[company]\nrepository = https://company.example/\nusername = me\n")
    merged = clients.merge_pypirc(existing, clients.render_pypirc(settings, PASSWORD, "/etc/ca.pem"))
    config = parsed(merged)
    assert config["distutils"]["index-servers"].split() == ["pypi", "company", "internal"]
    assert config["company"]["repository"] == "https://company.example/"
    assert dict(config["internal"]) == {"repository": "https://pypi.example.com/simple/",
                                        "username": "dev", "password": PASSWORD,
                                        "ca_cert": "/etc/ca.pem"}
    # Merging again changes nothing: a second run rewrites no file.
    assert clients.merge_pypirc(merged, clients.render_pypirc(settings, PASSWORD, "/etc/ca.pem")) == merged


def test_pypirc_from_nothing(settings):
    merged = clients.merge_pypirc("", clients.render_pypirc(settings, PASSWORD, None))
    config = parsed(merged)
    assert config["distutils"]["index-servers"].split() == ["internal"]
    assert "ca_cert" not in config["internal"]


def test_pip_conf_index_url_with_quoted_credentials(settings):
    merged = clients.merge_pip_conf("[global]\ntimeout = 60\n",
                                    clients.render_pip_conf(settings, PASSWORD, "/etc/ca.pem"))
    config = parsed(merged)
    assert config["global"]["index-url"] == "https://dev:s3cret%2F%2B@pypi.example.com/simple/"
    assert config["global"]["cert"] == "/etc/ca.pem"
    assert config["global"]["timeout"] == "60"
    assert clients.merge_pip_conf(merged, clients.render_pip_conf(settings, PASSWORD, "/etc/ca.pem")) == merged


def test_pip_conf_extra_index_url_keeps_other_indexes(tmp_path):
    settings = Settings.from_config({"server_names": ["pypi.example.com"], "state_dir": str(tmp_path),
                                     "client_index": "extra-index-url"}, host=None)
    existing = "[global]\nextra-index-url = https://mirror.example/simple/\n"
    ours = clients.render_pip_conf(settings, PASSWORD, None)
    merged = clients.merge_pip_conf(existing, ours)
    urls = parsed(merged)["global"]["extra-index-url"].split()
    assert urls == ["https://mirror.example/simple/",
                    "https://admin:s3cret%2F%2B@pypi.example.com/simple/"]
    assert "index-url" not in parsed(merged)["global"]
    assert clients.merge_pip_conf(merged, ours) == merged


def test_client_user_defaults_to_the_first_plain_user(settings, tmp_path):
    assert settings.client_user == "dev"
    admins_only = Settings.from_config({"server_names": ["p"], "state_dir": str(tmp_path)}, host=None)
    assert admins_only.client_user == "admin"


def test_clients_need_the_index_name_not_their_own():
    with pytest.raises(SettingsError, match="^ppc.server_names: set the name"):
        Settings.from_config({}, host=None)


def test_twine_command_has_no_password(settings):
    argv = packages.twine_argv(settings, ["dist/a.whl"])
    assert argv[1:] == ["-m", "twine", "upload", "--non-interactive", "--disable-progress-bar",
                        "--repository-url", "https://pypi.example.com/simple/",
                        "--cert", str(settings.server_state_dir / "ca.crt"), "dist/a.whl"]
    assert PASSWORD not in " ".join(argv)


def test_existing_version_gets_a_clear_error():
    output = ("Uploading distributions to https://pypi.example.com/simple/\n"
              "Uploading ppc_sample-0.1.0-py3-none-any.whl\n"
              "ERROR    HTTPError: 409 Conflict from https://pypi.example.com/simple/\n")
    assert packages.upload_error(output, ["dist/x"]) == (
        "ppc_sample-0.1.0-py3-none-any.whl is already on the index, which never overwrites "
        "a release: build a new version")


def test_user_bundle_is_system_cas_then_ours():
    ca = b"-----BEGIN CERTIFICATE-----\nOURS\n-----END CERTIFICATE-----\n"
    system = "-----BEGIN CERTIFICATE-----\nSYSTEM\n-----END CERTIFICATE-----\n"
    assert clients.combined_bundle(system, ca) == system.encode() + ca
    assert clients.combined_bundle("", ca) == ca


@pytest.mark.parametrize(("pip", "cert_in_pip_conf"), [
    ("24.2 3.10", False), ("25.1.1 3.12", False),  # truststore: the system store serves
    ("24.1.2 3.12", True), ("24.2 3.9", True), ("23.0.1 3.11", True), ("", True),
])
def test_pip_conf_names_the_bundle_only_where_pip_needs_it(settings, pip, cert_in_pip_conf):
    facts = Facts(platform=parse_platform("os=debian\nsystemd=1"), home="/home/dev",
                  user_ids="1000:1000", pip=parse_pip_versions(pip),
                  files={path: FileFacts(None) for path in (
                      "~/.pypirc", "~/.config/pip/pip.conf",
                      certs.trust_path(FAMILIES["debian"].trust_store, settings.index_name))})
    steps = {step.step: step for step in clients.plan_configure(
        settings, facts, PASSWORD, b"-----BEGIN CERTIFICATE-----\n", True, "dev1")}
    pip_conf = parsed(steps["clients.pip"].diffs[0].new.decode())
    assert pip_conf.has_option("global", "cert") == cert_in_pip_conf
    # twine reads certifi only: .pypirc names the bundle whatever pip does.
    pypirc = parsed(steps["clients.pypirc"].diffs[0].new.decode())
    assert pypirc["internal"]["ca_cert"] == "/etc/ssl/certs/ca-certificates.crt"


def test_a_cert_line_configure_wrote_goes_once_pip_no_longer_needs_it(settings):
    earlier = "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\ntimeout = 30\n"
    merged = parsed(clients.merge_pip_conf(earlier, "[global]\nindex-url = https://x/simple/\n",
                                           "/etc/ssl/certs/ca-certificates.crt"))
    assert not merged.has_option("global", "cert") and merged["global"]["timeout"] == "30"
    own = "[global]\ncert = /home/dev/corporate.pem\n"
    kept = parsed(clients.merge_pip_conf(own, "[global]\nindex-url = https://x/simple/\n",
                                         "/etc/ssl/certs/ca-certificates.crt"))
    assert kept["global"]["cert"] == "/home/dev/corporate.pem"


def test_a_mac_trusts_the_ca_in_its_keychain_and_gives_pip_and_twine_a_bundle(settings):
    """macOS's /etc/ssl/cert.pem never holds a local CA: pip and twine get the user's own
    bundle (the system's CAs, then the index's) even with sudo."""
    store = FAMILIES["macos"].trust_store
    trust_path = certs.trust_path(store, settings.index_name)
    facts = Facts(platform=parse_platform("os=macos\nsystemd=0"), home="/Users/dev",
                  user_ids="501:20", pip=parse_pip_versions("25.0 3.12"),
                  files={path: FileFacts(None) for path in (
                      "~/.pypirc", "~/.config/pip/pip.conf", trust_path,
                      f"~/{clients.user_bundle_name(settings)}")})
    facts.files["/etc/ssl/cert.pem"] = FileFacts(None, content=b"")
    ca = b"-----BEGIN CERTIFICATE-----\nindex\n-----END CERTIFICATE-----\n"
    steps = {step.step: step for step in clients.plan_configure(settings, facts, PASSWORD, ca,
                                                                True, "mac1")}
    assert steps["certs.trust"].commands[-1].argv[:3] == ("security", "add-trusted-cert", "-d")
    bundle = f"/Users/dev/{clients.user_bundle_name(settings)}"
    assert steps["clients.ca-bundle"].diffs[0].path == bundle
    assert parsed(steps["clients.pip"].diffs[0].new.decode())["global"]["cert"] == bundle
    assert parsed(steps["clients.pypirc"].diffs[0].new.decode())["internal"]["ca_cert"] == bundle
    assert "text=/etc/ssl/cert.pem" in clients.queries(settings, can_sudo=True)
