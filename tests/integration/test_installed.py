"""ppc-tasks as an operator installs it: the wheel in a fresh venv, the `ppc` command run
from directories that are not the clone, and a user's own fabfile that adds the
collections beside its own tasks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from .conftest import REPO, SERVER_NAME, password_of, steps

USER_FABFILE = '''\
from fabric import task
from invoke import Collection

from ppc_tasks import namespace


@task
def hello(c):
    """A task of the operator's own."""
    print("hello from my own fabfile")


ns = Collection(hello)
ns.add_collection(namespace, name="ppc")
'''


@pytest.fixture(scope="module")
def installed(tmp_path_factory, ppc_wheels) -> Path:
    """A fresh venv with the wheel built from this checkout: its bin/ folder."""
    venv = tmp_path_factory.mktemp("installed") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    added = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                            "--no-index", "--find-links", str(ppc_wheels), "ppc-tasks"],
                           capture_output=True, text=True)
    assert added.returncode == 0, added.stdout + added.stderr
    return venv / "bin"


def run(command: Path, *args: str, cwd: Path, fab) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FABRIC_")}
    return subprocess.run([str(command), *args], cwd=cwd, capture_output=True, text=True,
                          env={**environment, "HOME": str(fab.home)}, timeout=900)


# The oldest Python pyproject.toml's requires-python admits (Debian 11's): the operator's
# machine may have no newer one. The server image has its own (3.11).
PYTHON_FLOOR = "3.9"
# Unit tests that need more than the floor themselves (not ppc-tasks): the guard runs in
# the server image (with prometheus_client: test_metrics); these two read their answers
# with tomllib and sqlite3's serialize.
NEWER_PYTHON_TESTS = ("test_guard.py", "test_guard_simple_api.py", "test_metrics.py",
                      "test_clients.py", "test_backup.py")


def floor_python() -> Path:
    """Python PYTHON_FLOOR on this machine: pyenv's, or one on the PATH that runs (pyenv's
    shims are on the PATH, and fail for a version not selected)."""
    candidates = [*sorted(Path("~/.pyenv/versions").expanduser().glob(
        f"{PYTHON_FLOOR}.*/bin/python{PYTHON_FLOOR}")), shutil.which(f"python{PYTHON_FLOOR}")]
    for candidate in filter(None, candidates):
        if subprocess.run([str(candidate), "-c", "pass"], capture_output=True).returncode == 0:
            return Path(candidate)
    raise AssertionError(f"no Python {PYTHON_FLOOR} here (python{PYTHON_FLOOR}, or pyenv's): "
                         f"the declared floor needs one to be tested")


def test_the_declared_python_floor_runs_ppc_and_the_unit_tests(installed, ppc_wheels, fab,
                                                                tmp_path):
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["requires-python"] == f">={PYTHON_FLOOR}"
    venv = tmp_path / "floor"
    subprocess.run([str(floor_python()), "-m", "venv", str(venv)], check=True)
    version = subprocess.run([str(venv / "bin" / "python"), "-c", "import sys; "
                              "print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True)
    assert version.stdout.strip() == PYTHON_FLOOR
    (wheel,) = ppc_wheels.glob("ppc_tasks-*.whl")
    added = subprocess.run([str(venv / "bin" / "pip"), "install", "-q",
                            "--disable-pip-version-check", str(wheel), "pytest"],
                           capture_output=True, text=True)
    assert added.returncode == 0, added.stdout + added.stderr
    listed = run(venv / "bin" / "ppc", "--list", cwd=tmp_path, fab=fab)
    assert listed.returncode == 0 and "  deploy " in listed.stdout, listed.stdout + listed.stderr
    helped = run(venv / "bin" / "ppc", "--help", "restore", cwd=tmp_path, fab=fab)
    assert "--key-file" in helped.stdout, helped.stdout + helped.stderr
    unit = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/unit", *(f"--ignore=tests/unit/{name}" for name in NEWER_PYTHON_TESTS)],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert unit.returncode == 0 and " passed" in unit.stdout, unit.stdout[-3000:] + unit.stderr[-2000:]


def test_ppc_lists_its_tasks_from_an_empty_directory(installed, fab, tmp_path):
    listed = run(installed / "ppc", "--list", cwd=tmp_path, fab=fab)
    assert listed.returncode == 0, listed.stderr
    for name in ("deploy", "status", "clients.configure", "balancer.deploy", "storage.migrate"):
        assert f"  {name} " in listed.stdout, listed.stdout
    helped = run(installed / "ppc", "--help", "deploy", cwd=tmp_path, fab=fab)
    assert "Turn the host into an HTTPS package index" in helped.stdout, helped.stdout
    assert "--skip-build" in helped.stdout
    version = run(installed / "ppc", "--version", cwd=tmp_path, fab=fab)
    assert version.stdout.startswith("ppc-tasks 0."), version.stdout


def test_ppc_deploys_from_anywhere_with_the_project_file_where_it_runs(installed, fab, deployed,
                                                                        tmp_path):
    # The operator's settings in fabric.yaml (JSON is YAML) of the directory ppc runs in,
    # once they trusted it.
    (tmp_path / "fabric.yaml").write_text(json.dumps({"ppc": deployed.settings()}))
    trusted = run(installed / "ppc", "trust", cwd=tmp_path, fab=fab)
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    # Code in that directory is never run: ppc reads data files only (a fabric.py of a
    # repository someone cloned would otherwise run with the operator's keys).
    marker = tmp_path / "fabric.py ran"
    (tmp_path / "fabric.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    target = ["-i", str(fab.key), "-H", deployed.host.target]
    first = run(installed / "ppc", *target, "deploy", cwd=tmp_path, fab=fab)
    assert first.returncode == 0, first.stdout + first.stderr
    # The installed copy builds the very same images as the clone: nothing to rebuild.
    assert steps(first.stdout)["image.server"] == "unchanged", first.stdout
    again = run(installed / "ppc", *target, "--dry", "deploy", cwd=tmp_path, fab=fab)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "dry run: 0 would change," in again.stdout, again.stdout
    from_clone = fab("deploy", host=deployed.host, settings=deployed.settings())
    assert "done: 0 changed," in from_clone.stdout, from_clone.stdout
    assert not marker.exists()


def test_a_directorys_fabric_yaml_is_read_only_once_trusted(installed, fab, deployed, tmp_path):
    """A cloned repository's fabric.yaml cannot run a command or move where ppc connects
    or sends passwords: only the ppc: settings of a file the operator trusted as it is."""
    marker = tmp_path / "gateway ran"
    status = ("-i", str(fab.key), "-H", deployed.host.target, "status")
    project = tmp_path / "fabric.yaml"
    for hostile in ({"gateway": f"sh -c 'id > {marker}; exec nc %h %p'"},
                    {"ssh_config_path": str(tmp_path / "ssh_config"), "runners": {}}):
        project.write_text(json.dumps({**hostile, "ppc": deployed.settings()}))
        for spelling in ("fabric.yaml", "fabric.yml", "fabric.json"):
            project.rename(tmp_path / spelling)
            project = tmp_path / spelling
            refused = run(installed / "ppc", *status, cwd=tmp_path, fab=fab)
            assert refused.returncode == 2, refused.stdout + refused.stderr
            assert refused.stderr.strip() == (f"Error: {project} is not trusted (new, or changed "
                                               "since it was trusted): read it, then run "
                                               "`ppc trust` in its directory"), refused.stderr
            not_trusted = run(installed / "ppc", "trust", cwd=tmp_path, fab=fab)
            assert not_trusted.returncode == 1, not_trusted.stdout
            assert "a directory's file may hold only ppc: settings" in not_trusted.stderr
            assert "Traceback" not in refused.stderr + not_trusted.stderr
        assert not marker.exists()
    # ppc: settings alone (here: another index_url, where clients.configure would send the
    # client password) wait for the operator's trust; then the file is read.
    project.write_text(json.dumps({"ppc": {**deployed.settings(),
                                           "index_url": "https://elsewhere.example/simple/"}}))
    assert run(installed / "ppc", *status, cwd=tmp_path, fab=fab).returncode == 2
    listed = run(installed / "ppc", "--list", cwd=tmp_path, fab=fab)
    assert listed.returncode == 0 and "  trust " in listed.stdout, listed.stderr
    project.write_text(json.dumps({"ppc": deployed.settings()}))
    trusted = run(installed / "ppc", "trust", cwd=tmp_path, fab=fab)
    assert trusted.returncode == 0 and "server_names" in trusted.stdout, trusted.stderr
    read = run(installed / "ppc", *status, cwd=tmp_path, fab=fab)
    assert read.returncode == 0 and "config       ok" in read.stdout, read.stdout + read.stderr
    # One byte more is another file.
    project.write_text(project.read_text() + "\n")
    assert run(installed / "ppc", *status, cwd=tmp_path, fab=fab).returncode == 2


def test_ppc_config_says_where_each_setting_comes_from(installed, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".fabric.yaml").write_text("ppc:\n  users: [ci]\n  release_window: 2h\n")
    (tmp_path / "fabric.yaml").write_text(json.dumps({"ppc": {"server_names": ["pypi.example.com"]}}))
    runtime = tmp_path / "run.json"
    runtime.write_text(json.dumps({"ppc": {"release_window": "30m"}}))
    environment = {**{k: v for k, v in os.environ.items() if not k.startswith("FABRIC_")},
                   "HOME": str(home), "FABRIC_PPC_FALLBACK": "none"}

    def ppc(*args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(installed / "ppc"), *args], cwd=tmp_path, capture_output=True,
                              text=True, env={**environment, **extra}, timeout=60)

    assert ppc("trust").returncode == 0
    shown = ppc("-f", str(runtime), "config")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    lines = {line.split()[0]: line for line in shown.stdout.splitlines()}
    assert lines["server_names"].endswith(f"pypi.example.com  ({tmp_path}/fabric.yaml)")
    assert lines["users"].endswith("ci  (~/.fabric.yaml)")
    assert lines["release_window"].endswith(f"30m  ({runtime})")  # -f over ~/.fabric.yaml
    assert lines["fallback"].endswith("none  ($FABRIC_PPC_FALLBACK)")
    assert lines["admins"].endswith("admin  (default)")
    assert shown.stdout.rstrip().endswith("valid together")
    wrong = ppc("config", FABRIC_PPC_FALLBACK="sometimes")
    assert wrong.returncode == 2 and wrong.stderr.strip().startswith(
        "Error: ppc.fallback: must be one of"), wrong.stderr


def test_a_users_own_fabfile_adds_the_collections(installed, fab, deployed, tmp_path):
    (tmp_path / "fabfile.py").write_text(USER_FABFILE)
    (tmp_path / "fabric.yaml").write_text(json.dumps({"ppc": deployed.settings()}))
    listed = run(installed / "fab", "--list", cwd=tmp_path, fab=fab)
    assert listed.returncode == 0, listed.stderr
    assert "  hello " in listed.stdout and "  ppc.deploy " in listed.stdout, listed.stdout
    assert "hello from my own fabfile" in run(installed / "fab", "hello", cwd=tmp_path,
                                               fab=fab).stdout
    status = run(installed / "fab", "-i", str(fab.key), "-H", deployed.host.target,
                 "ppc.status", cwd=tmp_path, fab=fab)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "config       ok" in status.stdout, status.stdout


def test_a_developer_sets_up_their_own_laptop_from_a_kit(installed, ppc_wheels, fab, deployed,
                                                          start_host, make_dists, tmp_path):
    """No SSH to the laptop, no state folder on it: the operator exports a kit, the
    developer installs ppc and runs clients.setup, then twine, pip and uv work with
    certificate verification on."""
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"ppc": deployed.settings()}))
    kit = tmp_path / "dev-kit.json"
    exported = run(installed / "ppc", "-f", str(settings), "clients.export", "--kit", str(kit),
                   cwd=tmp_path, fab=fab)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    assert "ppc clients.setup --kit dev-kit.json" in exported.stdout
    assert oct(kit.stat().st_mode & 0o777) == "0o600"
    held = kit.read_text()
    assert password_of(fab.home, "dev") in held
    assert password_of(fab.home, "admin") not in held and "PRIVATE KEY" not in held

    # ppc on the laptop, installed by its user from the wheels (the laptop has no PyPI).
    laptop = start_host("laptop", kind="client", add_hosts={SERVER_NAME: deployed.host.address})
    laptop.exec("useradd -m -s /bin/sh dev")
    laptop.copy_in([*ppc_wheels.glob("*.whl"), kit], "/tmp/handed")
    laptop.copy_in(make_dists("ppc-from-a-kit", "1.0.0"), "/tmp/dist")
    laptop.exec("chown -R dev: /tmp/handed /tmp/dist && chmod 600 /tmp/handed/dev-kit.json")

    def as_dev(command: str) -> subprocess.CompletedProcess:
        done = laptop.exec(f"cd && {command}", user="dev", check=False)
        return subprocess.CompletedProcess(command, done.returncode, done.stdout.decode(),
                                           done.stderr.decode())

    installed_there = as_dev("python3 -m venv ~/ppc && ~/ppc/bin/pip install -q --no-index "
                             "--find-links /tmp/handed ppc-tasks")
    assert installed_there.returncode == 0, installed_there.stdout + installed_there.stderr
    setup = as_dev("~/ppc/bin/ppc clients.setup --kit /tmp/handed/dev-kit.json")
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert {"clients.ca-bundle", "clients.pypirc", "clients.pip", "clients.uv"} <= {
        step for step, state in steps(setup.stdout).items() if state == "changed"}, setup.stdout
    again = as_dev("~/ppc/bin/ppc clients.setup --kit /tmp/handed/dev-kit.json")
    assert "done: 0 changed," in again.stdout, again.stdout + again.stderr

    upload = as_dev("twine upload --disable-progress-bar -r internal /tmp/dist/*")
    assert upload.returncode == 0, upload.stdout + upload.stderr
    install = as_dev("python3 -m venv ~/venv && ~/venv/bin/pip install --no-cache-dir "
                     "ppc-from-a-kit")
    assert "Successfully installed ppc-from-a-kit-1.0.0" in install.stdout, \
        install.stdout + install.stderr
    bundle = f"/home/dev/.config/ppc-tasks/{SERVER_NAME}-ca-bundle.pem"
    assert f"SSL_CERT_FILE={bundle}" in setup.stdout
    uv = as_dev(f"uv venv -q ~/uv-venv && . ~/uv-venv/bin/activate "
                f"&& SSL_CERT_FILE={bundle} uv pip install --no-cache ppc-from-a-kit")
    assert uv.returncode == 0 and "+ ppc-from-a-kit==1.0.0" in uv.stderr, uv.stdout + uv.stderr
    # Nothing of the laptop was touched as root: it has no sudo at all.
    assert "sudo" not in laptop.out("ls /etc/sudoers.d/ 2>/dev/null || true")
