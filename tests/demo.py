"""The end-to-end demo: a throwaway bare host becomes an HTTPS package index.

Run through `tests/demo` (which installs what is missing first). Everything it makes
is local: two containers (a server host with sshd + Docker, a developer machine with
sshd, pip, twine, uv, Poetry and PDM, set up with clients.configure),
and the folder .demo/ in the repo (SSH key, settings, the index's secrets and CA).
`tests/demo --down` removes the containers.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from tests.integration import harness

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / ".demo"
SERVER, CLIENT = "ppc-demo-server", "ppc-demo-client"
INDEX_NAME = "pypi.demo"
FAB = Path(sys.executable).parent / "fab"


def say(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def fab(*args: str) -> None:
    """Run the real fab command line, showing it and its output as an operator sees them.
    Its SSH config (-S) keeps the demo hosts' keys in .demo/known_hosts, not the user's."""
    argv = [str(FAB), "-f", str(WORK / "fabric.json"), "-S", str(WORK / "ssh_config"),
            "-i", str(WORK / "id_ed25519"), *args]
    print("$ " + shlex.join(["fab", *argv[1:]]).replace(str(REPO) + "/", ""), flush=True)
    subprocess.run(argv, cwd=REPO, check=True)


def down() -> None:
    for name in (SERVER, CLIENT):
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True)
    print(f"removed the demo containers; {WORK} keeps the demo's key, CA and secrets "
          f"(delete it to start from scratch)")


def main() -> None:
    if sys.argv[1:] == ["--down"]:
        down()
        return

    say("preparing the demo images (cached after the first run)")
    images = {kind: harness.ensure_built_image(kind) for kind in ("host", "client")}
    WORK.mkdir(mode=0o700, exist_ok=True)
    key = WORK / "id_ed25519"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    # The machine's CA bundle lets the image build's pip through a TLS-intercepting proxy.
    (WORK / "ssh_config").write_text(f"Host *\n    UserKnownHostsFile {WORK / 'known_hosts'}\n")
    (WORK / "fabric.json").write_text(json.dumps({"ppc": {
        "server_names": [INDEX_NAME], "users": ["developer"], "state_dir": str(WORK / "state"),
        "build_ca_bundle": "/etc/ssl/certs/ca-certificates.crt"}}, indent=2))

    say(f"starting a bare host {SERVER}: sshd and Docker, nothing else")
    public_key = key.with_suffix(".pub").read_text().strip()
    server = harness.start_host(images["host"], SERVER, public_key, key=key,
                                known_hosts=WORK / "known_hosts")
    harness.load_image(server, harness.BASE_IMAGE)

    say("deploying the index to it")
    fab("-H", server.target, "deploy")
    say("deploying again: nothing to do")
    fab("-H", server.target, "deploy")

    say(f"starting a developer machine {CLIENT} that resolves {INDEX_NAME} to the server")
    client = harness.start_host(images["client"], CLIENT, public_key, server=False,
                                add_hosts={INDEX_NAME: server.address}, key=key,
                                known_hosts=WORK / "known_hosts")
    fab("-H", client.target, "clients.configure")

    say("on the client: twine upload -r internal, over HTTPS, no other flags")
    dists = harness.build_sample_dists("ppc-demo-sample", "1.0.0", WORK / "sample")
    client.copy_in(dists, "/tmp/dist")
    show(client.exec("twine upload --disable-progress-bar -r internal /tmp/dist/*"))

    say("on the client: pip install in a fresh venv, certificate verification on, no flags")
    show(client.exec("python3 -m venv /tmp/venv && /tmp/venv/bin/pip install --no-cache-dir "
                     "ppc-demo-sample && /tmp/venv/bin/python -c 'import ppc_demo_sample; "
                     "print(\"imported ppc_demo_sample\", ppc_demo_sample.VALUE)'"))

    say("on the client: the same with uv, which clients.configure set up too")
    show(client.exec("uv venv -q /tmp/uv-venv && . /tmp/uv-venv/bin/activate "
                     "&& uv pip install --no-cache ppc-demo-sample 2>&1"))

    say("done")
    print(f"""
  index            https://{INDEX_NAME}/simple/ (from {CLIENT}, or any host resolving {INDEX_NAME} to {server.address})
  passwords        {WORK / 'state' / INDEX_NAME / 'secrets.json'} (admin, developer)
  CA certificate   {WORK / 'state' / INDEX_NAME / 'ca.crt'}
  server shell     ssh -i {key} -p {server.port} root@127.0.0.1
  client shell     docker exec -it {CLIENT} bash
  tear down        tests/demo --down
""")


def show(result: subprocess.CompletedProcess) -> None:
    print(result.stdout.decode().rstrip())


if __name__ == "__main__":
    main()
