import configparser

import jinja2
import pytest

from ppc_tasks import config_ini, credentials
from ppc_tasks.credentials import Credentials
from ppc_tasks.facts import ContainerFacts, Facts, FileFacts, FileState
from ppc_tasks.plan import Change, Unchanged, resolved
from ppc_tasks.plans import server
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


@pytest.mark.parametrize("mode, fallback, always_show_upstream", [
    ("none", "none", "false"), ("redirect", "redirect", "false"), ("cache", "cache", "false"),
    ("mirror", "cache", "true")])  # pypicloud 1.3.12 refuses to start with fallback = mirror
def test_every_fallback_is_one_pypicloud_starts_with(creds, mode, fallback, always_show_upstream):
    settings = Settings.from_config({"admins": ["alice", "bob"], "users": ["ci"], "fallback": mode},
                                    host="pypi.test")
    app = parsed(config_ini.render_config(settings, creds))["app:main"]
    assert (app["pypi.fallback"], app["pypi.always_show_upstream"]) == (fallback, always_show_upstream)


def test_config_has_users_keys_storage_and_database(settings, creds):
    app = parsed(config_ini.render_config(settings, creds))["app:main"]
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
    config = config_ini.render_config(settings, creds).decode()
    for password in creds.passwords.values():
        assert password not in config


def test_config_trusts_the_proxy_scheme(settings, creds):
    waitress = parsed(config_ini.render_config(settings, creds))["server:main"]
    assert waitress["port"] == "3031"
    assert "x-forwarded-proto" in waitress["trusted_proxy_headers"]


def test_the_guard_gets_the_publishing_rules(creds):
    settings = Settings.from_config({"users": ["ci", "dev"], "owners": {"acme-*": ["ci", "dev"]},
                                     "release_window": "30m", "private_names": "acme-*,tools"},
                                    host="pypi.test")
    creds = Credentials()
    credentials.complete(creds, settings.accounts)
    app = parsed(config_ini.render_config(settings, creds))["app:main"]
    assert app["ppc_guard.owners"].strip().splitlines() == ["acme-* = ci dev"]
    assert app["ppc_guard.release_window"] == "1800"
    assert app["ppc_guard.private_names"] == "acme-* tools"


@pytest.mark.parametrize("limit, waitress, nginx", [("0", str(2 ** 62), "0"),
                                                    ("1m", "1048576", "1048576")])
def test_one_upload_limit_for_nginx_and_waitress(limit, waitress, nginx):
    from ppc_tasks.plans import nginx as nginx_module

    settings = Settings.from_config({"max_upload_size": limit}, host="pypi.test")
    creds = Credentials()
    credentials.complete(creds, settings.accounts)
    assert parsed(config_ini.render_config(settings, creds))["server:main"][
        "max_request_body_size"] == waitress
    assert f"client_max_body_size {nginx};" in nginx_module.render_site(settings, 3031).decode()


def test_waitress_takes_the_client_address_from_nginx_only(settings, creds):
    waitress = parsed(config_ini.render_config(settings, creds))["server:main"]
    assert "x-forwarded-for" in waitress["trusted_proxy_headers"].split()
    assert waitress["trusted_proxy_count"] == "1"  # the last entry: what nginx appended


def test_templates_refuse_missing_values():
    with pytest.raises(jinja2.UndefinedError):
        render("config.ini.j2")


def test_run_argv_follows_the_manual_procedure(settings):
    argv = server.run_argv(settings, "ppc/pypicloud:1.3.12")
    assert argv[:3] == ["docker", "run", "--detach"]
    assert argv[argv.index("--name") + 1] == "pypicloud"
    assert argv[argv.index("--restart") + 1] == "unless-stopped"
    # A memory limit, and no swap beyond it: one container cannot take the host's memory.
    assert argv[argv.index("--memory") + 1] == argv[argv.index("--memory-swap") + 1] == str(1024 ** 3)
    unlimited = server.run_argv(Settings.from_config({"server_memory": "0"}, host="pypi.test"),
                                "ppc/pypicloud:1.3.12")
    assert "--memory" not in unlimited and "--memory-swap" not in unlimited
    volumes = [argv[i + 1] for i, word in enumerate(argv) if word == "--volume"]
    # The config folder, not the file: a missing file source would come back as a folder.
    assert volumes == ["/etc/pypicloud:/etc/pypicloud:ro", "pypicloud-data:/var/lib/pypicloud"]
    assert argv[argv.index("--publish") + 1] == "127.0.0.1:3031:3031"
    assert argv[-1] == "ppc/pypicloud:1.3.12"
    labelled = server.run_argv(settings, "ppc/pypicloud:1.3.12", "abc")
    assert labelled[labelled.index("--label") + 1] == "ppc-tasks.spec-hash=abc"


def test_config_is_redacted_for_dry_runs(settings, creds):
    shown = config_ini.redact_config(config_ini.render_config(settings, creds).decode())
    for secret in (*creds.password_hashes.values(), creds.session_encrypt_key,
                   creds.session_validate_key):
        assert secret not in shown
    assert "user.alice = <redacted>" in shown and "session.validate_key = <redacted>" in shown
    assert "pypi.fallback = none" in shown


def test_container_spec_follows_image_config_and_options(settings):
    spec = server.container_spec(settings, "ppc/x:1-a", "sha256:1", b"config")
    assert spec == server.container_spec(settings, "ppc/x:1-a", "sha256:1", b"config")
    assert spec != server.container_spec(settings, "ppc/x:1-a", "sha256:2", b"config")
    assert spec != server.container_spec(settings, "ppc/x:1-b", "sha256:1", b"config")
    assert spec != server.container_spec(settings, "ppc/x:1-a", "sha256:1", b"config changed")
    other_port = Settings.from_config({"port": 3032}, host="pypi.test")
    assert spec != server.container_spec(other_port, "ppc/x:1-a", "sha256:1", b"config")


@pytest.mark.parametrize("current, config_changed, rebuilt, action", [
    (None, True, False, "create"),
    (ContainerFacts("spec", True, 3031), False, False, None),
    (ContainerFacts("spec", True, 3031), True, False, "replace: config.ini changed"),
    (ContainerFacts("spec", True, 3031), False, True, "replace: its image was rebuilt"),
    (ContainerFacts("old", True, 3031), False, False, "replace: its image or options changed"),
    (ContainerFacts("", True, 3031), False, False, "replace: its image or options changed"),
    (ContainerFacts("spec", False, 3031), False, False, "start"),
])
def test_container_action(current, config_changed, rebuilt, action):
    assert server.container_action(current, "spec", config_changed, rebuilt) == action


def test_config_for_s3_and_a_shared_cache_reads_back_as_given(creds):
    settings = Settings.from_config({
        "admins": ["alice", "bob"], "users": ["ci"], "storage": "s3", "s3_bucket": "pypi", "s3_access_key_id": "test:tester",
        "s3_endpoint_url": "http://s3.test:8080", "s3_addressing_style": "path",
        "s3_prefix": "packages/", "cache_url": "postgresql://pypi@db.test/pypi"}, host="pypi.test")
    creds.s3_secret_access_key, creds.cache_password = "s3%(here)s/+k", "p@ss%w:rd"
    config = config_ini.render_config(settings, creds)
    # As pserve reads it: PasteDeploy's parser expands %(here)s, so a % is written twice.
    pserve = configparser.ConfigParser(defaults={"here": "/etc/pypicloud"})
    pserve.read_string(config.decode())
    app = pserve["app:main"]
    assert (app["pypi.storage"], app["storage.bucket"], app["storage.prefix"]) == ("s3", "pypi", "packages/")
    assert (app["storage.endpoint_url"], app["storage.addressing_style"],
            app["storage.signature_version"], app["storage.region_name"]) == \
        ("http://s3.test:8080", "path", "s3v4", "us-east-1")
    assert app["storage.aws_access_key_id"] == "test:tester"
    assert app["storage.aws_secret_access_key"] == "s3%(here)s/+k"
    assert app["pypi.stream_files"] == "false"
    assert (app["pypi.db"], app["db.url"]) == \
        ("sql", "postgresql://pypi:p%40ss%25w%3Ard@db.test:5432/pypi?connect_timeout=5")
    assert "storage.dir" not in app

    shown = config_ini.redact_config(config.decode())
    assert "s3%" not in shown and "p%40ss" not in shown
    assert "storage.aws_secret_access_key = <redacted>" in shown
    assert "db.url = postgresql://pypi:<redacted>@db.test:5432/pypi?connect_timeout=5" in shown


def test_config_for_a_redis_cache(creds):
    redis = Settings.from_config({"admins": ["alice", "bob"], "users": ["ci"],
                                  "cache_url": "redis://cache.test/2"}, host="pypi.test")
    app = parsed(config_ini.render_config(redis, creds))["app:main"]
    assert (app["pypi.db"], app["db.url"]) == (
        "redis", "redis://cache.test:6379/2?socket_connect_timeout=5&socket_timeout=15")
    assert (app["pypi.storage"], app["storage.dir"]) == ("file", "/var/lib/pypicloud/packages")


# -- records (size, core metadata) of stored files ------------------------------------------
def records_facts(pending: bool) -> Facts:
    facts = Facts()
    facts.files[server.RECORDS_PENDING] = FileFacts(FileState("e3b0", "644", "0:0") if pending else None)
    return facts


@pytest.mark.parametrize("pending, data_made, changes", [
    (False, False, False),  # every file has its record
    (False, True, False),  # a new index: uploads record their files
    (True, False, True),  # a run before could not finish: the next goes on
])
def test_records_are_read_when_a_run_before_did_not_finish(settings, pending, data_made, changes):
    step = list(resolved([server.plan_records(settings, records_facts(pending), data_made)]))[0]
    assert isinstance(step, Change) == changes
    if changes:
        # The mark stays unless the records run finished: a failure leaves it for the next.
        assert [command.argv for command in step.commands] == [
            ("install", "-D", "-m", "644", "/dev/null", server.RECORDS_PENDING),
            ("docker", "exec", "pypicloud", "ppc-guard", "record"),
            ("rm", "-f", server.RECORDS_PENDING)]
        assert "could not read" in step.done


def test_a_server_that_starts_reads_what_it_finds_without_a_record(settings):
    """A new container may come from an upgrade or use another cache (moved to Redis):
    what the old one had recorded says nothing about it."""
    started = Change("server.container", "recreated", "recreate", notifies=(server.SERVER_STARTED,))
    steps = list(resolved([started, server.plan_records(settings, records_facts(False))]))
    assert isinstance(steps[1], Change) and "as the new server sees the index" in steps[1].done
    assert isinstance(server.plan_records(settings, records_facts(False), data_made=True), Unchanged)
