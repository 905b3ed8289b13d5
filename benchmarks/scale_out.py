"""What one index host serves against two behind a balancer, side by side in one run.

Starts Swift's S3 API and PostgreSQL (the test engines, tests/integration/images), deploys
two index hosts on them with one `fab -H idx1,idx2 deploy` and a balancer host with
`balancer.deploy` (Docker-in-Docker hosts, all on this machine), uploads 20 small
packages, then measures the same load against one index host directly and against the
balancer in front of both:

- authenticated /simple/<name>/ at concurrency 10 and 50 (wrk, through TLS);
- 100 concurrent `pip download --no-deps` of the 20 packages (files come from the
  bucket, through signed URLs): failures, wall time.

Everything shares this machine's cores, so the second host adds no CPU: the figures
show what the balancer costs and that nothing fails, not what a second machine adds.
Run it through `benchmarks/run --scale-out`; it uses the test engines' container names
(ppc-it-*), so not while the tests run.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import tempfile
from pathlib import Path

from tests.integration import engines, harness

from .serve import (
    FAB,
    NAME,
    PACKAGES,
    REPO,
    pip_clients,
    say,
    settle,
    upload_packages,
    wrk,
)

CONCURRENCY = (10, 50)


def deploy_cluster(index_hosts, balancer, found: engines.Engines, work: Path) -> Path:
    key = work / "id_ed25519"
    settings = work / "fabric.json"
    state = work / "state"
    settings.write_text(json.dumps({"ppc": {
        # The balancer's address is a server name too: pip reaches it by address.
        "server_names": [NAME, balancer.address],
        "index_hosts": [host.address for host in index_hosts], "users": ["dev"],
        "state_dir": str(state), "build_ca_bundle": "/etc/ssl/certs/ca-certificates.crt",
        "storage": "s3", "s3_bucket": "bench-packages", "s3_addressing_style": "path",
        "s3_endpoint_url": f"http://{found.s3}:8080", "s3_access_key_id": "test:tester",
        "cache_url": f"postgresql://pypi@{found.postgres}/pypi"}}))
    environment = {**os.environ, "HOME": str(work),
                   "PPC_S3_SECRET_ACCESS_KEY": engines.S3_SECRET,
                   "PPC_CACHE_PASSWORD": engines.PG_PASSWORD}
    for task, targets in (("deploy", ",".join(host.target for host in index_hosts)),
                          ("balancer.deploy", balancer.target)):
        result = subprocess.run([str(FAB), "-f", str(settings), "-i", str(key), "-H", targets,
                                 task], cwd=REPO, capture_output=True, text=True, env=environment,
                                check=False)
        if result.returncode != 0:
            raise SystemExit(f"{task} failed:\n{result.stdout}{result.stderr}")
    return state / NAME


def measure(target, state: Path, work: Path, password: str) -> dict:
    authorization = "Basic " + base64.b64encode(f"dev:{password}".encode()).decode()
    rows = []
    for concurrency in CONCURRENCY:
        say(f"wrk /simple/ on {target.name} at concurrency {concurrency}")
        settle(target, state)
        rows.append({"concurrency": concurrency,
                     **wrk(target, f"/simple/{PACKAGES[0]}/", concurrency, authorization)})
    say(f"100 concurrent pip downloads through {target.name}")
    settle(target, state)
    return {"requests": rows, "pip_clients": pip_clients(target, state, work, password)}


def table(results: dict) -> str:
    lines = [("authenticated /simple/<name>/ through TLS (wrk, 5 s each), and 100 concurrent "
              f"pip downloads of {len(PACKAGES)} packages"),
             f"{'target':<34}{'conc':>5}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'errors':>8}"]
    for label, measured in results.items():
        for row in measured["requests"]:
            lines.append(f"{label:<34}{row['concurrency']:>5}{row['rps']:>9}{row['p50_ms']:>9}"
                         f"{row['p95_ms']:>9}{row['errors'] + row['non_2xx']:>8}")
        pip = measured["pip_clients"]
        lines.append(f"{label:<34} pip: {pip['failed']} of {pip['clients']} failed, "
                     f"{pip['seconds']} s")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results here too")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ppc-bench-") as directory:
        work = Path(directory)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        str(work / "id_ed25519")], check=True)
        key = (work / "id_ed25519.pub").read_text().strip()
        say("starting the engines and three hosts")
        image = harness.ensure_built_image("host")
        found = engines.start({kind: f"ppc-bench-{kind}" for kind in engines.KINDS})
        hosts = [harness.start_host(image, f"ppc-bench-{name}", key)
                 for name in ("idx1", "idx2", "lb")]
        try:
            for host in hosts[:2]:
                harness.load_image(host, harness.BASE_IMAGE)
            say("deploying two index hosts and the balancer")
            state = deploy_cluster(hosts[:2], hosts[2], found, work)
            say(f"uploading {len(PACKAGES)} packages through the balancer")
            upload_packages(hosts[2], state, work)
            password = json.loads((state / "secrets.json").read_text())["passwords"]["dev"]
            results = {"one index host (S3 + PostgreSQL)": measure(hosts[0], state, work, password),
                       "balancer + two index hosts": measure(hosts[2], state, work, password)}
        finally:
            for host in hosts:
                host.remove()
            engines.remove(found)
    print(table(results))
    if options.json:
        options.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
