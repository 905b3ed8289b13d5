"""Resolving a dependency tree, side by side in one run: ppc-tasks (this checkout; with
--ref an earlier revision too, deployed by its own code) against devpi-server 6.20.3
with --enable-core-metadata (installed from PyPI into a venv of its own and run on this
machine), serving the same packages.

30 packages of 3 versions each, wheels of 400 KB, each depending on the next two
packages. For each peer, with clients on this machine:

- `uv pip compile` of the first package, no cache, median of 9 (and the first of them,
  whose pages the server makes, and whose login pays the password's one slow hash): the
  time, and for ppc-tasks the bytes nginx sent, against the size of the wheels it chose.
  The peers take turns, resolve by resolve: whatever else the machine does meanwhile
  weighs on every peer alike;
- `uv pip compile --exclude-newer` (a moment after the uploads): resolves, or not;
- `pip install --dry-run` (pip 26.3, no cache), median of 5: the time, and how many
  wheels were downloaded (nginx's access log; devpi's request log).

Prints a table and writes JSON (--json FILE). Run it through `benchmarks/run --resolve`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from benchmarks.serve import checkout, deploy, say, upload
from tests.dists import build_wheel
from tests.integration import harness

PROJECTS = [f"bench-dep-{number:02}" for number in range(1, 31)]
VERSIONS = ("1.0", "1.1", "1.2")
WHEEL_PAYLOAD = 400_000
DEVPI = ("devpi-server==6.20.3", "devpi-client==7.3.0")
DEVPI_LABEL = "devpi-server 6.20.3"
TOOLS = ("uv==0.13.9", "pip==26.3", "twine")
UV_ROUNDS = 9  # resolves of each peer, taken in turns
PIP_RUNS = 5


def build_tree(directory: Path) -> list[Path]:
    """Every release, each depending on the next two projects."""
    wheels = []
    for number, project in enumerate(PROJECTS):
        requires = tuple(PROJECTS[number + 1:number + 3])
        for version in VERSIONS:
            wheels.append(build_wheel(project, version, directory, requires=requires,
                                      payload=os.urandom(WHEEL_PAYLOAD)))
    return wheels


def chosen_size(wheels: list[Path]) -> int:
    """What a resolve chooses: the newest version of every project."""
    return sum(wheel.stat().st_size for wheel in wheels if f"-{VERSIONS[-1]}-" in wheel.name)


def tools(work: Path) -> Path:
    """A venv with uv, a current pip and twine, and one with devpi-server."""
    for name, packages in (("tools", TOOLS), ("devpi", DEVPI)):
        subprocess.run([sys.executable, "-m", "venv", str(work / name)], check=True)
        subprocess.run([str(work / name / "bin" / "pip"), "install", "-q", *packages], check=True)
    return work / "tools" / "bin"


def client_environment(index_url: str, ca: Path | None) -> dict:
    """uv and pip on this index alone; its URL (with a password) in the environment, not
    on a command line."""
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("PIP_", "UV_")) and key not in ("REQUESTS_CA_BUNDLE",)}
    environment.update(PIP_CONFIG_FILE=os.devnull, UV_NO_CONFIG="1", UV_DEFAULT_INDEX=index_url,
                       PIP_INDEX_URL=index_url)
    if ca is not None:
        environment["SSL_CERT_FILE"] = str(ca)
    return environment


def timed(argv: list[str], environment: dict, stdin: str = "") -> tuple[float, subprocess.CompletedProcess]:
    started = time.monotonic()
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=environment)
    return time.monotonic() - started, result


@dataclass
class Peer:
    """An index measured, and how to count what it sent: before_each() runs before each
    resolve; wheels_fetched() says how many wheels were downloaded since (and, where
    known, how many bytes were sent)."""

    label: str
    index_url: str
    ca: Path | None
    before_each: Callable[[], None]
    wheels_fetched: Callable[[], tuple[int, int | None]]


def measure(bin_dir: Path, peers: list[Peer], cutoff: str) -> dict[str, dict]:
    """The three measures against each peer. The resolves go round by round, each peer
    in turn: whatever else the machine does meanwhile weighs on every peer alike."""
    compile_argv = [str(bin_dir / "uv"), "pip", "compile", "--no-cache", "--quiet",
                    "--python-version", "3.11", "-"]
    resolves = {peer.label: [] for peer in peers}  # (seconds, wheels, bytes sent) each
    for _ in range(UV_ROUNDS):
        for peer in peers:
            peer.before_each()
            seconds, result = timed(compile_argv, client_environment(peer.index_url, peer.ca),
                                    PROJECTS[0])
            if result.returncode != 0:
                raise SystemExit(f"uv pip compile on {peer.label} failed:\n{result.stderr}")
            resolves[peer.label].append((seconds, *peer.wheels_fetched()))
    results = {}
    for peer in peers:
        uv_times, uv_wheels, uv_bytes = zip(*resolves[peer.label])
        results[peer.label] = {
            "uv_seconds": round(statistics.median(uv_times), 3),
            "uv_first_seconds": round(uv_times[0], 3),
            "uv_wheels_downloaded": max(uv_wheels),
            "uv_bytes_sent": statistics.median(uv_bytes) if None not in uv_bytes else None,
            **cooldown_and_pip(bin_dir, peer, compile_argv, cutoff)}
    return results


def cooldown_and_pip(bin_dir: Path, peer: Peer, compile_argv: list[str], cutoff: str) -> dict:
    environment = client_environment(peer.index_url, peer.ca)
    _, newer = timed([*compile_argv[:-1], "--exclude-newer", cutoff, "-"], environment, PROJECTS[0])
    pip_times, pip_wheels = [], []
    for run in range(PIP_RUNS):
        peer.before_each()
        seconds, result = timed([str(bin_dir / "pip"), "install", "--dry-run", "--no-cache-dir",
                                 "--ignore-installed", *(["--cert", str(peer.ca)] if peer.ca else []),
                                 PROJECTS[0]], environment)
        if result.returncode != 0:
            raise SystemExit(f"pip install --dry-run on {peer.label} failed:\n{result.stderr}")
        pip_times.append(seconds)
        pip_wheels.append(peer.wheels_fetched()[0])
    return {"exclude_newer_resolves": newer.returncode == 0,
            "exclude_newer_error": "" if newer.returncode == 0 else newer.stderr.strip().splitlines()[-1][:160],
            "pip_seconds": round(statistics.median(pip_times), 3),
            "pip_wheels_downloaded": max(pip_wheels)}


# -- ppc-tasks -------------------------------------------------------------------------------
def ppc_index(tree: Path, work: Path, wheels: list[Path], label: str):
    """A throwaway Docker-in-Docker host deployed from `tree`, holding the wheels (uploaded
    by the admin); developers resolve as the plain account."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "id_ed25519")],
                   check=True)
    host = harness.start_host(harness.ensure_built_image("host"), f"ppc-bench-{label}",
                              (work / "id_ed25519.pub").read_text().strip())
    harness.load_image(host, harness.BASE_IMAGE)
    say(f"deploying {label}")
    state = deploy(tree, host, work)
    passwords = json.loads((state / "secrets.json").read_text())["passwords"]
    say(f"uploading {len(wheels)} wheels to {label}")
    for wheel in wheels:
        project, version = wheel.name.split("-")[:2]
        upload(host, state, passwords["admin"], wheel, project.replace("_", "-"), version)
    return host, state, f"https://dev:{passwords['dev']}@{host.address}/simple/"


def nginx_log_counters(host: harness.TestHost):
    log = "/var/log/nginx/access.log"

    def clear() -> None:
        host.exec(f": > {log}")

    def fetched() -> tuple[int, int]:
        lines = host.out(f"cat {log}").splitlines()
        wheels = sum(1 for line in lines if re.search(r'"GET \S+\.whl HTTP/[\d.]+" 200 ', line))
        sent = sum(int(match[1]) for line in lines if (match := re.search(r'" \d{3} (\d+) ', line)))
        return wheels, sent

    return clear, fetched


# -- devpi-server ----------------------------------------------------------------------------
def free_port() -> int:
    """A loopback port free now, for devpi-server to listen on (the benchmark runs alone)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Devpi:
    def __init__(self, work: Path, wheels: list[Path], tools_bin: Path):
        self.bin = work / "devpi" / "bin"
        self.serverdir = work / "devpi-data"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = work / "devpi.log"
        subprocess.run([str(self.bin / "devpi-init"), "--serverdir", str(self.serverdir),
                        "--root-passwd", "bench"], check=True, capture_output=True)
        self.process = subprocess.Popen(
            [str(self.bin / "devpi-server"), "--serverdir", str(self.serverdir), "--host",
             "127.0.0.1", "--port", str(self.port), "--enable-core-metadata"],
            stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        harness.wait_for(lambda: harness.port_open(self.port), "devpi-server", 60)
        client = {"HOME": str(work), "PATH": f"{self.bin}:{os.environ['PATH']}"}
        for argv in (["use", self.url], ["login", "root", "--password", "bench"],
                     ["index", "-c", "root/bench", "bases=", "volatile=False"]):
            subprocess.run([str(self.bin / "devpi"), *argv], check=True, capture_output=True,
                           env={**os.environ, **client})
        say(f"uploading {len(wheels)} wheels to devpi-server")
        subprocess.run([str(tools_bin / "twine"), "upload", "--disable-progress-bar",
                        "--repository-url", f"{self.url}/root/bench/", "-u", "root", "-p", "bench",
                        *map(str, wheels)], check=True, capture_output=True)
        self.index_url = f"{self.url}/root/bench/+simple/"
        self.mark = 0

    def clear(self) -> None:
        self.mark = self.log.stat().st_size

    def fetched(self) -> tuple[int, None]:
        with self.log.open() as log:
            log.seek(self.mark)
            lines = log.read().splitlines()
        return sum(1 for line in lines if re.search(r"GET \S+\.whl\b(?!\.metadata)", line)
                   and ".metadata" not in line), None

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def table(results: dict, chosen: int) -> str:
    lines = [f"| | uv pip compile (median of {UV_ROUNDS}; first) | bytes sent for it | --exclude-newer | "
             "pip install --dry-run (pip 26.3) | wheels downloaded (uv / pip) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for label, row in results.items():
        sent = (f"{row['uv_bytes_sent'] / 1e6:.2f} MB ({100 * row['uv_bytes_sent'] / chosen:.1f}% of "
                f"the {chosen / 1e6:.1f} MB chosen)" if row["uv_bytes_sent"] is not None else "-")
        lines.append(f"| {label} | {row['uv_seconds']:.2f} s; {row['uv_first_seconds']:.2f} s | {sent} | "
                     f"{'resolves' if row['exclude_newer_resolves'] else 'fails'} | "
                     f"{row['pip_seconds']:.2f} s | {row['uv_wheels_downloaded']} / "
                     f"{row['pip_wheels_downloaded']} |")
    baseline = results.get(DEVPI_LABEL)
    if baseline:
        for label, row in results.items():
            if label != DEVPI_LABEL:
                lines.append(f"\n{label} against devpi-server: uv pip compile "
                             f"{row['uv_seconds'] / baseline['uv_seconds']:.2f}x")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", help="also an earlier revision, deployed by its own code")
    parser.add_argument("--json", type=Path, help="write the results here too")
    options = parser.parse_args()
    hosts = []
    with tempfile.TemporaryDirectory(prefix="ppc-bench-resolve-") as directory:
        work = Path(directory)
        say("building 90 wheels and the client tools")
        wheels = build_tree(work / "wheels")
        chosen = chosen_size(wheels)
        tools_bin = tools(work)
        devpi = None
        try:
            peers = [("this checkout", None)] + ([(options.ref, options.ref)] if options.ref else [])
            indexes = []
            for label, ref in peers:
                peer_work = work / f"peer-{len(indexes)}"
                peer_work.mkdir()
                tree = checkout(ref, peer_work)
                host, state, url = ppc_index(tree, peer_work, wheels, f"resolve-{len(indexes)}")
                hosts.append(host)
                indexes.append((f"ppc-tasks {label}", host, state, url))
            devpi = Devpi(work, wheels, tools_bin)
            time.sleep(1.5)
            cutoff = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            say("measuring " + ", ".join(label for label, *_ in indexes) + " and devpi-server")
            peers = [Peer(label, url, state / "ca.crt", *nginx_log_counters(host))
                     for label, host, state, url in indexes]
            peers.append(Peer(DEVPI_LABEL, devpi.index_url, None, devpi.clear, devpi.fetched))
            results = measure(tools_bin, peers, cutoff)
        finally:
            if devpi is not None:
                devpi.stop()
            for host in hosts:
                host.remove()
    print(table(results, chosen))
    if options.json:
        options.json.write_text(json.dumps({"chosen_bytes": chosen, "peers": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
