"""A client kit holds what one machine needs and no more, and clients.setup writes from it,
on this machine, what clients.configure writes over SSH."""

from __future__ import annotations

import configparser
import datetime
import json
import socket
import stat

import pytest
from invoke import Config, Context
from invoke.exceptions import Exit

from ppc_tasks import client_kit, clients, state
from ppc_tasks.plans import certs
from ppc_tasks.settings import Settings

PASSWORD = "s3cret/+"
NOW = datetime.datetime.now(datetime.timezone.utc)


@pytest.fixture
def settings(tmp_path):
    return Settings.from_config({"server_names": ["pypi.example.com", "10.0.0.5"],
                                 "admins": ["root-admin"], "users": ["dev", "ci"],
                                 "client_index": "extra-index-url",
                                 "state_dir": str(tmp_path / "state")})


@pytest.fixture
def ca():
    certificate, _ = certs.new_ca(("pypi.example.com", "10.0.0.5"), True, NOW)
    return certs.pem(certificate)


def kit_file(tmp_path, settings, ca, changes=None):
    data = json.loads(client_kit.content(settings, PASSWORD, ca))
    data.update(changes or {})
    path = tmp_path / "kit.json"
    state.write(path, json.dumps(data).encode(), private_folder=False)
    return path


def test_a_kit_reads_back_as_the_settings_clients_need(tmp_path, settings, ca):
    path = kit_file(tmp_path, settings, ca)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    kit = client_kit.read(path)
    assert kit.password == PASSWORD and kit.ca == ca
    for key in ("server_names", "index_url", "client_user", "client_index", "index_name"):
        assert getattr(kit.settings, key) == getattr(settings, key)


def test_a_kit_holds_one_password_and_no_key(tmp_path, settings, ca):
    data = json.loads(client_kit.content(settings, PASSWORD, ca))
    assert set(data) == {"kind", "version", "index", "settings", "password", "ca"}
    assert "PRIVATE KEY" not in json.dumps(data)


@pytest.mark.parametrize("changes, why", [
    ({"kind": "something else"}, "no kind"),
    ({"version": 2}, "version 2; this ppc reads version 1"),
    ({"password": ""}, "no password"),
    ({"settings": {"server_names": ["a.example"], "gateway": "nc"}}, "not those of a client"),
    ({"settings": {"server_names": ["bad name"]}}, "ppc.server_names"),
    ({"ca": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}, "no PEM"),
    ({"index": "../../.ssh/authorized_keys"}, "its index is no DNS name"),
])
def test_anything_but_a_kit_is_one_line_naming_the_file(tmp_path, settings, ca, changes, why):
    path = kit_file(tmp_path, settings, ca, changes)
    with pytest.raises(clients.TaskError, match=f"{path} is not a client kit .*{why}"):
        client_kit.read(path)


def test_a_server_certificate_is_no_ca_to_trust(tmp_path, settings):
    ca_cert, ca_key = certs.new_ca(("pypi.example.com", "10.0.0.5"), True, NOW)
    leaf = certs.new_server_certificate(ca_cert, ca_key, ("pypi.example.com", "10.0.0.5"), NOW)[0]
    path = kit_file(tmp_path, settings, certs.pem(leaf))
    with pytest.raises(clients.TaskError, match="is not a CA's"):
        client_kit.read(path)


def test_a_ca_that_may_not_sign_for_the_kits_names_is_refused(tmp_path, settings):
    other, _ = certs.new_ca(("pypi.other.example",), True, NOW)
    path = kit_file(tmp_path, settings, certs.pem(other))
    with pytest.raises(clients.TaskError, match="its CA may not sign for pypi.example.com, 10.0.0.5"):
        client_kit.read(path)


def setup(path, dry=False):
    context = Context(Config(overrides={"run": {"dry": dry}}))
    clients.setup.body(context, str(path))


def test_setup_writes_the_files_for_this_user_and_a_second_run_changes_nothing(
        tmp_path, settings, ca, monkeypatch, capsys):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    path = kit_file(tmp_path, settings, ca)
    setup(path, dry=True)
    shown = capsys.readouterr().out
    assert "would change" in shown and PASSWORD not in shown
    assert not (home / ".pypirc").exists()
    setup(path)
    first = capsys.readouterr().out
    assert f"[{socket.gethostname()}] clients.pip" in first and "SSH" not in first
    assert f"{path} holds the password of dev: delete it now" in first
    pip_conf = configparser.RawConfigParser()
    pip_conf.read(home / ".config/pip/pip.conf")
    assert pip_conf["global"]["extra-index-url"] == \
        "https://dev:s3cret%2F%2B@pypi.example.com/simple/"
    bundle = home / ".config/ppc-tasks/pypi.example.com-ca-bundle.pem"
    assert pip_conf["global"]["cert"] == str(bundle)
    assert bundle.read_bytes().endswith(ca)
    for name in (".pypirc", ".config/pip/pip.conf"):
        assert stat.S_IMODE((home / name).stat().st_mode) == 0o600
    setup(path)
    assert "done: 0 changed," in capsys.readouterr().out


def test_setup_without_a_kit_file_is_one_line(tmp_path):
    with pytest.raises(Exit, match="Error on this machine: .*No such file"):
        setup(tmp_path / "missing.json")
