"""How much a deployed index serves, measured side by side in one run.

Deploys to a throwaway Docker-in-Docker host with the real `fab` (this checkout, or an
earlier revision with --ref, deployed by its own code), uploads 20 small packages, then
measures through nginx with TLS, as clients see the index:

- authenticated /simple/<name>/ requests against /health (the floor of the stack, no
  credentials) at concurrency 1, 10, 50 and 100 (wrk): requests per second,
  p50/p95/p99 latency, each run after the index has worked off the one before;
- 100 concurrent `pip download --no-deps` of the 20 packages: failures, wall time;
- the same 20 downloads through nginx+TLS against direct to 127.0.0.1:3031, on the host;
- a wrong-password flood: the plain account's requests, one after another, alone and
  while 64 clients send it a new wrong password each (wrk): median, failures;
- a deploy that changes nothing against its floor: the same probe as a shell script
  over one plain ssh connection (this checkout only; --only-deploy measures just this);
- with --only-logins, what a login and a trusted publishing mint cost; with
  --only-metrics, what a scrape of /metrics costs and whether it slows the simple API.

Prints a table and writes JSON (--json FILE). Run it through benchmarks/run.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from tests.integration import harness, web

REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
FAB = Path(sys.executable).parent / "fab"
PIP = Path(sys.executable).parent / "pip"
NAME = "bench.test"
PACKAGES = [f"bench-pkg-{number:02}" for number in range(1, 21)]
CONCURRENCY = (1, 10, 50, 100)
PIP_CLIENTS = 100
FLOOD_CLIENTS = 64


def say(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def checkout(ref: str | None, work: Path) -> Path:
    """The tree to deploy with: this checkout, or `ref` from git history."""
    if ref is None:
        return REPO
    tree = work / "tree"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], capture_output=True,
                             check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tree)
    return tree


def deploy(tree: Path, host: harness.TestHost, work: Path, **extra) -> Path:
    key = work / "id_ed25519"
    settings = work / "fabric.json"
    state = work / "state"
    settings.write_text(json.dumps({"ppc": {
        "server_names": [NAME, host.address], "users": ["dev"], "state_dir": str(state),
        "build_ca_bundle": "/etc/ssl/certs/ca-certificates.crt", **extra}}))
    result = subprocess.run([str(FAB), "-f", str(settings), "-i", str(key), "-H", host.target,
                             "deploy"], cwd=tree, capture_output=True, text=True,
                            env={**os.environ, "HOME": str(work)})
    if result.returncode != 0:
        raise SystemExit(f"deploy failed:\n{result.stdout}{result.stderr}")
    return state / NAME


def upload(host: harness.TestHost, state: Path, password: str, wheel: Path, name: str,
           version: str) -> None:
    """One file, through nginx as twine sends it, as the admin."""
    body, headers = web.upload_form({":action": "file_upload", "name": name, "version": version},
                                    wheel.name, wheel.read_bytes())
    response = web.request(host.address, "/simple/", ca=state / "ca.crt", sni=NAME, host=NAME,
                           method="POST", body=body, headers=headers, auth=("admin", password),
                           timeout=60)
    if response.status != 200:
        raise SystemExit(f"uploading {wheel.name} to {host.name} failed: {response.status}")


def upload_packages(host: harness.TestHost, state: Path, work: Path) -> list[list[str]]:
    password = json.loads((state / "secrets.json").read_text())["passwords"]["admin"]
    uploaded = []
    for name in PACKAGES:
        wheel = harness.build_sample_dists(name, "1.0", work / "dists" / name)[1]
        upload(host, state, password, wheel, name, "1.0")
        uploaded.append([name, wheel.name])
    return uploaded


def settle(host: harness.TestHost, state: Path) -> None:
    """Wait until the index has worked off what the last run queued (at most 5 minutes):
    a slow index would otherwise be measured on the backlog of the run before."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            web.request(host.address, "/health", ca=state / "ca.crt", sni=NAME, host=NAME)
        except OSError:
            continue
        if time.monotonic() - started < 0.5:
            return


def wrk(host: harness.TestHost, path: str, concurrency: int, authorization: str | None) -> dict:
    """wrk through nginx+TLS; /health goes without credentials: the floor of the stack."""
    credentials = ["-H", f"Authorization: {authorization}"] if authorization else []
    argv = ["wrk", "--latency", "-t", str(min(concurrency, 2)), "-c", str(concurrency),
            "-d", "5s", "--timeout", "30s", "-s", str(HERE / "wrk-report.lua"),
            "-H", f"Host: {NAME}", *credentials, f"https://{host.address}{path}"]
    output = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    report = json.loads(output.strip().splitlines()[-1])
    report["rps"] = round(report["requests"] / report["seconds"], 1)
    return report


def pip_clients(host: harness.TestHost, state: Path, work: Path, password: str) -> dict:
    """100 pip processes at once, each downloading all 20 packages."""
    # This index and its CA only: requests lets REQUESTS_CA_BUNDLE override --cert.
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("PIP_") and key not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    environment.update(PIP_CONFIG_FILE=os.devnull,
                       PIP_INDEX_URL=f"https://dev:{password}@{host.address}/simple/")

    def one(number: int) -> bool:
        result = subprocess.run(
            [str(PIP), "download", "--no-deps", "--no-cache-dir", "--disable-pip-version-check",
             "--timeout", "30", "--retries", "1", "-q", "-d", str(work / "downloads" / str(number)), "--cert", str(state / "ca.crt"),
             *PACKAGES], capture_output=True, env=environment)
        return result.returncode == 0

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(PIP_CLIENTS) as pool:
        outcomes = list(pool.map(one, range(PIP_CLIENTS)))
    return {"clients": PIP_CLIENTS, "failed": outcomes.count(False),
            "seconds": round(time.monotonic() - started, 1)}


def front_door(host: harness.TestHost, packages: list[list[str]], password: str) -> dict:
    result = host.exec("python3 -", input=(HERE / "front_door.py").read_bytes(), env={
        "BENCH_PACKAGES": json.dumps(packages), "BENCH_CREDENTIALS": f"dev:{password}",
        "BENCH_HOST": NAME})
    timings = json.loads(result.stdout)
    both = timings["nginx_tls"] and timings["direct"]
    timings["ratio"] = round(timings["nginx_tls"] / timings["direct"], 2) if both else None
    return timings


def plain_account(host: harness.TestHost, state: Path, password: str, seconds: float) -> dict:
    """The plain account's requests through nginx+TLS, one after another on one
    connection, for `seconds`: median and p95 in ms, and how many failed."""
    import http.client
    import ssl

    context = ssl.create_default_context(cafile=str(state / "ca.crt"))
    context.check_hostname = False
    headers = {"Host": NAME, **basic("dev", password)}
    timings, failed = [], 0
    connection = http.client.HTTPSConnection(host.address, 443, context=context, timeout=30)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            connection.request("GET", f"/simple/{PACKAGES[0]}/", headers=headers)
            response = connection.getresponse()
            response.read()
            failed += response.status != 200
        except OSError:
            failed += 1
            connection.close()
            connection = http.client.HTTPSConnection(host.address, 443, context=context,
                                                     timeout=30)
        timings.append((time.perf_counter() - started) * 1000)
    connection.close()
    p50, p95 = percentiles(timings)
    return {"requests": len(timings), "failed": failed, "p50_ms": p50, "p95_ms": p95}


def percentiles(timings: list[float]) -> tuple[float, float]:
    """The median and the 95th percentile, in ms, rounded as the tables show them."""
    ordered = sorted(timings)
    return round(statistics.median(ordered), 2), round(ordered[int(len(ordered) * 0.95)], 2)


def kept_connection(host: harness.TestHost, state: Path, requests, stop=None,
                    pause: float = 0.0) -> list[float]:
    """The ms each request takes, one after another on one kept connection through
    nginx+TLS, as the index's name; requests: (method, path, headers, body), each must
    answer 200. With `stop`, until it is set, `pause` seconds between requests."""
    import http.client
    import ssl

    context = ssl.create_default_context(cafile=str(state / "ca.crt"))
    context.check_hostname = False
    connection = http.client.HTTPSConnection(host.address, 443, context=context, timeout=60)
    timings = []
    for method, path, headers, body in requests:
        if stop is not None and stop.is_set():
            break
        started = time.perf_counter()
        connection.request(method, path, body=body, headers={"Host": NAME, **headers})
        response = connection.getresponse()
        answer = response.read()
        if response.status != 200:
            raise SystemExit(f"{method} {path} answered {response.status}: {answer[:200]!r}")
        timings.append((time.perf_counter() - started) * 1000)
        if stop is not None:
            stop.wait(pause)
    connection.close()
    return timings


def basic(user: str, secret: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


def login_costs(host: harness.TestHost, state: Path, work: Path, tree: Path,
                password: str) -> dict:
    """What a login costs the request that carries it, on one kept connection through
    nginx+TLS: an account's password the first time this server sees it (one slow hash)
    and later (remembered), and an API token's first and later (one SHA-256 each)."""
    made = subprocess.run([str(FAB), "-f", str(work / "fabric.json"), "-i",
                           str(work / "id_ed25519"), "-H", host.target, "tokens.create",
                           "--project", PACKAGES[0]], cwd=tree, capture_output=True, text=True,
                          env={**os.environ, "HOME": str(work)})
    token = re.search(r"user __token__\): (\S+)", made.stdout)
    if token is None:
        raise SystemExit(f"tokens.create failed:\n{made.stdout}{made.stderr}")

    def timed(user: str, secret: str) -> tuple[float, float]:
        """(the first request's ms, the median of the next 30)."""
        timings = kept_connection(host, state, [("GET", f"/simple/{PACKAGES[0]}/",
                                                 basic(user, secret), None)] * 31)
        return round(timings[0], 1), round(statistics.median(timings[1:]), 2)

    password_first, password_later = timed("dev", password)
    token_first, token_later = timed("__token__", token[1])
    return {"password_first_ms": password_first, "password_later_ms": password_later,
            "token_first_ms": token_first, "token_later_ms": token_later}


def mint_cost(host: harness.TestHost, state: Path, work: Path, tree: Path) -> dict:
    """What trusting a CI job costs: the index redeployed with a GitHub publisher (its
    keys pinned), then one OIDC token after another traded for an API token, on one kept
    connection through nginx+TLS (the JWTs are made beforehand: only the index is timed)."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    (work / "jwks.json").write_text(json.dumps({"keys": [{**public, "kid": "bench"}]}))
    deploy(tree, host, work, trusted_publishers=[{
        "issuer": "github", "repository": "acme/bench", "workflow": "release.yml",
        "projects": [PACKAGES[0]], "jwks_file": str(work / "jwks.json")}])
    now = int(time.time())
    claims = {"iss": "https://token.actions.githubusercontent.com", "aud": NAME,
              "iat": now, "nbf": now, "exp": now + 600, "repository": "acme/bench",
              "job_workflow_ref": "acme/bench/.github/workflows/release.yml@refs/heads/main"}
    bodies = [json.dumps({"token": jwt.encode({**claims, "jti": f"bench-{number}"}, key,
                                              algorithm="RS256", headers={"kid": "bench"})})
              for number in range(31)]
    timings = kept_connection(host, state, [
        ("POST", "/_/oidc/mint-token", {"Content-Type": "application/json"}, body)
        for body in bodies])
    return {"mint_first_ms": round(timings[0], 1),
            "mint_later_ms": round(statistics.median(timings[1:]), 2)}


SEEDED_FILES = 10_000
SEED = """
import sqlite3, sys
database = sqlite3.connect("/var/lib/pypicloud/db.sqlite")
with database:
    database.executemany(
        "INSERT OR IGNORE INTO ppc_files (filename, name, size) VALUES (?, ?, ?)",
        [(f"seeded_{number // 10:04}-1.0.{number % 10}-py3-none-any.whl",
          f"seeded-{number // 10:04}", 4096 + number) for number in range(int(sys.argv[1]))])
"""


def metrics_cost(host: harness.TestHost, state: Path) -> dict:
    """What /metrics costs: the index's registry given SEEDED_FILES more file records (in
    its database: what a scrape counts), then 100 scrapes one after another on a kept
    connection (the credential as a bearer token); and 300 /simple/<name>/ requests alone
    and while a scraper asks every 100 ms (Prometheus asks every 15 s or so)."""
    import itertools
    import threading

    host.exec(f"docker exec -i -u 10001 pypicloud /opt/pypicloud/bin/python - {SEEDED_FILES}",
              input=SEED.encode())
    secrets = json.loads((state / "secrets.json").read_text())

    def timed(path: str, headers: dict, count: int) -> list[float]:
        return kept_connection(host, state, [("GET", path, headers, None)] * count)

    scrape = {"Authorization": f"Bearer {secrets['metrics_token']}"}
    scrapes = timed("/metrics", scrape, 101)[1:]
    page = basic("dev", secrets["passwords"]["dev"])
    alone = timed(f"/simple/{PACKAGES[0]}/", page, 301)[1:]
    stop = threading.Event()
    scraper = threading.Thread(target=kept_connection, args=(
        host, state, itertools.repeat(("GET", "/metrics", scrape, None)), stop, 0.1))
    scraper.start()
    try:
        scraped = timed(f"/simple/{PACKAGES[0]}/", page, 301)[1:]
    finally:
        stop.set()
        scraper.join()

    cost = {}
    for label, timings in (("scrape", scrapes), ("simple_alone", alone),
                           ("simple_scraped", scraped)):
        cost[f"{label}_p50_ms"], cost[f"{label}_p95_ms"] = percentiles(timings)
    return cost


def metrics_line(cost: dict) -> str:
    return (f"/metrics of {SEEDED_FILES:,} more files (ms): p50 {cost['scrape_p50_ms']}, "
            f"p95 {cost['scrape_p95_ms']}; /simple/<name>/ alone p50 "
            f"{cost['simple_alone_p50_ms']}, p95 {cost['simple_alone_p95_ms']}; while scraped "
            f"every 100 ms p50 {cost['simple_scraped_p50_ms']}, p95 "
            f"{cost['simple_scraped_p95_ms']}")


def logins_line(logins: dict) -> str:
    return (f"a login, on a kept connection (ms): password first {logins['password_first_ms']}, "
            f"later {logins['password_later_ms']}; API token first {logins['token_first_ms']}, "
            f"later {logins['token_later_ms']}; a trusted publishing mint first "
            f"{logins['mint_first_ms']}, later {logins['mint_later_ms']}")


def wrong_password_flood(host: harness.TestHost, state: Path, password: str, work: Path) -> dict:
    """The plain account alone, then while FLOOD_CLIENTS clients guess its password."""
    idle = plain_account(host, state, password, 10)
    guesses = work / "guesses.txt"
    guesses.write_text("".join("Basic " + base64.b64encode(f"dev:guess-{number}".encode()).decode()
                               + "\n" for number in range(5000)))
    flood = subprocess.Popen(
        ["wrk", "-t", "2", "-c", str(FLOOD_CLIENTS), "-d", "25s", "--timeout", "30s",
         "-s", str(HERE / "wrk-wrong-passwords.lua"), "-H", f"Host: {NAME}",
         f"https://{host.address}/simple/", "--", str(guesses)],
        stdout=subprocess.PIPE, text=True)
    time.sleep(5)  # the flood under way
    under = plain_account(host, state, password, 15)
    output, _ = flood.communicate()
    sent = json.loads(output.strip().splitlines()[-1])
    return {"clients": FLOOD_CLIENTS, "idle": idle, "flood": under,
            "flood_rps": round(sent["requests"] / sent["seconds"], 1),
            "flood_refused": sent["non_2xx"],
            "ratio": round(under["p50_ms"] / idle["p50_ms"], 2)}


def milliseconds(timings: dict, label: str) -> str:
    if timings[label] is None:
        return f"failed ({timings[label + '_error']})"
    return f"{timings[label] * 1000:.0f} ms"


def warm_deploy(tree: Path, host: harness.TestHost, work: Path, runs: int = 11) -> dict:
    """A deploy that changes nothing, against its floor: the same probe (files/sh/facts.sh
    with the deploy's queries) as a shell script over one plain ssh connection."""
    from ppc_tasks import deploy as deploy_task
    from ppc_tasks import index
    from ppc_tasks.settings import Settings

    settings = index.for_servers(Settings.from_config(
        json.loads((work / "fabric.json").read_text())["ppc"], host=None))
    from ppc_tasks.facts import probe_args

    queries = probe_args(list(dict.fromkeys(deploy_task.queries(settings))))
    fab_argv = [str(FAB), "-f", str(work / "fabric.json"), "-i", str(work / "id_ed25519"),
                "-H", host.target, "deploy"]
    ssh_argv = ["ssh", "-q", "-i", str(work / "id_ed25519"), "-p", str(host.port),
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "root@127.0.0.1", "sh", "-s", "--", *queries]
    script = (REPO / "files" / "sh" / "facts.sh").read_bytes()
    # As installed (pip writes bytecode): PYTHONDONTWRITEBYTECODE would otherwise have
    # every run compile ppc_tasks from source.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "ppc_tasks"),
                    str(tree / "tasks.py"), str(tree / "fabfile.py")], check=True)
    fab_times, ssh_times, trips = [], [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = subprocess.run(fab_argv, cwd=tree, capture_output=True, text=True,
                                env={**os.environ, "HOME": str(work)})
        fab_times.append(time.perf_counter() - started)
        if "done: 0 changed," not in result.stdout:
            raise SystemExit(f"the warm deploy changed something:\n{result.stdout}{result.stderr}")
        found = re.search(r"\((\d+) SSH round trips?\)", result.stdout)
        trips = int(found.group(1)) if found else None
        started = time.perf_counter()
        subprocess.run(ssh_argv, input=script, capture_output=True, check=True)
        ssh_times.append(time.perf_counter() - started)
    fab_median, ssh_median = statistics.median(fab_times), statistics.median(ssh_times)
    return {"runs": runs, "fab_deploy_s": round(fab_median, 3), "bash_over_ssh_s": round(ssh_median, 3),
            "ratio": round(fab_median / ssh_median, 2), "round_trips": trips}


def table(results: dict, deploy_only: bool = False, flood_only: bool = False) -> str:
    if deploy_only:
        return warm_line(results["warm_deploy"])
    if flood_only:
        return f"{results['revision']}: {flood_line(results['wrong_password_flood'])}"
    lines = [f"revision: {results['revision']}",
             "",
             "requests through nginx+TLS (wrk, 5 s each)",
             f"{'path':<22}{'conc':>5}{'req/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
             f"{'errors':>8}"]
    for row in results["requests"]:
        lines.append(f"{row['path']:<22}{row['concurrency']:>5}{row['rps']:>10}{row['p50_ms']:>9}"
                     f"{row['p95_ms']:>9}{row['p99_ms']:>9}{row['errors'] + row['non_2xx']:>8}")
    ratio = results["authenticated_vs_health_at_1"]
    pip = results["pip_clients"]
    door = results["front_door"]
    lines += ["",
              f"authenticated /simple/ vs /health at concurrency 1 (p50): {ratio}x",
              f"{pip['clients']} concurrent pip downloads of {len(PACKAGES)} packages: "
              f"{pip['failed']} failed, {pip['seconds']} s",
              f"{len(PACKAGES)} downloads (page + file) on the host: nginx+TLS "
              f"{milliseconds(door, 'nginx_tls')}, direct {milliseconds(door, 'direct')}, "
              f"ratio {door['ratio']}x"]
    flood = results.get("wrong_password_flood")
    if flood:
        lines.append(flood_line(flood))
    warm = results.get("warm_deploy")
    if warm:
        lines.append(warm_line(warm))
    return "\n".join(lines)


def flood_line(flood: dict) -> str:
    return (f"the plain account while {flood['clients']} clients guess its password "
            f"({flood['flood_rps']} req/s, {flood['flood_refused']} refused): p50 "
            f"{flood['flood']['p50_ms']} ms against {flood['idle']['p50_ms']} ms alone "
            f"({flood['ratio']}x), p95 {flood['flood']['p95_ms']} ms, "
            f"{flood['flood']['failed']} of {flood['flood']['requests']} failed")


def warm_line(warm: dict) -> str:
    trips = warm["round_trips"]
    return (f"warm deploy (median of {warm['runs']}): fab {warm['fab_deploy_s']} s, the same "
            f"probe as a shell script over ssh {warm['bash_over_ssh_s']} s, ratio "
            f"{warm['ratio']}x, {trips} SSH round trip{'' if trips == 1 else 's'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", help="git revision to deploy (default: this checkout)")
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--keep", action="store_true", help="keep the host container")
    parser.add_argument("--only-deploy", action="store_true",
                        help="measure the warm deploy only (not the serving)")
    parser.add_argument("--only-flood", action="store_true",
                        help="measure the wrong-password flood only")
    parser.add_argument("--only-logins", action="store_true",
                        help="measure what a password and an API token login cost only")
    parser.add_argument("--only-metrics", action="store_true",
                        help="measure what /metrics costs, and whether it slows the simple API")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ppc-bench-") as directory:
        work = Path(directory)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        str(work / "id_ed25519")], check=True)
        say("preparing the host")
        image = harness.ensure_built_image("host")
        host = harness.start_host(image, "ppc-bench",
                                  (work / "id_ed25519.pub").read_text().strip())
        try:
            harness.load_image(host, harness.BASE_IMAGE)
            say(f"deploying {options.ref or 'this checkout'}")
            tree = checkout(options.ref, work)
            state = deploy(tree, host, work)
            say("a warm deploy against its floor")
            warm = (None if options.ref or options.only_flood or options.only_logins
                    or options.only_metrics else warm_deploy(tree, host, work))
            if options.only_deploy:
                print(table({"revision": "", "warm_deploy": warm}, deploy_only=True))
                return
            say(f"uploading {len(PACKAGES)} packages")
            packages = upload_packages(host, state, work)
            password = json.loads((state / "secrets.json").read_text())["passwords"]["dev"]
            if options.only_metrics:
                say("what /metrics costs")
                print(metrics_line(metrics_cost(host, state)))
                return
            if options.only_logins:
                say("what a login costs: a password, an API token")
                print(logins_line({**login_costs(host, state, work, tree, password),
                                   **mint_cost(host, state, work, tree)}))
                return
            if options.only_flood:
                say(f"a wrong-password flood: {FLOOD_CLIENTS} clients guessing")
                flood = wrong_password_flood(host, state, password, work)
                print(table({"revision": options.ref or "this checkout",
                             "wrong_password_flood": flood}, flood_only=True))
                return
            authorization = "Basic " + base64.b64encode(f"dev:{password}".encode()).decode()
            rows = []
            for path, credentials in (("/health", None), (f"/simple/{PACKAGES[0]}/", authorization)):
                for concurrency in CONCURRENCY:
                    say(f"wrk {path} at concurrency {concurrency}")
                    settle(host, state)
                    rows.append({"path": path, "concurrency": concurrency,
                                 **wrk(host, path, concurrency, credentials)})
            say(f"{PIP_CLIENTS} concurrent pip downloads")
            settle(host, state)
            pip = pip_clients(host, state, work, password)
            say("front door: nginx+TLS against direct, on the host")
            settle(host, state)
            door = front_door(host, packages, password)
            say(f"a wrong-password flood: {FLOOD_CLIENTS} clients guessing")
            settle(host, state)
            flood = wrong_password_flood(host, state, password, work)
        finally:
            if not options.keep:
                host.remove()
    at_one = {row["path"]: row["p50_ms"] for row in rows if row["concurrency"] == 1}
    results = {
        "revision": options.ref or subprocess.run(["git", "-C", str(REPO), "describe", "--always",
                                                   "--dirty"], capture_output=True,
                                                  text=True).stdout.strip(),
        "requests": rows,
        "authenticated_vs_health_at_1": round(at_one[f"/simple/{PACKAGES[0]}/"]
                                              / at_one["/health"], 2),
        "pip_clients": pip,
        "front_door": door,
        "wrong_password_flood": flood,
        "warm_deploy": warm,
    }
    print(table(results))
    if options.json:
        options.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
