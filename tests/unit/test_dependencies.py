"""patchwork is deliberately not a dependency: its last release (1.0.1, 2018) pins
fabric<3, which drags in invoke 1.x, whose `fab` crashes on Python 3.11+."""

from importlib.metadata import requires, version


def test_fabric_3_is_installed_and_patchwork_is_not_required():
    assert int(version("fabric").split(".")[0]) >= 3
    assert int(version("invoke").split(".")[0]) >= 2
    assert not any(requirement.startswith("patchwork") for requirement in requires("ppc-tasks"))
