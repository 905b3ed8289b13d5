from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ppc_tasks import index
from ppc_tasks.errors import TaskError
from ppc_tasks.facts import FILE, TEXT, NotAsked, answered
from ppc_tasks.settings import Settings


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


def test_a_run_works_on_the_index_the_host_serves_when_its_names_were_replaced():
    settings = Settings.from_config({"server_names": ["renamed.test"]}, host=None)
    indexes = {"pypi.test": ("pypi.test",)}
    assert index.serving(settings, "pypi.test", indexes) == "pypi.test"
    assert index.serving(settings, "elsewhere.test", indexes) == "renamed.test"  # not here
    assert index.serving(settings, None, indexes) == "renamed.test"


class AskingHost:
    """A host whose facts are answered from data, as often as they are asked for."""

    def __init__(self, settings, answers: dict[str, tuple[str, ...]]):
        self.settings, self.answers, self.name, self.asked = settings, answers, "h", []

    def gather(self, queries):
        self.asked.append(list(queries))
        return answered(queries, self.answers)


def test_a_run_that_follows_the_host_to_its_index_asks_for_that_index_s_facts(tmp_path):
    make_index(tmp_path, "pypi.test", ["pypi.test"])
    settings = Settings.from_config({"server_names": ["renamed.test"], "state_dir": str(tmp_path)},
                                    host=None)

    def queries(settings):
        return [TEXT.query(index.HOST_MARKER), FILE.query(f"/etc/ssl/{settings.index_name}.crt"),
                *index.queries(settings)]

    answers = {TEXT.query(index.HOST_MARKER): ("644 0:0 x", "cHlwaS50ZXN0Cg==")}
    host = AskingHost(settings, answers)
    facts = index.settle(host, host.gather(queries(settings)), queries)
    assert host.settings.index_name == "pypi.test" and host.settings.server_names == ("renamed.test",)
    assert host.asked[-1] == queries(host.settings)
    assert facts.file("/etc/ssl/pypi.test.crt").state is None  # asked for, and answered
    with pytest.raises(NotAsked, match=re.escape("the fact file|text=/etc/ssl/renamed.test.crt, "
                                                 "which its task did not ask for")):
        facts.file("/etc/ssl/renamed.test.crt")
