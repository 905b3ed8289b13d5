"""A directory's fabric.yaml is read only once trusted as it is, and only for ppc: settings."""

from __future__ import annotations

import pytest
from invoke.exceptions import Exit

from ppc_tasks import project, trust


@pytest.fixture(autouse=True)
def store(tmp_path, monkeypatch):
    monkeypatch.setattr(project, "TRUSTED_FILES", tmp_path / "state" / "trusted-files.json")
    return tmp_path / "state" / "trusted-files.json"


@pytest.fixture
def here(tmp_path, monkeypatch):
    directory = tmp_path / "clone"
    directory.mkdir()
    monkeypatch.chdir(directory)
    return directory


def test_a_new_file_is_not_trusted(here):
    (here / "fabric.yaml").write_text("ppc:\n  server_names: [pypi.example.com]\n")
    with pytest.raises(project.Untrusted, match="is not trusted .* run `ppc trust`"):
        project.trusted_settings(project.project_file(here))


def test_a_trusted_file_gives_its_ppc_settings_until_it_changes(here, store):
    path = here / "fabric.yaml"
    path.write_text("ppc:\n  server_names: [pypi.example.com]\n")
    trust.trust.body(None)
    assert oct(store.stat().st_mode & 0o777) == "0o600"
    assert project.trusted_settings(path) == {"ppc": {"server_names": ["pypi.example.com"]}}
    path.write_text("ppc:\n  server_names: [pypi.example.com]\n  index_url: https://elsewhere\n")
    with pytest.raises(project.Untrusted, match="changed since it was trusted"):
        project.trusted_settings(path)


def test_the_same_bytes_elsewhere_are_not_trusted(here, tmp_path):
    content = "ppc:\n  server_names: [pypi.example.com]\n"
    (here / "fabric.yaml").write_text(content)
    trust.trust.body(None)
    other = tmp_path / "other"
    other.mkdir()
    (other / "fabric.yaml").write_text(content)
    with pytest.raises(project.Untrusted, match="is not trusted"):
        project.trusted_settings(project.project_file(other))


@pytest.mark.parametrize("key", ["gateway", "ssh_config_path", "runners", "connect_kwargs",
                                 "run", "sudo"])
def test_a_file_with_anything_but_ppc_settings_cannot_be_trusted(here, store, key):
    (here / "fabric.yaml").write_text(f"{key}: x\nppc:\n  server_names: [a.example]\n")
    with pytest.raises(Exit):
        trust.trust.body(None)
    assert not store.exists()
    with pytest.raises(project.Untrusted, match=f"sets {key}: a directory's file may hold only ppc"):
        project.ppc_settings(here / "fabric.yaml", (here / "fabric.yaml").read_bytes())


@pytest.mark.parametrize("name", project.PROJECT_FILES)
def test_each_file_name_fabric_reads_is_judged(here, name):
    (here / name).write_text('{"ppc": {"server_names": ["a.example"]}}')
    assert project.project_file(here) == here / name
    with pytest.raises(project.Untrusted):
        project.trusted_settings(here / name)


def test_a_file_that_is_not_settings_is_one_line(here):
    (here / "fabric.yaml").write_text("ppc: [unclosed\n")
    with pytest.raises(project.Untrusted, match="is not valid YAML") as refused:
        project.ppc_settings(here / "fabric.yaml", (here / "fabric.yaml").read_bytes())
    assert "\n" not in str(refused.value)
    with pytest.raises(project.Untrusted, match="must be a mapping"):
        project.ppc_settings(here / "fabric.yaml", b"- a list\n")
