"""The command line as a new user types it in the repo root."""

import subprocess

from .conftest import FAB, REPO


def test_fab_list_in_the_repo_root_shows_every_collection(operator_home):
    result = subprocess.run([str(FAB), "--list"], cwd=REPO, capture_output=True, text=True,
                            env={"PATH": str(FAB.parent) + ":/usr/bin:/bin", "HOME": str(operator_home)})
    assert result.returncode == 0, result.stderr
    listed = [line.split()[0] for line in result.stdout.splitlines()[2:] if line.strip()
              and not line.startswith("    ")]
    for name in ("deploy", "image.build", "data.create", "server.deploy", "certs.install",
                 "certs.trust", "nginx.configure", "clients.configure", "clients.unconfigure",
                 "packages.upload"):
        assert name in listed, result.stdout
