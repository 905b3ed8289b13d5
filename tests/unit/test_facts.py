"""The probe (files/sh/facts.sh) run on local files, read by ppc_tasks/facts.py."""

from __future__ import annotations

import os

from ppc_tasks import facts as facts_module
from ppc_tasks.facts import Facts, FileState, Release
from ppc_tasks.render import script
from tests.unit.scripts import run_script


def probe(*queries: str, env: dict[str, str] | None = None) -> Facts:
    """facts.sh run here, on local files, as the host layer runs it there."""
    result = run_script("facts", *facts_module.probe_args(queries), env=env)
    assert result.returncode == 0, result.stderr
    return facts_module.parse(result.stdout.decode())


def test_facts_of_a_file_a_directory_and_nothing(tmp_path):
    path = tmp_path / "config.ini"
    path.write_bytes(b"hello")
    path.chmod(0o640)
    copy = tmp_path / "copy.ini"
    copy.write_bytes(b"hello")
    copy.chmod(0o640)
    facts = probe(f"file={path}", f"text={copy}", f"file={tmp_path}", f"text={tmp_path / 'none'}",
                  "platform")
    state = FileState("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
                      "640", f"{os.getuid()}:{os.getgid()}")
    assert facts.file(str(path)).state == state and facts.file(str(path)).content is None
    assert facts.file(str(copy)).state == state and facts.file(str(copy)).content == b"hello"
    assert facts.file(str(tmp_path)).is_directory
    assert facts.file(str(tmp_path / "none")).state is None
    assert facts.platform is not None and facts.user_ids == f"{os.getuid()}:{os.getgid()}"


def test_text_facts_carry_the_content_and_home_is_the_users(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".pypirc").write_bytes(b"[distutils]\nindex-servers =\n    company\n")
    facts = probe("text=~/.pypirc", "text=~/.config/pip/pip.conf", "platform")
    assert facts.file("~/.pypirc").content == b"[distutils]\nindex-servers =\n    company\n"
    assert facts.file("~/.config/pip/pip.conf").state is None
    assert facts.home == str(tmp_path)


def test_listening_ports_come_from_proc_net_tcp():
    facts = facts_module.parse(facts_module.PORTS.answer("", "0BD7 01BB ") + "\n")
    assert facts.ports == {3031, 443}


def test_the_scripts_get_the_labels_and_tag_width_from_one_definition():
    from ppc_tasks import docker
    for name in ("facts", "retire"):  # none written again in a script
        assert "ppc-tasks." not in script(name) and "[0-9a-f]" * 2 not in script(name)
    assert facts_module.probe_args(["docker"]) == [docker.CONTEXT_LABEL, docker.SPEC_LABEL, "docker"]


def test_the_server_says_what_a_release_is(tmp_path):
    """facts.sh asks the server container's ppc-guard (here a stand-in docker)."""
    stub = tmp_path / "docker"
    stub.write_text("""#!/bin/sh
case "$*" in
    "version --format {{.Server.Version}}") echo 27.0 ;;
    "exec old ppc-guard release acme-tools 1.0") echo "ppc-guard: not found" >&2; exit 127 ;;
    "exec pypicloud ppc-guard release acme-tools 1.0.0")
        echo '{"held": true, "version": "1.0", "yanked": "broken build"}' ;;
    "exec pypicloud ppc-guard release acme-tools 9") echo '{"held": false}' ;;
    *) exit 1 ;;
esac
""")
    stub.chmod(0o755)
    environment = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    facts = probe("release=pypicloud/acme-tools/1.0.0", "release=pypicloud/acme-tools/9",
                  "release=old/acme-tools/1.0", env=environment)
    assert facts.releases == {"pypicloud/acme-tools/1.0.0": Release(True, "1.0", "broken build"),
                              "pypicloud/acme-tools/9": Release(False),
                              "old/acme-tools/1.0": None}


def test_what_unit_tests_answer_for_an_absent_thing_is_what_the_probe_answers(tmp_path):
    """facts.answered builds unit tests' facts from each kind's answer for a thing that
    is not there: the probe's own answer, here for the kinds a machine without Docker has."""
    queries = [f"file={tmp_path / 'none'}", f"text={tmp_path / 'none'}",
               "command=no-such-command-here", "tool=no-such-tool-here", "uid=64999",
               "unit=no-such-unit"]
    assert facts_module.answered(queries) == probe(*queries)
