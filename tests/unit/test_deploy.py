"""Planners are data: facts in, steps and commands out. A host that is as the settings
say yields no command at all; each difference yields exactly the steps it needs."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib

import pytest

from ppc_tasks import apply, config_ini, credentials, deploy, index, tls_paths
from ppc_tasks.errors import TaskError
from ppc_tasks.facts import (
    DOCKER,
    PLATFORM,
    PORTS,
    UNIT,
    ContainerFacts,
    Facts,
    FileFacts,
    FileState,
    ImageFacts,
    answered,
)
from ppc_tasks.plan import Change, Plan, Unchanged, describe, unified_diff
from ppc_tasks.plans import certs, image, nginx, server
from ppc_tasks.plans import deploy as plans_deploy
from ppc_tasks.plans.deploy import plan_deploy
from ppc_tasks.settings import Settings, SettingsError
from ppc_tasks.system import FAMILIES

NOW = datetime.datetime(2026, 11, 25, 12, 0, tzinfo=datetime.timezone.utc)


def present(content: bytes, mode: str = "644", owner: str = "0:0") -> FileFacts:
    return FileFacts(FileState(hashlib.sha256(content).hexdigest(), mode, owner), content=content)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return deployed_here(tmp_path)


def deployed_here(tmp_path) -> Settings:
    """Settings of an index as a first deploy leaves it on the operator's machine."""
    settings = Settings.from_config({"server_names": ["pypi.test"], "users": ["dev"],
                                     "state_dir": str(tmp_path / "state")}, host=None)
    plan = plan_deploy(settings, fresh_facts(settings), NOW, "h")
    for step in plan.steps:
        if isinstance(step, Change):
            apply.do_here(step.local)
    return settings


def fresh_facts(settings: Settings) -> Facts:
    """A bare host with Docker and systemd, answering what a deploy asks: nothing of the
    index yet."""
    return answered(plans_deploy.queries(settings), {
        PLATFORM.query(): ("debian", "1", "0:0", "/root"), DOCKER.query(): ("running",),
        UNIT.query("docker"): ("enabled", "active"), PORTS.query(): ("16",)})


def warm_facts(settings: Settings) -> Facts:
    """The host as a deploy with these settings left it."""
    creds = credentials.load(settings.secrets_path)
    tls = certs.prepare(settings, NOW)
    config = config_ini.render_config(settings, creds)
    builds = image.image_builds(settings)
    spec = server.container_spec(settings, builds[1].content_tag, builds[1].context_hash, config)
    cert_path, key_path = tls_paths.host_cert_paths(settings)
    trust = tls_paths.trust_path(FAMILIES["debian"].trust_store, settings.index_name)
    facts = fresh_facts(settings)
    facts.units["nginx"] = ("enabled", "active")
    facts.images = {tag: ImageFacts("sha256:1", build.context_hash)
                    for build in builds for tag in (build.tag, build.content_tag)}
    facts.containers["pypicloud"] = ContainerFacts(spec, True, 3031)
    facts.volumes["pypicloud-data"] = "data"
    facts.data_containers["pypi_data:/var/lib/pypicloud"] = ("pypicloud-data", "data")
    facts.files.update({
        index.HOST_MARKER: present(b"pypi.test\n"),
        settings.config_path: present(config, "600", "10001:10001"),
        cert_path: present(tls.certificate), key_path: present(tls.key, "600"),
        trust: present(tls.ca), nginx.SITE_PATH: present(nginx.render_site(settings, 3031))})
    certificate_copy, ca_copy = certs.metrics_copy_paths(settings)
    facts.files.update({certificate_copy: present(tls.certificate), ca_copy: present(tls.ca)})
    facts.nginx = (True, True)
    facts.ports = {22, 80, 443, 3031}
    loaded(settings, facts)
    return facts


def loaded(settings, facts):
    """nginx has (re)loaded the site, certificate and key as they are now."""
    facts.files[nginx.LOADED_PATH] = present("".join(
        f"{facts.file(path).state.sha256}  {path}\n" for path in nginx.loaded_files(settings)
    ).encode())


def changed(plan) -> list[str]:
    return [step.step for step in plan.changes()]  # handlers as the changes before decide


def test_a_host_as_the_settings_say_yields_no_command(settings):
    plan = plan_deploy(settings, warm_facts(settings), NOW, "h")
    assert changed(plan) == []
    assert [step.step for step in plan.steps] == [
        "certs.ca", "certs.server", "index.secrets", "index.identity", "docker.boot",
        "image.data", "image.server", "data.container", "server.config", "server.container",
        "certs.install", "certs.metrics", "certs.trust", "nginx.install", "nginx.site",
        "nginx.service", "nginx.boot", "server.records"]


def test_a_bare_host_gets_every_step_in_the_order_of_the_manual_procedure(tmp_path):
    settings = Settings.from_config({"server_names": ["pypi.test"],
                                     "state_dir": str(tmp_path / "new")}, host=None)
    plan = plan_deploy(settings, fresh_facts(settings), NOW, "h")
    assert changed(plan) == [
        "certs.ca", "certs.server", "index.secrets", "index.identity", "image.data",
        "image.server", "data.container", "server.config", "server.container",
        "certs.install", "certs.metrics", "certs.trust", "nginx.install", "nginx.site",
        "nginx.service", "nginx.boot"]
    assert not (tmp_path / "new").exists()  # planning creates nothing, here either


def test_a_new_setting_changes_the_config_and_replaces_the_server_only(settings):
    facts = warm_facts(settings)
    changed_settings = dataclasses.replace(settings, fallback="none")
    plan = plan_deploy(changed_settings, facts, NOW, "h")
    assert changed(plan) == SWITCH
    container = plan.changes("server.container")[0]
    assert container.would == ("recreate pypicloud: config.ini changed; pypicloud-next starts "
                               "beside it on 127.0.0.1:3032")
    assert container.gate is not None  # replaced with a health check
    shown = "\n".join(line for _, _, _, details in describe(plan, " ".join) for line in details)
    assert "-pypi.fallback = redirect" in shown and "+pypi.fallback = none" in shown
    creds = credentials.load(settings.secrets_path)
    for secret in (*creds.password_hashes.values(), creds.session_encrypt_key, *creds.passwords.values()):
        assert secret not in shown


# A replacement: the new container beside the live one, nginx switched to it, the old removed.
# A replacement, and then the new server checks the records of the index it sees.
SWITCH = ["server.config", "server.container", "nginx.site", "nginx.service", "server.retire",
          "server.records"]


def test_a_rebuild_replaces_the_server_with_the_new_image(settings):
    plan = plan_deploy(settings, warm_facts(settings), NOW, "h", rebuild=True)
    assert changed(plan) == ["image.data", "image.server", *SWITCH[1:]]
    assert plan.changes("server.container")[0].would.startswith(
        "recreate pypicloud: its image was rebuilt;")


def test_a_replacement_starts_beside_the_live_server_then_nginx_switches(settings):
    plan = plan_deploy(dataclasses.replace(settings, fallback="none"),
                              warm_facts(settings), NOW, "h")
    replacement = plan.changes("server.container")[0]
    start, wait = replacement.commands[0], replacement.gate.command
    assert start.argv[:2] == ("docker", "run")
    assert ("--name", "pypicloud-next") == start.argv[start.argv.index("--name"):][:2]
    assert "127.0.0.1:3032:3031" in start.argv
    assert wait.argv[3:] == ("wait-healthy", "pypicloud-next", "90")
    assert wait.stdin_shown == "an admin's login"
    assert "server 127.0.0.1:3032;" in plan.changes("nginx.site")[0].diffs[0].new.decode()
    reload = plan.changes("nginx.service")[0].commands
    assert reload[0].argv == ("nginx", "-t")
    assert reload[1].argv[3:] == ("reload-nginx", nginx.LOADED_PATH, *nginx.loaded_files(settings),
                                  "--", "systemctl", "reload", "nginx")
    retire = plan.changes("server.retire")[0].commands[0].argv
    assert retire[3:] == ("retire", "pypicloud", "pypicloud-next", settings.config_path,
                          "/etc/ppc-tasks/rollback", "120", "ppc-tasks.spec-hash", "12")
    # Only once nginx serves from the new one; then the records, in the container it became.
    assert [step.step for step in plan.steps[-2:]] == ["server.retire", "server.records"]


def test_the_next_replacement_goes_back_to_the_first_port(settings):
    facts = warm_facts(settings)
    live = facts.containers["pypicloud"]
    facts.containers["pypicloud"] = dataclasses.replace(live, port=3032)
    facts.ports = {22, 80, 443, 3032}
    facts.files[nginx.SITE_PATH] = present(nginx.render_site(settings, 3032))
    loaded(settings, facts)
    assert changed(plan_deploy(settings, facts, NOW, "h")) == []
    plan = plan_deploy(dataclasses.replace(settings, fallback="none"), facts, NOW, "h")
    assert "127.0.0.1:3031:3031" in plan.changes("server.container")[0].commands[0].argv
    assert "server 127.0.0.1:3031;" in plan.changes("nginx.site")[0].diffs[0].new.decode()


def test_a_new_port_moves_the_server_and_reloads_nginx_after_nginx_t(settings):
    moved = dataclasses.replace(settings, port=4000)
    plan = plan_deploy(moved, warm_facts(settings), NOW, "h")
    assert changed(plan) == SWITCH[1:]
    assert "127.0.0.1:4000:3031" in plan.changes("server.container")[0].commands[0].argv
    site = plan.changes("nginx.site")[0]
    assert site.commands[0].argv[3] == "put-checked" and site.commands[0].argv[-2:] == ("nginx", "-t")


def test_a_port_taken_by_something_else_is_refused_before_any_step(settings):
    facts = warm_facts(settings)
    facts.ports.add(3032)
    with pytest.raises(TaskError, match="port 3032 is already in use on h: the index's server runs "
                                        "on port 3031 or 3032"):
        plan_deploy(dataclasses.replace(settings, fallback="none"), facts, NOW, "h")
    assert changed(plan_deploy(settings, facts, NOW, "h")) == []  # no replacement, no need


def test_an_interrupted_switch_is_finished_when_nginx_serves_the_new_one(settings):
    facts = warm_facts(settings)
    facts.containers["pypicloud-next"] = dataclasses.replace(facts.containers["pypicloud"],
                                                             port=3032)
    facts.files[nginx.SITE_PATH] = present(nginx.render_site(settings, 3032))
    loaded(settings, facts)
    plan = plan_deploy(settings, facts, NOW, "h")
    assert changed(plan) == ["server.recover"]
    reload, retire = plan.changes("server.recover")[0].commands
    # nginx is reloaded first: the run may have stopped between the site and the reload.
    assert reload.argv[3] == "reload-nginx" and reload.argv[-3:] == ("systemctl", "reload", "nginx")
    assert retire.argv[3:] == ("retire", "pypicloud", "pypicloud-next", settings.config_path,
                               "/etc/ppc-tasks/rollback", "120", "ppc-tasks.spec-hash", "12")


def test_an_interrupted_replacement_nginx_never_used_is_removed(settings):
    facts = warm_facts(settings)
    facts.containers["pypicloud-next"] = ContainerFacts("half-made", True, 3032)
    facts.ports.add(3032)
    plan = plan_deploy(dataclasses.replace(settings, fallback="none"), facts, NOW, "h")
    assert changed(plan) == ["server.recover", *SWITCH]
    assert plan.changes("server.recover")[0].commands[0].argv == (
        "docker", "rm", "--force", "pypicloud-next")


def test_an_interrupted_replacement_is_put_back_first(settings):
    facts = warm_facts(settings)
    facts.containers["pypicloud-previous"] = facts.containers["pypicloud"]
    facts.containers["pypicloud"] = ContainerFacts("half-made", False, None)
    plan = plan_deploy(settings, facts, NOW, "h")
    assert changed(plan) == ["server.recover"]
    recover = plan.changes("server.recover")[0]
    assert [command.argv[:2] for command in recover.commands] == [
        ("docker", "rm"), ("sh", "-c"), ("docker", "rename"), ("docker", "start")]


def test_a_changed_certificate_reloads_nginx(settings):
    facts = warm_facts(settings)
    cert_path, _ = tls_paths.host_cert_paths(settings)
    facts.files[cert_path] = present(b"an older certificate")
    plan = plan_deploy(settings, facts, NOW, "h")
    assert changed(plan) == ["certs.install", "nginx.service"]
    install = plan.changes("certs.install")[0]
    assert [diff.private for diff in install.diffs] == [False]  # the key did not change
    facts.files[tls_paths.host_cert_paths(settings)[1]] = present(b"another key", "600")
    install = plan_step(settings, facts, "certs.install")
    shown = "\n".join(line for _, _, _, details in describe(
        plan_deploy(settings, facts, NOW, "h"), " ".join) for line in details)
    assert "a private key (not shown)" in shown
    assert certs.prepare(settings, NOW).key.decode().splitlines()[1] not in shown


def plan_step(settings, facts, name):
    return next(step for step in plan_deploy(settings, facts, NOW, "h").steps
                if step.step == name)


def test_nginx_not_running_is_started_and_not_enabled_is_enabled(settings):
    facts = warm_facts(settings)
    facts.nginx = (True, False)
    facts.units["nginx"] = ("disabled", "inactive")
    plan = plan_deploy(settings, facts, NOW, "h")
    assert changed(plan) == ["nginx.service", "nginx.boot"]
    assert isinstance(plan_step(settings, warm_facts(settings), "nginx.boot"), Unchanged)


# A config.ini as releases before the accounts block was marked wrote it, with an account
# since removed and session keys since changed.
# A config.ini from before its blocks were marked, with other accounts and rules.
OLD_CONFIG = (b"[app:main]\npypi.default_read = authenticated\npypi.fallback = cache\n"
              b"ppc_guard.release_window = 86400\nppc_guard.owners =\n    acme-* = gone\n"
              b"ppc_guard.private_names = \npyramid.includes = ppc_guard\n\n"
              b"auth.admins =\n    admin\n\n"
              b"user.admin = $6$old\nuser.gone = $6$gone\n\nsession.encrypt_key = old-key\n"
              b"session.validate_key = old-key-2\nsession.secure = true\n\n"
              b"[server:main]\nport = 3031\n")


def rolled_back_facts(settings):
    """A host whose last replacement retired a server with other config and image."""
    facts = warm_facts(settings)
    facts.files[server.ROLLBACK_CONTAINER] = present(b"ppc/pypicloud:1.3.12-0ld0ld0ld0ld|0ldspec\n")
    facts.files[server.ROLLBACK_CONFIG] = present(OLD_CONFIG, "600")
    facts.images["ppc/pypicloud:1.3.12-0ld0ld0ld0ld"] = ImageFacts("sha256:0", "0ld")
    return facts


def test_rollback_starts_the_retired_server_beside_the_live_one(settings):
    creds = credentials.load(settings.secrets_path)
    serving = server.plan_rollback(settings, rolled_back_facts(settings), creds, "h")
    plan = Plan(serving.steps)
    assert changed(plan) == ["server.config", "server.container"]
    config = plan.changes("server.config")[0]
    # Its own settings, but today's accounts, password hashes, session keys and rules.
    assert config.diffs[0].new == config_ini.with_todays_accounts_and_rules(OLD_CONFIG, settings, creds)
    shown = "\n".join(unified_diff(config.diffs[0]))
    assert "pyramid.includes = ppc_guard" in shown and creds.password_hashes["admin"] not in shown
    start = plan.changes("server.container")[0].commands[0].argv
    assert start[-1] == "ppc/pypicloud:1.3.12-0ld0ld0ld0ld"
    # Labelled as what it is: that image, today's options, that config.ini (a deploy of
    # the same settings and image then finds nothing to change).
    spec = server.container_spec(settings, "ppc/pypicloud:1.3.12-0ld0ld0ld0ld", "0ld",
                                 config.diffs[0].new)
    assert f"ppc-tasks.spec-hash={spec}" in start and "127.0.0.1:3032:3031" in start
    assert serving.port == 3032 and serving.retire.step == "server.retire"
    plan.add(*nginx.plan_switch(settings, rolled_back_facts(settings), serving.port))
    assert changed(plan) == ["server.config", "server.container", "nginx.site", "nginx.service"]


def test_a_rollback_serves_only_todays_accounts_and_rules(settings):
    settings = dataclasses.replace(settings, private_names=("acme-*",), fallback="mirror")
    creds = credentials.load(settings.secrets_path)
    current = config_ini.with_todays_accounts_and_rules(OLD_CONFIG, settings, creds).decode()
    assert "user.gone" not in current and "$6$old" not in current and "old-key" not in current
    assert f"user.admin = {creds.password_hashes['admin']}\n" in current
    assert f"user.dev = {creds.password_hashes['dev']}\n" in current
    assert f"session.encrypt_key = {creds.session_encrypt_key}\n" in current
    assert "acme-* = gone" not in current and "86400" not in current
    assert "ppc_guard.private_names = acme-*\n" in current
    assert "pypi.fallback = cache\npypi.always_show_upstream = true\n" in current
    assert current.startswith("[app:main]\n# -- rules:") and current.count("pypi.fallback =") == 1
    assert "# -- end of rules\npyramid.includes = ppc_guard\n\n# -- accounts:" in current
    assert current.endswith("# -- end of accounts\n\n\nsession.secure = true\n\n[server:main]\nport = 3031\n")
    # A config.ini this release wrote: its blocks are replaced, nothing else.
    before = dataclasses.replace(settings, users=("dev", "gone"), fallback="none",
                                 owners=(("acme-*", ("gone",)),), private_names=())
    old_creds = dataclasses.replace(creds, password_hashes={**creds.password_hashes, "gone": "$6$g"},
                                    session_encrypt_key="old-key")
    rendered_then = config_ini.render_config(before, old_creds)
    assert config_ini.with_todays_accounts_and_rules(rendered_then, settings, creds) == \
        config_ini.render_config(settings, creds)
    with pytest.raises(TaskError, match="holds no accounts"):
        config_ini.with_todays_accounts_and_rules(b"[app:main]\npypi.fallback = none\n", settings, creds)
    # A retired server whose config never had a guard rule may not know it: not that one.
    older = OLD_CONFIG.replace(b"ppc_guard.private_names = \n", b"")
    with pytest.raises(TaskError, match="^the rollback target's server predates "
                                        "ppc_guard.private_names, which today's settings decide"):
        config_ini.with_todays_accounts_and_rules(older, settings, creds)


def test_rollback_needs_a_target_and_its_image(settings):
    creds = credentials.load(settings.secrets_path)
    facts = warm_facts(settings)  # as a deploy leaves it, answering what a rollback asks
    facts.files.update(answered(server.rollback_queries(settings)).files | facts.files)
    with pytest.raises(TaskError, match="nothing to roll back to on h"):
        server.plan_rollback(settings, facts, creds, "h")
    facts = rolled_back_facts(settings)
    facts.images["ppc/pypicloud:1.3.12-0ld0ld0ld0ld"] = None
    with pytest.raises(TaskError, match="image ppc/pypicloud:1.3.12-0ld0ld0ld0ld is no longer on h"):
        server.plan_rollback(settings, facts, creds, "h")


def test_nginx_is_reloaded_when_it_has_not_read_the_files_as_they_are(settings):
    facts = warm_facts(settings)
    # A run stopped after writing a new certificate, before reloading nginx.
    cert_path, _ = tls_paths.host_cert_paths(settings)
    facts.files[nginx.LOADED_PATH] = present(facts.file(nginx.LOADED_PATH).content.replace(
        facts.file(cert_path).state.sha256.encode(), b"0" * 64))
    plan = plan_deploy(settings, facts, NOW, "h")
    assert changed(plan) == ["nginx.service"]
    assert plan.changes("nginx.service")[0].would == (
        "reload nginx: it has not loaded the site or certificate as they are")
    facts.files[nginx.LOADED_PATH] = FileFacts(None)  # deployed by a release before the record
    assert changed(plan_deploy(settings, facts, NOW, "h")) == ["nginx.service"]


def test_a_first_deploy_names_the_index_only_as_told(tmp_path, monkeypatch):
    by_alias = Settings.from_config({"state_dir": str(tmp_path)}, host="pypi-internal")
    assert by_alias.names_from_host and by_alias.index_name == "pypi-internal"
    with pytest.raises(SettingsError, match="^ppc.server_names: set the names clients will use "
                                            ".* or take pypi-internal with deploy --name-from-host$"):
        deploy.confirm_first_names(by_alias)
    deploy.confirm_first_names(by_alias, name_from_host=True)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda question: "y")
    deploy.confirm_first_names(by_alias)  # asked, and said yes
    monkeypatch.setattr("builtins.input", lambda question: "")
    with pytest.raises(SettingsError):
        deploy.confirm_first_names(by_alias)
    # Named in the settings, or an index this machine deployed already: nothing to ask.
    named = Settings.from_config({"server_names": ["pypi.example.com"],
                                  "state_dir": str(tmp_path)}, host="pypi-internal")
    deploy.confirm_first_names(named)
    by_alias.server_state_dir.mkdir(parents=True)
    monkeypatch.setattr("builtins.input", lambda question: pytest.fail("asked again"))
    deploy.confirm_first_names(by_alias)
