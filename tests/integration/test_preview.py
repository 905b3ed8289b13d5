"""See before you change: `fab --dry` shows the plan and changes nothing anywhere;
`status` reports and changes nothing; one run at a time holds the host's lock; every
run leaves a line in the host's audit log."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import re
import signal
import time

import pytest

from . import harness
from .conftest import SERVER_NAME, password_of, steps

WATCHED = ["/etc/pypicloud/config.ini", "/etc/nginx/conf.d/ppc-tasks.conf",
           f"/etc/ssl/ppc-tasks/{SERVER_NAME}.crt", f"/etc/ssl/ppc-tasks/{SERVER_NAME}.key",
           f"/usr/local/share/ca-certificates/ppc-tasks-{SERVER_NAME}.crt", "/etc/ppc-tasks/index"]


def host_snapshot(host) -> str:
    """Everything a deploy could touch on the host: files, images, containers, nginx."""
    return host.out(check=False, command=
        f"stat -c '%n %s %Y %a %u' {' '.join(WATCHED)} 2>&1; sha256sum {' '.join(WATCHED)} 2>&1; "
        "docker images -q --no-trunc | sort; docker ps -aq --no-trunc | sort; "
        "docker volume ls -q | sort; pgrep -d, nginx; "
        "stat -c '%n %s %Y' /run/lock/ppc-tasks.lock /var/log/ppc-tasks/audit.log 2>&1")


def local_snapshot(state_dir) -> dict:
    if not state_dir.exists():
        return {}
    return {str(path): (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
            for path in sorted(state_dir.rglob("*")) if path.is_file()}


def dry_lines(output: str) -> dict[str, str]:
    """{step: would change|unchanged} from a dry run's report lines."""
    rows = re.findall(r"^\[[^\]]+\] (\S+)\s+(would change|unchanged)\s", output, flags=re.M)
    return dict(rows)


def test_dry_run_shows_the_change_and_changes_nothing(deployed, fab, operator_home):
    server = deployed.host
    changed = deployed.settings(fallback="none")
    before = host_snapshot(server), local_snapshot(operator_home / "state")

    dry = fab("--dry", "deploy", host=server, settings=changed)

    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert (host_snapshot(server), local_snapshot(operator_home / "state")) == before
    would = {step for step, state in dry_lines(dry.stdout).items() if state == "would change"}
    assert would == {"server.config", "server.container", "nginx.site", "nginx.service",
                     "server.retire", "server.records"}, dry.stdout
    assert "-pypi.fallback = redirect" in dry.stdout and "+pypi.fallback = none" in dry.stdout
    assert "$ sudo put-file /etc/pypicloud/config.ini 600 10001:10001 keep" in dry.stdout \
        or "$ put-file /etc/pypicloud/config.ini 600 10001:10001 keep" in dry.stdout
    assert "docker run --detach --label ppc-tasks.spec-hash=" in dry.stdout
    assert "-    server 127.0.0.1:3031;" in dry.stdout or "-    server 127.0.0.1:3032;" in dry.stdout
    assert "dry run: 6 would change," in dry.stdout and "nothing was changed" in dry.stdout
    secrets = json.loads((operator_home / "state" / SERVER_NAME / "secrets.json").read_text())
    for secret in [*secrets["passwords"].values(), *secrets["password_hashes"].values(),
                   secrets["session_encrypt_key"], secrets["session_validate_key"]]:
        assert secret not in dry.stdout + dry.stderr

    real = fab("deploy", host=server, settings=changed)  # what the preview said, now done
    assert real.returncode == 0, real.stdout + real.stderr
    assert {step for step, state in steps(real.stdout).items() if state == "changed"} == would
    assert "pypi.fallback = none" in server.out("cat /etc/pypicloud/config.ini")

    back = fab("deploy", host=server, settings=deployed.settings())
    assert back.returncode == 0, back.stdout + back.stderr


def test_dry_run_on_a_bare_host_creates_nothing_here_or_there(fab, bare_host, tmp_path):
    bare = bare_host
    state = tmp_path / "state"
    before = host_snapshot(bare)

    dry = fab("--dry", "deploy", host=bare, settings={"server_names": ["preview.test"],
                                                       "state_dir": str(state)})

    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "would change  create the local CA" in dry.stdout
    assert "would change  generate passwords for admin" in dry.stdout
    assert "would change  build ppc/pypicloud:1.3.12: it is missing" in dry.stdout
    # config.ini is new: its whole text is shown, every hash and session key redacted.
    for line in ("+user.admin = <redacted>", "+user.client = <redacted>",
                 "+session.encrypt_key = <redacted>", "+session.validate_key = <redacted>"):
        assert line in dry.stdout, line
    assert "$6$" not in dry.stdout
    assert not state.exists()
    assert host_snapshot(bare) == before


def test_status_reports_every_part_and_changes_nothing(deployed, fab, operator_home):
    server = deployed.host
    before = host_snapshot(server), local_snapshot(operator_home / "state")

    result = fab("status", host=server, settings=deployed.settings())

    assert result.returncode == 0, result.stdout + result.stderr
    parts = dict(re.findall(r"^\[[^\]]+\] (\S+)\s+(ok|PROBLEM)\s", result.stdout, flags=re.M))
    assert parts == {part: "ok" for part in ("images", "data", "server", "rollback", "config",
                                             "publishing", "publishers", "tokens", "certificate",
                                             "ca", "backup", "nginx")}, result.stdout
    assert "days left" in result.stdout and "/health answers" in result.stdout
    assert (host_snapshot(server), local_snapshot(operator_home / "state")) == before


def test_status_names_each_problem_and_reports_many_hosts_as_a_table(deployed, fab, bare_host):
    server = deployed.host
    bare = bare_host
    server.exec("sed -i 's/^pypi.fallback = .*/pypi.fallback = none/' /etc/pypicloud/config.ini")
    try:
        targets = f"{server.target},{bare.target}"
        result = fab("status", host=targets, settings=deployed.settings())
        as_json = fab("status", "--json", host=targets, settings=deployed.settings())
    finally:
        fab("deploy", host=server, settings=deployed.settings())

    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    problems = result.stderr.strip().splitlines()
    assert f"127.0.0.1:{server.port}: config: /etc/pypicloud/config.ini differs from what the " \
           f"settings render" in problems[0], problems
    assert any(line.startswith(f"127.0.0.1:{bare.port}: ") for line in problems)
    table = result.stdout.split("\nhost ", 1)[1]
    assert f"127.0.0.1:{server.port}  problem" in table and f"127.0.0.1:{bare.port}" in table
    hosts = {entry["host"]: entry for entry in json.loads(as_json.stdout)}
    checks = {check["part"]: check["ok"] for check in hosts[f"127.0.0.1:{server.port}"]["checks"]}
    assert checks["config"] is False and checks["server"] is True


def lock_held(host) -> bool:
    return host.exec("test -s /run/lock/ppc-tasks.lock.holder", check=False).returncode == 0


def test_one_run_at_a_time_and_a_killed_one_leaves_no_lock(deployed, fab):
    server = deployed.host
    # A first deploy that takes a while: it replaces the server (a new config).
    first = fab("deploy", host=server, settings=deployed.settings(fallback="none"), background=True)
    harness.wait_for(lambda: lock_held(server), "the first deploy's lock", 30)

    second = fab("deploy", host=server, settings=deployed.settings())

    assert second.returncode == 1
    assert len(second.stderr.strip().splitlines()) == 1 and "Traceback" not in second.stderr
    assert "is busy: " in second.stderr and " running deploy since " in second.stderr
    assert "--lock-wait=SECONDS" in second.stderr
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, out + err

    # A fab killed while it holds the lock (replacing the server): the next run goes
    # ahead at once and puts the host right.
    killed = fab("deploy", host=server, settings=deployed.settings(), background=True)
    harness.wait_for(lambda: lock_held(server), "the lock", 30)
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    again = fab("deploy", host=server, settings=deployed.settings())
    assert again.returncode == 0, again.stdout + again.stderr
    settled = fab("deploy", host=server, settings=deployed.settings())
    assert "done: 0 changed," in settled.stdout, settled.stdout


def finished(run) -> tuple[str, str, float]:
    """A background run's output, once it ended, and when it ended (monotonic)."""
    out, err = run.communicate(timeout=300)
    return out, err, time.monotonic()


def test_a_run_waits_for_the_lock_when_asked(deployed, fab):
    server = deployed.host
    first = fab("deploy", host=server, settings=deployed.settings(fallback="none"), background=True)
    harness.wait_for(lambda: lock_held(server), "the first deploy's lock", 30)

    second = fab("deploy", "--lock-wait=300", host=server, settings=deployed.settings(),
                 background=True)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # each one's end, as it comes
        (_, _, first_ended), (out, err, second_ended) = pool.map(finished, (first, second))
    assert first.returncode == 0
    assert second.returncode == 0, out + err
    assert second_ended > first_ended  # it went on only once the first let the lock go
    assert steps(out)["server.config"] == "changed"  # back to the shared settings


def test_every_run_leaves_an_audit_line_without_secrets(deployed, fab, operator_home):
    server = deployed.host
    audit_lines = "cat /var/log/ppc-tasks/audit.log 2>/dev/null | wc -l"
    before = int(server.out(audit_lines))
    deploy = fab("deploy", host=server, settings=deployed.settings())
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr

    result = fab("audit", "--lines=3", host=server, settings=deployed.settings())

    assert result.returncode == 0, result.stdout + result.stderr
    assert int(server.out(audit_lines)) == before + 1  # the deploy's line; none of audit's
    last = result.stdout.strip().splitlines()[-1]
    assert last == server.out("tail -n 1 /var/log/ppc-tasks/audit.log")
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ operator=\S+@\S+ task=deploy "
                    r"settings=sha256:[0-9a-f]{16} result=ok changed=-$", last), last
    assert server.out("stat -c '%a %U' /var/log/ppc-tasks/audit.log") == "640 root"
    log = server.out("cat /var/log/ppc-tasks/audit.log")
    assert "Traceback" not in log  # a failed run's line names its error, in one line
    assert all(re.match(r"^\d{4}-\d\d-\d\dT\S+ operator=\S+ task=\S+ settings=sha256:\S+ "
                        r"result=\S", line) for line in log.splitlines()), log
    secrets = json.loads((operator_home / "state" / SERVER_NAME / "secrets.json").read_text())
    for secret in [*secrets["passwords"].values(), *secrets["password_hashes"].values(),
                   secrets["session_encrypt_key"], secrets["session_validate_key"]]:
        assert secret not in log


def test_a_warm_deploy_takes_one_round_trip(deployed, fab):
    # The lock's channel also learns how to become root, and carries the facts.
    result = fab("deploy", host=deployed.host, settings=deployed.settings())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "done: 0 changed," in result.stdout, result.stdout
    trips = int(re.search(r"\((\d+) SSH round trips?\)", result.stdout).group(1))
    assert trips == 1, result.stdout


SUDO_PASSWORD = "sudo-test-Pw-1"


@pytest.mark.parametrize("sudo", ["nopasswd", "password"])
def test_an_operator_account_with_sudo_deploys(deployed, fab, sudo):
    """Logged in as themselves, root through sudo: without a password (learned on the
    lock's own channel, still one round trip) or with one (fab's sudo.password)."""
    host = deployed.host
    host.exec("id ops >/dev/null 2>&1 || { useradd -m -s /bin/sh ops && mkdir -p ~ops/.ssh "
              "&& cp /root/.ssh/authorized_keys ~ops/.ssh/ && chown -R ops ~ops/.ssh; }")
    if sudo == "nopasswd":
        host.exec("echo 'ops ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/ops")
        env = {}
    else:
        host.exec(f"echo 'ops:{SUDO_PASSWORD}' | chpasswd && "
                  "echo 'ops ALL=(ALL) ALL' > /etc/sudoers.d/ops")
        env = {"FABRIC_SUDO_PASSWORD": SUDO_PASSWORD}
    try:
        result = fab("deploy", host=f"ops@127.0.0.1:{host.port}", settings=deployed.settings(),
                     env=env)
    finally:
        host.exec("rm -f /etc/sudoers.d/ops")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "done: 0 changed," in result.stdout, result.stdout
    trips = int(re.search(r"\((\d+) SSH round trips?\)", result.stdout).group(1))
    assert trips == (1 if sudo == "nopasswd" else 3), result.stdout
    audit = host.out("tail -n 1 /var/log/ppc-tasks/audit.log")
    assert "task=deploy" in audit and "result=ok" in audit and SUDO_PASSWORD not in audit


def test_dry_client_configure_shows_redacted_files_and_writes_none(deployed, fab, client,
                                                                  operator_home):
    before = client.out("ls -la /root /root/.config 2>&1; ls /usr/local/share/ca-certificates")

    dry = fab("--dry", "clients.configure", host=client, settings=deployed.settings())

    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert client.out("ls -la /root /root/.config 2>&1; ls /usr/local/share/ca-certificates") == before
    assert "+password = <redacted>" in dry.stdout  # .pypirc, and PDM's and Poetry's TOML
    assert "+  password <redacted>" in dry.stdout  # ~/.netrc, for uv
    assert "+index-url = https://dev:<redacted>@pypi.test/simple/" in dry.stdout
    assert password_of(operator_home, "dev") not in dry.stdout + dry.stderr
    assert "would change" in dry.stdout.split("\nhost ", 1)[1]
