"""`ppc config`: each setting's value and the layer it comes from (ppc_tasks/effective.py)."""

from __future__ import annotations

from pathlib import Path

from ppc_tasks import effective


class Layers(dict):
    """What effective.py reads of Fabric's Config: the merged mapping and its layers."""

    def __init__(self, merged: dict, **layers):
        super().__init__(merged)
        self.__dict__.update(layers)


def test_the_last_layer_that_sets_a_key_is_its_source():
    home = str(Path.home())
    config = Layers(
        {"ppc": {"server_names": ["pypi.example.com"], "users": ["ci"], "fallback": "none",
                 "release_window": "30m"}},
        _user={"ppc": {"server_names": ["old.example.com"], "users": ["ci"]}},
        _user_path=f"{home}/.fabric.yaml",
        _project={"ppc": {"server_names": ["pypi.example.com"]}},
        _project_path="/src/infra/fabric.yaml",
        _env={"ppc": {"fallback": "none"}},
        _runtime={"ppc": {"release_window": "30m"}}, _runtime_path="/tmp/run.json")
    rows = {key: (value, source) for key, value, source in effective.rows(config, {})}
    assert rows["server_names"] == ("pypi.example.com", "/src/infra/fabric.yaml")
    assert rows["users"] == ("ci", "~/.fabric.yaml")
    assert rows["fallback"] == ("none", "$FABRIC_PPC_FALLBACK")
    assert rows["release_window"] == ("30m", "/tmp/run.json")
    assert rows["admins"] == ("admin", "default") and rows["index_url"] == ("(none)", "default")
    # FABRIC_PPC_OWNERS is read by the settings themselves (Invoke merges no string into
    # a mapping): shown as the variable says.
    owned = {key: (value, source) for key, value, source in
             effective.rows(Layers({"ppc": {}}), {"FABRIC_PPC_OWNERS": "acme-*=ci"})}
    assert owned["owners"] == ("acme-*=ci", "$FABRIC_PPC_OWNERS")
    assert effective.shown({"acme-*": ["ci", "release"]}) == "acme-*: ci, release"
