"""`status`, `audit` and `logs`: how an index host (or a balancer) is doing, read-only.

`status` reads the same facts a deploy decides from (one round trip per host) plus a
few more, and checks each part against what the settings say it should be
(plans/status.py). Nothing changes anywhere: no lock, no audit line.
"""

from __future__ import annotations

import datetime
from dataclasses import asdict
from json import dumps

from invoke.exceptions import Exit

from . import credentials
from .apply import AUDIT_LOG, Host
from .plans import balancer
from .plans.status import Check, balancer_checks, queries, status_checks
from .render import script_argv
from .settings import Settings
from .wiring import (
    host_task,
    many_hosts,
    on_each_host,
    print_table,
    settings_of,
)


# -- doing ---------------------------------------------------------------------------------
def local_credentials(settings: Settings) -> credentials.Credentials | None:
    if not settings.secrets_path.exists():
        return None
    return credentials.load(settings.secrets_path)


def check_host(host: Host) -> list[Check]:
    facts = host.gather(queries(host.settings))
    now = datetime.datetime.now(datetime.timezone.utc)
    creds = local_credentials(host.settings)
    if balancer.is_balancer(facts):
        return balancer_checks(host.settings, facts, now, creds.metrics_token if creds else "")
    host.require_docker(facts)
    return status_checks(host.settings, facts, creds, now)


@many_hosts(help={"json": "print the checks as JSON, one object per host"})
def status(c, targets, json=False):
    """How index hosts are doing, read-only.

    Example: ppc -H pypi1,pypi2 status --json

    Images (up to date with this repo?), the data store (volume, projects, files, size,
    disk free), the server container (running, /health, uptime, restarts, its answers and
    server errors of the last hour), config drift (is config.ini what the settings
    render, and does the server run with it?), the certificate (names, days left, issuer,
    key, trusted by the host), the CA's days left, the last verified backup's age, and
    nginx (running, nginx -t, site up to date, enabled at boot). On a balancer
    (balancer.deploy): its certificate, nginx, nginx's exporter (its /metrics) and the
    index hosts it forwards to. Exits 1, with one line per problem, when anything is
    unhealthy: the certificate or CA expiring within 30 days, no verified backup for 26
    hours (once there was one), the disk over 90 % full, over 5 % of the last hour's
    answers server errors. Run it from cron as a monitor; --json carries the figures
    (days left, backup age, bytes free, answers and errors).
    """
    results: dict[str, list[Check]] = {}

    def work(host: Host) -> None:
        results[host.name] = check_host(host)

    outcomes = on_each_host(c, targets, work,
                            lambda connection: settings_of(connection, for_server=True),
                            require_sudo=True)
    problems = []
    rows = []
    for outcome in outcomes:
        name = outcome.host.name if outcome.host else outcome.target
        if outcome.error is not None:
            problems.append(f"{name}: {outcome.error}")
            rows.append((name, "failed", outcome.error))
            continue
        checks = results[outcome.host.name]
        bad = [check for check in checks if not check.ok]
        problems += [f"{name}: {check.part}: {check.detail}" for check in bad]
        rows.append((name, "problem" if bad else "ok",
                     ", ".join(check.part for check in bad) or "every check passes"))
        if not json:
            for check in checks:
                print(f"[{name}] {check.part:<12} {'ok' if check.ok else 'PROBLEM':<8} "
                      f"{check.detail}", flush=True)
    if json:
        print(dumps([{"host": outcome.host.name if outcome.host else outcome.target,
                      "error": outcome.error,
                      "checks": [asdict(check) for check in
                                 results.get(outcome.host.name if outcome.host else "", [])]}
                     for outcome in outcomes], indent=2), flush=True)
    elif len(rows) > 1:
        print_table(rows)
    if problems:
        raise Exit("\n".join(problems), code=1)


LINES_HELP = "how many of the last lines to show"


@host_task(mutating=False, option_help={"lines": LINES_HELP})
def audit(host, lines=20):
    """Show the last lines of the host's audit log (who ran which task, when, and what changed)."""
    result = host.run(["tail", "-n", str(int(lines)), AUDIT_LOG], root=True, check=False)
    if not result.ok:
        host.note(f"no audit log yet ({AUDIT_LOG})")
        return
    for line in result.stdout.splitlines():
        print(line, flush=True)


@host_task(mutating=False, option_help={
    "lines": LINES_HELP, "follow": "then go on showing new lines as they come, until Ctrl-C",
    "since": "only the server's lines since then: 10m, 2h, 2026-12-01T09:00"})
def logs(host, lines=50, since="", follow=False):
    """Show the server's log and nginx's errors, each line marked with where it is from.

    Example: ppc -H pypi-internal logs --since 2h --follow

    The last --lines of each (the server's since --since: 10m, 2h, a date); --follow
    then shows them as they grow, until Ctrl-C. Errors the server answered with a bare
    500 are explained here (the client is told only that the log says why).
    """
    argv = script_argv("logs", host.settings.server_container, str(int(lines)), since,
                       "1" if follow else "0")
    try:
        host.run(argv, root=True, echo=True, hold_stdin=bool(follow))
    except KeyboardInterrupt:  # how --follow ends
        print(flush=True)
