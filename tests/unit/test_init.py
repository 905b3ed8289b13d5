"""ppc init writes a fabric.yaml a first deploy can use as it is: valid, commented, trusted."""

from __future__ import annotations

import pytest
from invoke.exceptions import Exit
from invoke.util import yaml

from ppc_tasks import init, project, state
from ppc_tasks.settings import DEFAULTS, Settings


@pytest.fixture(autouse=True)
def here(tmp_path, monkeypatch):
    monkeypatch.setattr(project, "TRUSTED_FILES", tmp_path / "state" / "trusted-files.json")
    directory = tmp_path / "here"
    directory.mkdir()
    monkeypatch.chdir(directory)
    return directory


def written(**options):
    arguments = {"names": "", "private": "", "fallback": DEFAULTS["fallback"],
                 "admins": DEFAULTS["admins"], "users": DEFAULTS["users"], **options}
    init.init.body(None, **arguments)


def test_the_file_holds_the_choices_with_a_comment_on_each_and_is_trusted(here):
    written(names="pypi.example.com, 10.0.0.5", private="acme-*,tools", fallback="none",
            users="ci,dev")
    path = here / "fabric.yaml"
    text = path.read_text()
    assert "permanent" in text and "never looked up on PyPI" in text
    assert oct(path.stat().st_mode & 0o777) == "0o644"  # no secret in it
    ppc = project.trusted_settings(path)["ppc"]
    settings = Settings.from_config(ppc, environ={})
    assert settings.server_names == ("pypi.example.com", "10.0.0.5")
    assert settings.private_names == ("acme-*", "tools")
    assert (settings.fallback, settings.admins, settings.users) == ("none", ("admin",), ("ci", "dev"))
    assert settings.client_user == "ci"


def test_defaults_give_a_valid_file_with_every_choice_written_out(here):
    written(names="pypi.example.com")
    ppc = yaml.safe_load((here / "fabric.yaml").read_text())["ppc"]
    assert ppc == {"server_names": ["pypi.example.com"], "private_names": [],
                   "fallback": "redirect", "admins": ["admin"], "users": []}


@pytest.mark.parametrize("options, message", [
    ({"names": "bad name"}, "ppc.server_names: 'bad name' is not a DNS name"),
    ({"names": "a.example", "fallback": "sometimes"}, "ppc.fallback"),
    ({"names": "a.example", "private": "acme *"}, "ppc.private_names"),
    ({"names": "a.example", "users": "admin"}, "'admin' is an admin already"),
])
def test_bad_choices_are_one_line_and_write_nothing(here, capsys, options, message):
    with pytest.raises(Exit, match=message):
        written(**options)
    assert not (here / "fabric.yaml").exists()


def test_without_names_and_no_terminal_it_asks_for_the_option(here, monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(Exit, match="give the index's names with --names"):
        written()
    assert not (here / "fabric.yaml").exists()


def test_on_a_terminal_it_asks_for_the_names(here, monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "pypi.example.com")
    written()
    assert "pypi.example.com" in (here / "fabric.yaml").read_text()


def test_an_existing_file_is_never_replaced(here):
    (here / "fabric.yml").write_text("ppc: {}\n")
    with pytest.raises(Exit, match="fabric.yml exists: edit it"):
        written(names="pypi.example.com")
    assert not (here / "fabric.yaml").exists()


def test_a_file_made_meanwhile_is_not_replaced_and_nothing_is_left_aside(here, monkeypatch):
    made_meanwhile = b"ppc:\n  server_names: [mine.example]\n"

    def link(source, target):  # another run wrote it between the check and the link
        (here / "fabric.yaml").write_bytes(made_meanwhile)
        raise FileExistsError(target)

    monkeypatch.setattr(state.os, "link", link)
    with pytest.raises(Exit, match="fabric.yaml exists: edit it"):
        written(names="pypi.example.com")
    assert (here / "fabric.yaml").read_bytes() == made_meanwhile
    assert sorted(path.name for path in here.iterdir()) == ["fabric.yaml"]
