import configparser

import jinja2
import pytest

from ppc_tasks import credentials, server
from ppc_tasks.credentials import Credentials
from ppc_tasks.render import render
from ppc_tasks.settings import Settings


@pytest.fixture
def settings():
    return Settings.from_config({"admins": ["alice", "bob"], "users": ["ci"], "fallback": "none"},
                                host="pypi.test")


@pytest.fixture
def creds(settings):
    creds = Credentials()
    credentials.complete(creds, settings.accounts)
    return creds


def parsed(config: bytes) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(config.decode())
    return parser


def test_config_has_users_keys_storage_and_database(settings, creds):
    app = parsed(server.render_config(settings, creds))["app:main"]
    assert app["auth.admins"].split() == ["alice", "bob"]
    assert app["user.alice"] == creds.password_hashes["alice"]
    assert app["user.bob"] == creds.password_hashes["bob"]
    assert app["user.ci"] == creds.password_hashes["ci"]  # an account, not an admin
    assert app["session.encrypt_key"] == creds.session_encrypt_key
    assert app["session.validate_key"] == creds.session_validate_key
    assert app["pypi.default_read"] == "authenticated"
    assert app["pypi.fallback"] == "none"
    assert app["pypi.storage"] == "file"
    assert app["storage.dir"] == "/var/lib/pypicloud/packages"
    assert app["db.url"] == "sqlite:////var/lib/pypicloud/db.sqlite"
    # INI values are literal: a quote would become part of the value.
    assert '"' not in "".join(app.values())
    # allow_overwrite is read for truthiness and would grant overwrites: its successor,
    # empty, lets nobody overwrite a file; only admins delete.
    assert "pypi.allow_overwrite" not in app
    assert app["pypi.allow_overwrite_groups"] == ""
    assert app["pypi.allow_delete_groups"] == "admin"
    assert app["pyramid.includes"] == "ppc_guard"


def test_config_contains_no_plain_password(settings, creds):
    config = server.render_config(settings, creds).decode()
    for password in creds.passwords.values():
        assert password not in config


def test_config_trusts_the_proxy_scheme(settings, creds):
    waitress = parsed(server.render_config(settings, creds))["server:main"]
    assert waitress["port"] == "3031"
    assert "x-forwarded-proto" in waitress["trusted_proxy_headers"]


def test_templates_refuse_missing_values():
    with pytest.raises(jinja2.UndefinedError):
        render("config.ini.j2")


def test_run_argv_follows_the_manual_procedure(settings):
    argv = server.run_argv(settings)
    assert argv[:3] == ["docker", "run", "--detach"]
    assert argv[argv.index("--name") + 1] == "pypicloud"
    assert argv[argv.index("--restart") + 1] == "unless-stopped"
    volumes = [argv[i + 1] for i, word in enumerate(argv) if word == "--volume"]
    # The config folder, not the file: a missing file source would come back as a folder.
    assert volumes == ["/etc/pypicloud:/etc/pypicloud:ro", "pypicloud-data:/var/lib/pypicloud"]
    assert argv[argv.index("--publish") + 1] == "127.0.0.1:3031:3031"
    assert argv[-1] == "ppc/pypicloud:1.3.12"
    labelled = server.run_argv(settings, "abc")
    assert labelled[labelled.index("--label") + 1] == "ppc-tasks.spec-hash=abc"


def test_container_spec_follows_image_config_and_options(settings):
    spec = server.container_spec(settings, "sha256:1", b"config")
    assert spec == server.container_spec(settings, "sha256:1", b"config")
    assert spec != server.container_spec(settings, "sha256:2", b"config")
    assert spec != server.container_spec(settings, "sha256:1", b"config changed")
    other_port = Settings.from_config({"port": 3032}, host="pypi.test")
    assert spec != server.container_spec(other_port, "sha256:1", b"config")


def test_listening_ports_reads_proc_net_tcp():
    proc = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"
        "   0: 0100007F:0BD7 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0\n"
        "   1: 0100007F:0016 0100007F:9C40 01 00000000:00000000 00:00000000 00000000 0\n"
        "   0: 00000000000000000000000000000000:01BB 00000000000000000000000000000000:0000 0A 0\n"
    )
    assert server.listening_ports(proc) == {3031, 443}


def test_container_state_is_parsed_from_inspect():
    assert server.parse_container_state(None) is None
    assert server.parse_container_state("abc|true|3031") == server.ContainerState("abc", True, 3031)
    assert server.parse_container_state("|false|") == server.ContainerState("", False, None)


@pytest.mark.parametrize("current, config_changed, action", [
    (None, True, "create"),
    (server.ContainerState("spec", True, 3031), False, None),
    (server.ContainerState("spec", True, 3031), True, "replace: config.ini changed"),
    (server.ContainerState("old", True, 3031), False, "replace: its image or options changed"),
    (server.ContainerState("", True, 3031), False, "replace: its image or options changed"),
    (server.ContainerState("spec", False, 3031), False, "start"),
])
def test_container_action(current, config_changed, action):
    assert server.container_action(current, "spec", config_changed) == action
