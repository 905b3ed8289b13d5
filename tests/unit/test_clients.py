import configparser

import pytest
import tomllib

from ppc_tasks import clients, merging, packages, tls_paths
from ppc_tasks.errors import TaskError
from ppc_tasks.facts import (
    TEXT,
    TOOL,
    Facts,
    FileFacts,
    FileState,
    parse,
    parse_pip_versions,
    parse_version,
)
from ppc_tasks.plan import Change, Unchanged
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
    merged = merging.merge_pypirc(existing, clients.render_pypirc(settings, PASSWORD, "/etc/ca.pem"))
    config = parsed(merged)
    assert config["distutils"]["index-servers"].split() == ["pypi", "company", "internal"]
    assert config["company"]["repository"] == "https://company.example/"
    assert dict(config["internal"]) == {"repository": "https://pypi.example.com/simple/",
                                        "username": "dev", "password": PASSWORD,
                                        "ca_cert": "/etc/ca.pem"}
    # Merging again changes nothing: a second run rewrites no file.
    assert merging.merge_pypirc(merged, clients.render_pypirc(settings, PASSWORD, "/etc/ca.pem")) == merged


def test_pypirc_from_nothing(settings):
    merged = merging.merge_pypirc("", clients.render_pypirc(settings, PASSWORD, None))
    config = parsed(merged)
    assert config["distutils"]["index-servers"].split() == ["internal"]
    assert "ca_cert" not in config["internal"]


def test_pip_conf_index_url_with_quoted_credentials(settings):
    merged = merging.merge_pip_conf("[global]\ntimeout = 60\n",
                                    clients.render_pip_conf(settings, PASSWORD, "/etc/ca.pem"))
    config = parsed(merged)
    assert config["global"]["index-url"] == "https://dev:s3cret%2F%2B@pypi.example.com/simple/"
    assert config["global"]["cert"] == "/etc/ca.pem"
    assert config["global"]["timeout"] == "60"
    assert merging.merge_pip_conf(merged, clients.render_pip_conf(settings, PASSWORD, "/etc/ca.pem")) == merged


def test_pip_conf_extra_index_url_keeps_other_indexes(tmp_path):
    settings = Settings.from_config({"server_names": ["pypi.example.com"], "state_dir": str(tmp_path),
                                     "client_index": "extra-index-url"}, host=None)
    existing = "[global]\nextra-index-url = https://mirror.example/simple/\n"
    ours = clients.render_pip_conf(settings, PASSWORD, None)
    merged = merging.merge_pip_conf(existing, ours)
    urls = parsed(merged)["global"]["extra-index-url"].split()
    assert urls == ["https://mirror.example/simple/",
                    "https://client:s3cret%2F%2B@pypi.example.com/simple/"]
    assert "index-url" not in parsed(merged)["global"]
    assert merging.merge_pip_conf(merged, ours) == merged


def test_client_user_defaults_to_the_first_plain_user(settings, tmp_path):
    assert settings.client_user == "dev"
    # No users named: deploy makes the account `client`, never an admin's, for developers.
    defaults = Settings.from_config({"server_names": ["p"], "state_dir": str(tmp_path)}, host=None)
    assert (defaults.users, defaults.client_user) == (("client",), "client")


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
                      tls_paths.trust_path(FAMILIES["debian"].trust_store, settings.index_name))})
    steps = {step.step: step for step in clients.plan_configure(
        settings, facts, PASSWORD, b"-----BEGIN CERTIFICATE-----\n", True, "dev1")}
    pip_conf = parsed(steps["clients.pip"].diffs[0].new.decode())
    assert pip_conf.has_option("global", "cert") == cert_in_pip_conf
    # twine reads certifi only: .pypirc names the bundle whatever pip does.
    pypirc = parsed(steps["clients.pypirc"].diffs[0].new.decode())
    assert pypirc["internal"]["ca_cert"] == "/etc/ssl/certs/ca-certificates.crt"


def test_a_cert_line_configure_wrote_goes_once_pip_no_longer_needs_it(settings):
    earlier = "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\ntimeout = 30\n"
    merged = parsed(merging.merge_pip_conf(earlier, "[global]\nindex-url = https://x/simple/\n",
                                           "/etc/ssl/certs/ca-certificates.crt"))
    assert not merged.has_option("global", "cert") and merged["global"]["timeout"] == "30"
    own = "[global]\ncert = /home/dev/corporate.pem\n"
    kept = parsed(merging.merge_pip_conf(own, "[global]\nindex-url = https://x/simple/\n",
                                         "/etc/ssl/certs/ca-certificates.crt"))
    assert kept["global"]["cert"] == "/home/dev/corporate.pem"


def test_a_mac_trusts_the_ca_in_its_keychain_and_gives_pip_and_twine_a_bundle(settings):
    """macOS's /etc/ssl/cert.pem never holds a local CA: pip and twine get the user's own
    bundle (the system's CAs, then the index's) even with sudo."""
    store = FAMILIES["macos"].trust_store
    trust_path = tls_paths.trust_path(store, settings.index_name)
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
    assert TEXT.query("/etc/ssl/cert.pem") in clients.queries(settings, can_sudo=True)


# -- uv, Poetry, PDM -----------------------------------------------------------------------
CA = b"-----BEGIN CERTIFICATE-----\nindex\n-----END CERTIFICATE-----\n"
TOOL_FILES = ["~/" + name for names in clients.user_file_names(on_mac=False).values()
              for name in names]


def dev_facts(settings, tools=("uv", "poetry", "pdm"), uv_version="0.13.9", files=None):
    facts = Facts(platform=parse_platform("os=debian\nsystemd=1"), home="/home/dev",
                  user_ids="1000:1000",
                  tools={tool: (f"/usr/local/bin/{tool}",
                                parse_version(uv_version if tool == "uv" else ""))
                         for tool in tools},
                  files={path: FileFacts(None) for path in (
                      *TOOL_FILES, f"~/{clients.user_bundle_name(settings)}",
                      tls_paths.trust_path(FAMILIES["debian"].trust_store,
                                                    settings.index_name))})
    for path, content in (files or {}).items():
        facts.files[path] = FileFacts(FileState("0" * 64, "600", "1000:1000"), content=content)
    return facts


def configured(settings, facts, can_sudo=True, password=PASSWORD, **options):
    return {step.step: step for step in clients.plan_configure(
        settings, facts, password, CA, can_sudo, "dev1", **options)}


def new_file(step, path):
    return next(diff.new.decode() for diff in step.diffs if diff.path == path)


@pytest.mark.parametrize(("uv_version", "key"), [("0.13.9", "system-certs"),
                                                 ("0.11.0", "system-certs"),
                                                 ("0.9.0", "native-tls")])
def test_uv_gets_the_index_as_its_default_with_system_certs_and_netrc(settings, uv_version, key):
    steps = configured(settings, dev_facts(settings, uv_version=uv_version))
    uv_toml = tomllib.loads(new_file(steps["clients.uv"], "/home/dev/.config/uv/uv.toml"))
    assert uv_toml[key] is True and uv_toml["trusted-publishing"] == "never"
    assert uv_toml["publish-url"] == "https://pypi.example.com/simple/"
    assert uv_toml["index"] == [{"name": "internal", "url": "https://pypi.example.com/simple/",
                                 "publish-url": "https://pypi.example.com/simple/",
                                 "default": True}]
    netrc = new_file(steps["clients.uv"], "/home/dev/.netrc")
    assert netrc.split() == ["machine", "pypi.example.com", "login", "dev", "password", PASSWORD]
    assert all(diff.path.startswith("/home/dev/") for diff in steps["clients.uv"].diffs)


def test_uv_without_sudo_is_told_of_ssl_cert_file(settings):
    facts = dev_facts(settings)
    facts.files["/etc/ssl/certs/ca-certificates.crt"] = FileFacts(None, content=b"")
    steps = configured(settings, facts, can_sudo=False)
    text = new_file(steps["clients.uv"], "/home/dev/.config/uv/uv.toml")
    uv_toml = tomllib.loads(text)
    assert "system-certs" not in uv_toml and "native-tls" not in uv_toml
    bundle = f"/home/dev/{clients.user_bundle_name(settings)}"
    assert f"SSL_CERT_FILE={bundle}" in steps["clients.uv"].done  # for the operator
    assert f"# from its settings: run uv with SSL_CERT_FILE={bundle}\n" in text  # the developer


def test_uv_with_extra_index_url_keeps_pypi_as_the_default(tmp_path):
    settings = Settings.from_config({"server_names": ["pypi.example.com"], "users": ["dev"],
                                     "state_dir": str(tmp_path),
                                     "client_index": "extra-index-url"}, host=None)
    steps = configured(settings, dev_facts(settings))
    uv_toml = tomllib.loads(new_file(steps["clients.uv"], "/home/dev/.config/uv/uv.toml"))
    assert "default" not in uv_toml["index"][0]
    pdm = tomllib.loads(new_file(steps["clients.pdm"], "/home/dev/.config/pdm/config.toml"))
    assert pdm["pypi"]["internal"]["url"] == "https://pypi.example.com/simple/"
    assert "url" not in pdm["pypi"]


def test_uv_toml_merge_puts_ours_first_and_keeps_the_users_settings(settings):
    ours = clients.render_uv_toml(settings, "system-certs")
    existing = ('# my uv\ncache-dir = "/data/uv"\n\n[[index]]\nname = "corp"\n'
                'url = "https://corp.example/simple/"\ndefault = true\n\n'
                '[[index]]\nname = "internal"\nurl = "https://old.example/simple/"\n')
    merged = merging.merge_uv_toml(existing, ours)
    document = tomllib.loads(merged)
    assert merged.startswith("# my uv\n") and document["cache-dir"] == "/data/uv"
    assert [index["name"] for index in document["index"]] == ["internal", "corp"]
    assert document["index"][0]["url"] == "https://pypi.example.com/simple/"
    assert document["index"][1]["default"] is False  # only ours is the default
    assert merging.merge_uv_toml(merged, ours) == merged


def test_netrc_merge_replaces_only_our_host_before_default():
    ours = "machine pypi.example.com\n  login dev\n  password new\n"
    existing = ("# mine\nmachine corp.example login me password p1\n"
                "machine pypi.example.com login dev password old\n"
                "macdef init\ncd /\n\ndefault login anonymous password guest\n")
    merged = merging.merge_netrc(existing, ours)
    assert merged.startswith("# mine\nmachine corp.example login me password p1\nmacdef init\n")
    assert merged.endswith(ours + "default login anonymous password guest\n")
    assert "old" not in merged
    assert merging.merge_netrc(merged, ours) == merged
    assert merging.merge_netrc("", ours) == ours
    assert merging.merge_netrc("machine a login b password c", ours) == \
        "machine a login b password c\n" + ours


def test_poetry_gets_repository_certificate_and_account(settings):
    existing_config = '[repositories.other]\nurl = "https://other.example/"\n'
    facts = dev_facts(settings, files={"~/.config/pypoetry/config.toml": existing_config.encode()})
    step = configured(settings, facts)["clients.poetry"]
    config = tomllib.loads(new_file(step, "/home/dev/.config/pypoetry/config.toml"))
    assert config["repositories"] == {"other": {"url": "https://other.example/"},
                                      "internal": {"url": "https://pypi.example.com/simple/"}}
    assert config["certificates"]["internal"]["cert"] == "/etc/ssl/certs/ca-certificates.crt"
    auth = tomllib.loads(new_file(step, "/home/dev/.config/pypoetry/auth.toml"))
    assert auth["http-basic"]["internal"] == {"username": "dev", "password": PASSWORD}


def test_pdm_gets_the_default_source_and_the_internal_repository(settings):
    existing = b'[python]\nuse_venv = false\n\n[pypi]\nverify_ssl = true\n'
    facts = dev_facts(settings, files={"~/.config/pdm/config.toml": existing})
    pdm = tomllib.loads(new_file(configured(settings, facts)["clients.pdm"],
                                 "/home/dev/.config/pdm/config.toml"))
    account = {"url": "https://pypi.example.com/simple/", "username": "dev",
               "password": PASSWORD, "ca_certs": "/etc/ssl/certs/ca-certificates.crt"}
    assert pdm["pypi"] == {"verify_ssl": True, **account}
    assert pdm["repository"]["internal"] == account
    assert pdm["python"] == {"use_venv": False}


def test_tools_that_are_not_installed_are_skipped_unless_all_tools(settings):
    facts = dev_facts(settings, tools=("uv",))
    steps = configured(settings, facts)
    assert isinstance(steps["clients.uv"], Change)
    for step in ("clients.poetry", "clients.pdm"):
        assert isinstance(steps[step], Unchanged)
        assert "not installed" in steps[step].detail and "--all-tools" in steps[step].detail
    everything = configured(settings, facts, all_tools=True)
    assert all(isinstance(everything[step], Change) for step in ("clients.poetry", "clients.pdm"))
    # uv's version is unknown when it is not there: the current key.
    assert "system-certs = true" in new_file(everything["clients.uv"],
                                             "/home/dev/.config/uv/uv.toml")


def test_each_tool_file_is_private_and_backed_up_once(settings):
    step = configured(settings, dev_facts(settings))["clients.uv"]
    scripts = [command.argv[3] for command in step.commands]
    assert scripts == ["backup-once", "put-file", "backup-once", "put-file"]
    assert {command.argv[5] for command in step.commands if command.argv[3] == "put-file"} == {"600"}


@pytest.mark.parametrize(("name", "content"), [
    (".config/pdm/config.toml", b"[pypi\nurl = 1\n"),  # not TOML
    (".config/uv/uv.toml", b'index = "https://corp.example/simple/"\n'),  # not uv's shape
    (".config/uv/uv.toml", b"index = [1, 2]\n"),
    (".pypirc", b"[internal\n"),
    (".netrc", b"\xff\xfe"),  # not UTF-8
])
def test_a_file_configure_cannot_merge_into_is_refused_in_one_line(settings, name, content):
    facts = dev_facts(settings, files={f"~/{name}": content})
    with pytest.raises(TaskError) as error:
        configured(settings, facts)
    message = str(error.value)
    assert message.startswith(f"/home/dev/{name} cannot be read (")
    assert message.endswith("fix or move it, then configure again") and "\n" not in message


def test_unconfigure_leaves_a_users_own_netrc_alone(settings):
    facts = dev_facts(settings, files={"~/.netrc": b"machine corp login me password p\n"})
    for path in TOOL_FILES:
        facts.files[path + clients.BACKUP_SUFFIX] = FileFacts(None)
        facts.files[path + clients.CREATED_SUFFIX] = FileFacts(None)
    steps = {step.step: step for step in clients.plan_unconfigure(settings, facts, False)}
    assert isinstance(steps["clients.uv"], Unchanged)
    facts.files["~/.netrc" + clients.BACKUP_SUFFIX] = FileFacts(FileState("0" * 64, "600", ""))
    facts.files["~/.config/uv/uv.toml"] = FileFacts(FileState("0" * 64, "600", ""))
    facts.files["~/.config/uv/uv.toml" + clients.CREATED_SUFFIX] = FileFacts(
        FileState("0" * 64, "644", ""))
    step = {step.step: step for step in clients.plan_unconfigure(settings, facts, False)}[
        "clients.uv"]
    assert step.done == "removed /home/dev/.config/uv/uv.toml, restored /home/dev/.netrc"


def test_poetry_and_pdm_settings_live_in_application_support_on_a_mac(settings):
    names = clients.user_file_names(on_mac=True)
    assert names["clients.poetry"] == ("Library/Application Support/pypoetry/config.toml",
                                       "Library/Application Support/pypoetry/auth.toml")
    assert names["clients.pdm"] == ("Library/Application Support/pdm/config.toml",)
    assert names["clients.uv"] == (".config/uv/uv.toml", ".netrc")
    queries = clients.queries(settings, can_sudo=True)
    assert TEXT.query("~/Library/Application Support/pdm/config.toml") in queries
    assert TEXT.query("~/.config/pdm/config.toml") in queries
    facts = Facts(platform=parse_platform("os=macos\nsystemd=0"), home="/Users/dev",
                  user_ids="501:20", files={f"~/{name}": FileFacts(None)
                                            for names in names.values() for name in names})
    steps = {step.step: step for step in clients.plan_configure(
        settings, facts, PASSWORD, None, False, "mac1", all_tools=True)}
    assert steps["clients.pdm"].diffs[0].path == \
        "/Users/dev/Library/Application Support/pdm/config.toml"


def test_the_probe_reports_tools_and_uv_version():
    facts = parse(TOOL.answer("uv", "/home/dev/.local/bin/uv", "0.13.9") + "\n"
                  + TOOL.answer("pdm", "", ""))
    assert facts.tools == {"uv": ("/home/dev/.local/bin/uv", (0, 13, 9)), "pdm": None}


@pytest.mark.parametrize("password", ["two words", 'a"quote', "back\\slash", "#hash"])
def test_a_password_netrc_cannot_hold_is_refused_in_one_line(settings, password):
    with pytest.raises(TaskError, match=r"has a space, quote or backslash, which ~/.netrc"):
        clients.render_netrc(settings, password)
    assert "machine" in clients.render_netrc(settings, "fine/+=#-in-the-middle")


def test_a_password_netrc_cannot_hold_stops_no_one_without_uv(settings):
    steps = configured(settings, dev_facts(settings, tools=("poetry",)), password="two words")
    assert isinstance(steps["clients.uv"], Unchanged) and isinstance(steps["clients.poetry"], Change)
