from __future__ import annotations

import json
from pathlib import Path

import pytest

from ppc_tasks import index
from ppc_tasks.errors import TaskError


def make_index(state_dir: Path, name: str, names: list[str] | None) -> None:
    folder = state_dir / name
    folder.mkdir(parents=True)
    (folder / "secrets.json").write_text("{}")
    if names is not None:
        (folder / "index.json").write_text(json.dumps({"server_names": names}))


def test_known_indexes_read_their_records_and_old_folders_name_themselves(tmp_path):
    make_index(tmp_path, "pypi-internal", ["pypi-internal", "pypi.example.com"])
    make_index(tmp_path, "old.example", None)  # before index.json
    make_index(tmp_path, "pypi-internal.replaced-20260101000000", ["pypi-internal"])
    (tmp_path / "not-an-index").mkdir()
    assert index.known_indexes(tmp_path) == {"old.example": ("old.example",),
                                             "pypi-internal": ("pypi-internal", "pypi.example.com")}
    assert index.known_indexes(tmp_path / "missing") == {}


def test_added_or_reordered_names_find_the_same_index():
    indexes = {"pypi-internal": ("pypi-internal", "10.0.0.5")}
    assert index.index_for_names(indexes, ("10.0.0.5", "pypi-internal")) == "pypi-internal"
    assert index.index_for_names(indexes, ("pypi.example.com", "pypi-internal")) == "pypi-internal"
    assert index.index_for_names(indexes, ("other",)) is None
    with pytest.raises(TaskError, match="belong to several indexes here"):
        index.index_for_names({**indexes, "b": ("10.0.0.5",)}, ("10.0.0.5",))


def test_clients_find_the_one_index_or_are_told_how_to_choose(tmp_path):
    one = {"pypi-internal": ("pypi-internal",)}
    assert index.choose_for_clients(one, (), "", tmp_path) == "pypi-internal"
    two = {**one, "staging": ("staging.example",)}
    with pytest.raises(TaskError, match=r"several indexes .* \(pypi-internal, staging\): "
                                        r"choose one with --index NAME"):
        index.choose_for_clients(two, (), "", tmp_path)
    assert index.choose_for_clients(two, (), "staging", tmp_path) == "staging"
    assert index.choose_for_clients(two, ("staging.example",), "", tmp_path) == "staging"
    with pytest.raises(TaskError, match=r"--index nope: no such index .* \(known: pypi-internal, staging\)"):
        index.choose_for_clients(two, (), "nope", tmp_path)
    with pytest.raises(TaskError, match=r"no index has been deployed from this machine"):
        index.choose_for_clients({}, (), "", tmp_path)


@pytest.mark.parametrize("marker, host_has_index, known, refused", [
    (None, False, {}, False),                       # a fresh host
    ("pypi-internal", True, {"pypi-internal": ()}, False),
    ("pypi-internal", True, {}, True),              # its secrets are on another machine
    (None, True, {}, True),                         # an index from before the marker
    (None, True, {"pypi-internal": ()}, False),     # ...whose folder is here
])
def test_a_second_identity_for_a_host_is_refused(tmp_path, marker, host_has_index, known, refused):
    problem = index.identity_problem("pypi-internal", marker, host_has_index, known, tmp_path, "h")
    assert (problem is not None) == refused
    if refused:
        assert "--new-identity" in problem and "\n" not in problem
