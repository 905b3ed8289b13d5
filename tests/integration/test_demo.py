"""tests/demo, the README's "Try it on one machine", works end to end; --down removes it."""

import subprocess
import sys

from .conftest import REPO


def test_demo_runs_end_to_end_and_tears_down(test_images):
    demo = subprocess.run([sys.executable, "-m", "tests.demo"], cwd=REPO, capture_output=True,
                          text=True, timeout=900)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "done: 0 changed," in demo.stdout  # the second deploy
    assert "Successfully installed ppc-demo-sample-1.0.0" in demo.stdout
    assert "imported ppc_demo_sample 42" in demo.stdout
    assert "+ ppc-demo-sample==1.0.0" in demo.stdout  # uv, configured with no flags

    subprocess.run([sys.executable, "-m", "tests.demo", "--down"], cwd=REPO, check=True,
                   capture_output=True)
    left = subprocess.run(["docker", "ps", "-aq", "--filter", "name=ppc-demo-"],
                          capture_output=True, text=True)
    assert left.stdout.strip() == ""
