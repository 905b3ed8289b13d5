"""No setting ever reaches a shell unquoted: every command is an argv list that the host
layer quotes, and shell logic lives in fixed scripts that take values as arguments.

Validation refuses such values long before this (test_settings); this test is the
second wall: even a hostile value that got through stays one argument."""

import dataclasses
import shlex

import pytest

from ppc_tasks import facts, tls_paths
from ppc_tasks.plans import data, deploy, image, server
from ppc_tasks.render import script_argv
from ppc_tasks.settings import Settings
from ppc_tasks.ssh import command_line
from ppc_tasks.system import FAMILIES

HOSTILE = "x'\"; touch /tmp/pwned; $(touch /tmp/pwned) `id` ${IFS}\n|&<>*?"


@pytest.fixture
def hostile() -> Settings:
    """Every string setting, and each name in every list of strings, set to HOSTILE."""
    settings = Settings.from_config({}, host="h")
    values = {}
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if isinstance(value, str):
            values[field.name] = HOSTILE + field.name
        elif isinstance(value, tuple):
            values[field.name] = (HOSTILE + field.name,)
    return dataclasses.replace(settings, **values)


def built_commands(settings: Settings) -> list[list[str]]:
    """Every command ppc-tasks builds from settings, as the tasks build them."""
    builds = image.image_builds(settings)
    return [
        *(image.build_argv(build, no_cache=True) for build in builds),
        data.create_argv(settings),
        data.copy_argv(settings, HOSTILE + "volume"),
        facts.probe_argv(deploy.queries(settings)),
        server.run_argv(settings, HOSTILE, spec=HOSTILE),
        script_argv("wait-healthy", settings.server_container, str(settings.start_timeout)),
        script_argv("put-file", settings.config_path, "600", "10001:10001", "keep"),
        script_argv("restore-previous", settings.config_path),
        script_argv("put-file", tls_paths.host_cert_paths(settings)[0], "644", "0:0", ""),
        script_argv("put-file", tls_paths.trust_path(FAMILIES["debian"].trust_store,
                                                 settings.primary_name), "644", "0:0", ""),
        ["docker", "rename", settings.server_container, settings.server_container + "-previous"],
        ["rm", "-f", "--", tls_paths.trust_path(FAMILIES["rhel"].trust_store, settings.primary_name)],
    ]


def test_every_command_keeps_each_hostile_value_one_argument(hostile):
    for argv in built_commands(hostile):
        for sudo in ("root", "nopasswd", "password"):
            words = shlex.split(command_line(argv, as_root=True, sudo=sudo))
            assert words[len(words) - len(argv):] == argv
        if "-c" in argv:  # the script itself is fixed text: no value is pasted into it
            assert "pwned" not in argv[argv.index("-c") + 1]
    assert any(HOSTILE in word for argv in built_commands(hostile) for word in argv)
