"""The README's quickstart, run as written: every command of its seven steps, in order,
from a new operator's home (the hosts are ~/.ssh/config names, ~/.fabric.yaml holds what
this machine's network needs: the proxy's CA for the image build) against a Debian host,
two developer machines (one with sudo, one without) and a laptop set up from a kit."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from . import harness
from .conftest import FAB, REPO, SYSTEM_CA_BUNDLE, steps
from .test_clients import table

INDEX = "pypi.example.com"
PROJECT = "acme-tools"


def quickstart_commands() -> list[str]:
    """The commands of the README's Quickstart, in order: its indented lines, without
    their comments."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Quickstart\n"):readme.index("\n## ", readme.index("## Quickstart\n") + 1)]
    return [re.sub(r"\s+# .*$", "", line).strip()
            for line in section.splitlines() if line.startswith("       ")]


def test_the_quickstart_names_what_this_test_runs():
    assert quickstart_commands() == [
        "mkdir ~/pypi && cd ~/pypi",
        f"ppc init --names {INDEX} --private 'acme-*'",
        "ppc config",
        f"ppc --dry -H {INDEX} deploy --bootstrap",
        f"ppc -H {INDEX} deploy --bootstrap",
        f"ppc -H {INDEX} status",
        "ppc -H dev1,dev2 clients.configure",
        "ppc clients.export --kit dev-kit.json",
        "ppc clients.setup --kit dev-kit.json",
        "twine upload -r internal dist/*",
        f"pip install {PROJECT}",
        f"ppc -H {INDEX} backup",
    ]


@pytest.fixture(scope="module")
def machines(start_host, ppc_wheels, make_dists):
    """The index host (Docker there, its images loaded), dev1 (sudo), dev2 (none), and a
    laptop whose user installed ppc from the wheels; each developer has dist/ of PROJECT."""
    index = start_host("quickstart-index")
    developers = {}
    for name, can_sudo in (("dev1", True), ("dev2", False), ("laptop", False)):
        host = start_host(f"quickstart-{name}", kind="client", add_hosts={INDEX: index.address})
        host.exec("useradd -m -s /bin/sh dev && mkdir -p ~dev/.ssh "
                  "&& cp /root/.ssh/authorized_keys ~dev/.ssh/ && chown -R dev: ~dev/.ssh")
        if can_sudo:
            host.exec("echo 'dev ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/dev")
        host.copy_in(make_dists(PROJECT, "1.0.0"), "/home/dev/dist")
        host.exec("chown -R dev: /home/dev/dist")
        developers[name] = host
    laptop = developers["laptop"]
    laptop.copy_in(list(ppc_wheels.glob("*.whl")), "/tmp/wheels")
    laptop.exec("python3 -m venv /opt/ppc && /opt/ppc/bin/pip install -q --no-index "
                "--find-links /tmp/wheels ppc-tasks && ln -s /opt/ppc/bin/ppc /usr/local/bin/")
    return index, developers


@pytest.fixture(scope="module")
def operator(tmp_path_factory, ssh_key, machines) -> Path:
    index, developers = machines
    home = tmp_path_factory.mktemp("quickstart-operator")
    (home / ".ssh").mkdir(mode=0o700)
    (home / ".ssh" / "config").write_text("".join(
        f"Host {alias}\n    HostName 127.0.0.1\n    Port {host.port}\n    User {user}\n"
        f"    IdentityFile {ssh_key}\n\n"
        for alias, host, user in ((INDEX, index, "root"), ("dev1", developers["dev1"], "dev"),
                                  ("dev2", developers["dev2"], "dev"))))
    (home / ".fabric.yaml").write_text(f"ppc:\n  build_ca_bundle: {SYSTEM_CA_BUNDLE}\n")
    return home


class Operator:
    """A shell on the operator's machine: each command as typed, in the folder the one
    before it left."""

    def __init__(self, home: Path):
        self.home, self.folder = home, home
        self.environment = {"PATH": f"{FAB.parent}:/usr/bin:/bin", "HOME": str(home),
                            "LANG": os.environ.get("LANG", "C.UTF-8")}

    def __call__(self, command: str) -> subprocess.CompletedProcess:
        where = self.home / ".last-folder"
        done = subprocess.run(["bash", "-c", f'{command} && pwd > "$0"', str(where)],
                              cwd=self.folder, capture_output=True, text=True,
                              env=self.environment, timeout=900)
        if done.returncode == 0:
            self.folder = Path(where.read_text().strip())
        return done


def as_developer(host: harness.TestHost, command: str) -> subprocess.CompletedProcess:
    """A command on a developer machine, as `dev` in their home, in a venv of theirs (pip
    installs into one: Debian's own Python is the system's)."""
    done = host.exec(f"cd && {{ [ -d venv ] || python3 -m venv venv; }} && . venv/bin/activate "
                     f"&& {command}", user="dev", check=False)
    return subprocess.CompletedProcess(command, done.returncode, done.stdout.decode(),
                                       done.stderr.decode())


def test_the_quickstart_as_written(operator, machines):
    _, developers = machines
    shell = Operator(operator)
    commands = iter(quickstart_commands())

    def ok(result: subprocess.CompletedProcess) -> str:
        assert result.returncode == 0, f"{result.args}:\n{result.stdout}{result.stderr}"
        assert "Traceback" not in result.stderr, result.stderr
        return result.stdout

    # 1. The names, in a fabric.yaml of the operator's folder, trusted as written.
    ok(shell(next(commands)))
    assert ok(shell(next(commands))).startswith(f"wrote {operator}/pypi/fabric.yaml")
    shown = ok(shell(next(commands)))
    assert re.search(rf"^server_names +{INDEX} +\(.*fabric.yaml\)$", shown, re.MULTILINE), shown
    assert re.search(r"^private_names +acme-\* ", shown, re.MULTILINE), shown
    # 2. The preview changes nothing, here or there.
    preview = ok(shell(next(commands)))
    assert "nothing was changed" in preview, preview
    assert not (operator / ".local" / "state" / "ppc-tasks" / INDEX).exists()
    # 3. The deploy.
    deployed = ok(shell(next(commands)))
    assert f"[{INDEX}] index:       https://{INDEX}/simple/" in deployed, deployed
    state = operator / ".local" / "state" / "ppc-tasks" / INDEX
    assert (state / "secrets.json").stat().st_mode & 0o777 == 0o600
    # 4. Status.
    assert "certificate  ok" in ok(shell(next(commands)))
    # 5. Developer machines: two over SSH, and a laptop from a kit.
    configured = shell(next(commands))
    assert table(configured.stdout) == {"dev1": "changed", "dev2": "changed"}, \
        configured.stdout + configured.stderr
    ok(shell(next(commands)))
    kit = shell.folder / "dev-kit.json"
    laptop = developers["laptop"]
    laptop.copy_in([kit], "/home/dev")
    laptop.exec("chown dev: /home/dev/dev-kit.json && chmod 600 /home/dev/dev-kit.json")
    set_up = as_developer(laptop, next(commands))
    assert set_up.returncode == 0 and "clients.pip" in set_up.stdout, set_up.stdout + set_up.stderr
    # 6. Publish from dev1, install everywhere, certificate verification on.
    ok(as_developer(developers["dev1"], next(commands)))
    install = next(commands)
    for name in ("dev1", "dev2", "laptop"):
        installed = ok(as_developer(developers[name], install))
        assert f"Successfully installed {PROJECT}-1.0.0" in installed, (name, installed)
    # 7. A backup on this machine, beside the rest of the state folder.
    ok(shell(next(commands)))
    assert list((state / "backups").glob("*.tar.gz")), list(state.iterdir())
    assert next(commands, None) is None
    # And a second deploy as the quickstart's changes nothing.
    again = ok(shell(f"ppc -H {INDEX} deploy --bootstrap"))
    assert "done: 0 changed," in again and set(steps(again).values()) == {"unchanged"}, again
