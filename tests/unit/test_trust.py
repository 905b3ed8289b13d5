"""A directory's fabric.yaml is read only once trusted as it is, and only for ppc: settings."""

from __future__ import annotations

import pytest
from invoke.exceptions import Exit

from ppc_tasks import trust


@pytest.fixture(autouse=True)
def store(tmp_path, monkeypatch):
    monkeypatch.setattr(trust, "TRUSTED_FILES", tmp_path / "state" / "trusted-files.json")
    return tmp_path / "state" / "trusted-files.json"


@pytest.fixture
def project(tmp_path, monkeypatch):
    directory = tmp_path / "clone"
    directory.mkdir()
    monkeypatch.chdir(directory)
    return directory


def test_a_new_file_is_not_trusted(project):
    (project / "fabric.yaml").write_text("ppc:\n  server_names: [pypi.example.com]\n")
    with pytest.raises(trust.Untrusted, match="is not trusted .* run `ppc trust`"):
        trust.trusted_settings(trust.project_file(project))


def test_a_trusted_file_gives_its_ppc_settings_until_it_changes(project, store):
    path = project / "fabric.yaml"
    path.write_text("ppc:\n  server_names: [pypi.example.com]\n")
    trust.trust.body(None)
    assert oct(store.stat().st_mode & 0o777) == "0o600"
    assert trust.trusted_settings(path) == {"ppc": {"server_names": ["pypi.example.com"]}}
    path.write_text("ppc:\n  server_names: [pypi.example.com]\n  index_url: https://elsewhere\n")
    with pytest.raises(trust.Untrusted, match="changed since it was trusted"):
        trust.trusted_settings(path)


def test_the_same_bytes_elsewhere_are_not_trusted(project, tmp_path):
    content = "ppc:\n  server_names: [pypi.example.com]\n"
    (project / "fabric.yaml").write_text(content)
    trust.trust.body(None)
    other = tmp_path / "other"
    other.mkdir()
    (other / "fabric.yaml").write_text(content)
    with pytest.raises(trust.Untrusted, match="is not trusted"):
        trust.trusted_settings(trust.project_file(other))


@pytest.mark.parametrize("key", ["gateway", "ssh_config_path", "runners", "connect_kwargs",
                                 "run", "sudo"])
def test_a_file_with_anything_but_ppc_settings_cannot_be_trusted(project, store, key):
    (project / "fabric.yaml").write_text(f"{key}: x\nppc:\n  server_names: [a.example]\n")
    with pytest.raises(Exit):
        trust.trust.body(None)
    assert not store.exists()
    with pytest.raises(trust.Untrusted, match=f"sets {key}: a directory's file may hold only ppc"):
        trust.ppc_settings(project / "fabric.yaml", (project / "fabric.yaml").read_bytes())


@pytest.mark.parametrize("name", trust.PROJECT_FILES)
def test_each_file_name_fabric_reads_is_judged(project, name):
    (project / name).write_text('{"ppc": {"server_names": ["a.example"]}}')
    assert trust.project_file(project) == project / name
    with pytest.raises(trust.Untrusted):
        trust.trusted_settings(project / name)


def test_a_file_that_is_not_settings_is_one_line(project):
    (project / "fabric.yaml").write_text("ppc: [unclosed\n")
    with pytest.raises(trust.Untrusted, match="is not valid YAML") as refused:
        trust.ppc_settings(project / "fabric.yaml", (project / "fabric.yaml").read_bytes())
    assert "\n" not in str(refused.value)
    with pytest.raises(trust.Untrusted, match="must be a mapping"):
        trust.ppc_settings(project / "fabric.yaml", b"- a list\n")
