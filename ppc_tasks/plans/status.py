"""What `status` checks, from the settings and a host's facts alone: the facts it asks
for (a deploy's, and the store's usage, pypicloud's /health, `nginx -t`, the API tokens)
and each part's check against what the settings say it should be (its task:
ppc_tasks/status.py)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from cryptography import x509

from .. import certificates, config_ini, credentials, tls_paths
from ..errors import program
from ..facts import API_TOKENS, HEALTH, NGINX_TEST, TEXT, VOLUME_USAGE, Facts, LastHour
from ..plan import counted
from ..render import guard_module
from ..settings import DATA_DIR, Settings
from . import balancer, deploy, image, nginx, server

MINTED_NOTE = guard_module("publishers").MINTED_NOTE

# When status pages: what the shipped alert rules (files/prometheus-alerts.yml) alert on,
# or earlier.
EXPIRY_WARNING = datetime.timedelta(days=30)
LOW_DISK = 1 << 30  # bytes free where the packages live
FULL = 0.9  # of the volume where the packages live
BACKUP_AGE_LIMIT = datetime.timedelta(hours=26)
BACKUP_TIME = "%Y-%m-%dT%H:%M:%SZ"  # as backup.create records it


@dataclass(frozen=True)
class Check:
    part: str
    ok: bool
    detail: str
    figures: dict = field(default_factory=dict)  # for --json: what a monitor compares


def queries(settings: Settings) -> list[str]:
    return [*deploy.queries(settings), VOLUME_USAGE.query(settings.data_volume),
            HEALTH.query(settings.server_container), NGINX_TEST.query(),
            API_TOKENS.query(settings.server_container), TEXT.query(settings.verified_backup_path),
            *balancer.exporter_queries()]


# -- deciding ------------------------------------------------------------------------------
def check_images(settings: Settings, facts: Facts) -> Check:
    states = []
    for build in image.image_builds(settings):
        if facts.images.get(build.content_tag) is not None:
            states.append((build.content_tag, "up to date"))
        else:
            states.append((build.tag, "missing" if facts.images[build.tag] is None else
                           "older than the repo (deploy rebuilds it)"))
    return Check("images", all(state == "up to date" for _, state in states),
                 "; ".join(f"{tag} {state}" for tag, state in states))


def check_data(settings: Settings, facts: Facts) -> Check:
    volume = facts.volumes[settings.data_volume]
    holder = facts.data_containers[f"{settings.data_container}:{DATA_DIR}"][0]
    usage = facts.volume_usage.get(settings.data_volume)
    if volume == "empty" and settings.storage == "s3" and settings.cache is not None:
        return Check("data", True, f"{settings.data_volume} is empty: the packages are in S3 "
                                   f"and the cache in {settings.cache.kind}")
    if volume != "data" or usage is None:
        return Check("data", False, f"the volume {settings.data_volume} is {volume}")
    detail = (f"{settings.data_volume}: {counted(usage.projects, 'project')}, "
              f"{counted(usage.files, 'file')}, "
              f"{usage.bytes / 1e6:.1f} MB; {usage.free_bytes / 1e9:.1f} GB free")
    figures = {"projects": usage.projects, "files": usage.files, "bytes": usage.bytes,
               "free_bytes": usage.free_bytes, "size_bytes": usage.size_bytes}
    if holder != settings.data_volume:
        return Check("data", False, f"{detail}; the data container {settings.data_container} "
                                    f"does not hold it (deploy makes it again)", figures)
    if usage.free_bytes < LOW_DISK:
        return Check("data", False, f"{detail}: less than 1 GB free where packages live",
                     figures)
    if usage.size_bytes and 1 - usage.free_bytes / usage.size_bytes > FULL:
        return Check("data", False, f"{detail}: the disk is over {FULL:.0%} full", figures)
    return Check("data", True, detail, figures)


def check_server(settings: Settings, facts: Facts, now: datetime.datetime) -> Check:
    name = settings.server_container
    container = facts.containers[name]
    if container is None:
        return Check("server", False, f"there is no container {name}")
    healthy = facts.health.get(name, False)
    started = parse_time(container.started_at)
    uptime = f"up {format_age(now - started)}" if started and container.running else "stopped"
    detail = (f"{name} {uptime}, /health {'answers' if healthy else 'does not answer'}, "
              f"restarted {container.restarts} times")
    last_hour = facts.last_hour.get(name)
    if last_hour is None:
        return Check("server", container.running and healthy, detail)
    since = ("in the last hour" if started and now - started >= datetime.timedelta(hours=1)
             else "since it started")
    errors = (f"{last_hour.server_errors} of {last_hour.answers} answers {since} were "
              f"server errors (5xx)")
    failing = too_many_errors(last_hour)
    return Check("server", container.running and healthy and not failing,
                 f"{detail}; {errors}" + (f": {program()} -H <host> logs says why" if failing else ""),
                 figures={"answers_last_hour": last_hour.answers,
                          "server_errors_last_hour": last_hour.server_errors})


def too_many_errors(last_hour: LastHour) -> bool:
    """As the alert PpcServerErrors has it, over 5 % of the answers; and at least five, so
    that one failed request of a quiet hour pages no one."""
    return last_hour.server_errors >= 5 and last_hour.server_errors * 20 > last_hour.answers


def check_shared_stores(settings: Settings, facts: Facts) -> list[Check]:
    """S3 and a shared cache, as the server sees them (pypicloud's /health)."""
    report = facts.health_report.get(settings.server_container) or {}
    checks = []
    for part, used, what in (
            ("storage", settings.storage == "s3", f"s3 bucket {settings.s3_bucket} at "
                                                   f"{settings.s3_endpoint_url or 'AWS'}"),
            ("cache", settings.cache is not None, f"{settings.cache}")):
        if not used:
            continue
        if part not in report:
            checks.append(Check(part, False, f"{what}: unknown (the server does not answer)"))
        else:
            problem = report[part]
            checks.append(Check(part, not problem, f"{what}: {problem or 'ok'}"))
    return checks


def check_rollback(settings: Settings, facts: Facts) -> Check:
    """Which image runs, and what `rollback` would return to."""
    container = facts.containers[settings.server_container]
    running = f"runs {container.image}" if container else "no server"
    target = server.rollback_target(facts)
    return Check("rollback", True, f"{running}; rollback target: "
                                   f"{target[0] + f' ({program()} rollback)' if target else 'none yet'}")


def check_config(settings: Settings, facts: Facts, creds: credentials.Credentials | None) -> Check:
    """Does config.ini say what the settings say, and does the server run with it?"""
    file = facts.file(settings.config_path)
    if file.state is None:
        return Check("config", False, f"{settings.config_path} is missing")
    if creds is None:
        return Check("config", True, f"{settings.config_path} (not compared: the index's "
                                     f"secrets are not on this machine)")
    wanted = config_ini.render_config(settings, creds)
    if not file.holds(wanted):
        return Check("config", False, f"{settings.config_path} differs from what the settings "
                                      f"render (edited by hand? deploy puts it right)")
    container = facts.containers[settings.server_container]
    image_ref, identity = image.server_image(settings, facts) or ("", "")
    if container is None or container.spec != server.container_spec(settings, image_ref,
                                                                     identity, wanted):
        return Check("config", False, "the server does not run with this config.ini and "
                                      "image (deploy replaces it)")
    return Check("config", True, f"{settings.config_path} is what the settings render; the "
                                 f"server runs with it")


UPSTREAM = {"none": "no name is looked up on PyPI",
            "redirect": "a name the index never held is redirected to PyPI",
            "cache": "a name the index never held is fetched from PyPI and kept",
            "mirror": "a name the index never held is fetched from PyPI and kept, and PyPI's "
                      "releases of names it mirrors are listed beside its own"}


def check_publishing(settings: Settings) -> Check:
    """What the index promises about names and releases (docs/security.md)."""
    private = ", ".join(settings.private_names) or "none set"
    owners = "; ".join(f"{pattern}: {', '.join(accounts)}" for pattern, accounts in settings.owners)
    window = settings.release_window
    closes = (f"{window // 3600} h" if window % 3600 == 0 else
              f"{window // 60} min" if window % 60 == 0 else f"{window} s")
    return Check("publishing", True,
                 f"fallback {settings.fallback}: {UPSTREAM[settings.fallback]}; private names: "
                 f"{private}, and every project ever published here; a release closes "
                 f"{closes} after its first file; owners granted: {owners or 'none'}; "
                 f"an account's projects hold at most {size_text(settings.account_quota)}")


def check_publishers(settings: Settings) -> Check:
    """The CI jobs that may publish without a password, and what each may publish."""
    if not settings.trusted_publishers:
        return Check("publishers", True, "none (trusted_publishers names the CI jobs that "
                                         "may publish without a password)")
    shown = [f"{publisher.name} -> {', '.join(publisher.projects)} as {publisher.account} "
             f"({'keys pinned' if publisher.jwks else 'keys from its discovery document'})"
             for publisher in settings.trusted_publishers]
    return Check("publishers", True, f"{len(shown)}: " + "; ".join(shown))


def check_tokens(settings: Settings, facts: Facts, now: datetime.datetime) -> Check:
    """How many API tokens are valid (and how many of them trusted publishing minted),
    and which one expires next."""
    found = facts.api_tokens[settings.server_container]
    if found is None:
        return Check("tokens", True, "the server cannot list them (a deploy updates it)")
    live = [token for token in found if not token["expires"]
            or datetime.datetime.fromisoformat(token["expires"]) > now]
    minted = [token for token in live if token["note"].startswith(MINTED_NOTE)]
    detail = f"{len(live)} valid" if found else "none (tokens.create makes one)"
    if minted:
        detail += f" ({len(minted)} minted by trusted publishing, for 15 minutes)"
    if len(found) > len(live):
        detail += f", {len(found) - len(live)} expired (tokens.revoke removes them)"
    ending = [token for token in live if token["expires"]]
    if ending:
        nearest = min(ending, key=lambda token: token["expires"])
        left = datetime.datetime.fromisoformat(nearest["expires"]) - now
        detail += f"; the next to expire: {nearest['id']} in {format_age(left)}"
    return Check("tokens", True, detail)


def size_text(size: int) -> str:
    """A size setting as the operator wrote it, about: 20 GiB, 500 MiB; 0 is no cap."""
    for unit, factor in (("TiB", 1024 ** 4), ("GiB", 1024 ** 3), ("MiB", 1024 ** 2)):
        if size >= factor:
            return f"{size / factor:g} {unit}"
    return f"{size} bytes" if size else "anything (no cap)"


def check_certificate(settings: Settings, facts: Facts, now: datetime.datetime,
                      trusted_here: bool = True) -> Check:
    """The certificate nginx serves; trusted_here: its CA belongs in the host's store
    (an index host's own tools reach the index; a balancer's do not need to)."""
    cert_path, _ = tls_paths.host_cert_paths(settings)
    content = facts.file(cert_path).content
    if not content:
        return Check("certificate", False, f"{cert_path} is missing")
    try:
        certificate = x509.load_pem_x509_certificates(content)[0]
    except ValueError:
        return Check("certificate", False, f"{cert_path} cannot be read")
    left = certificate.not_valid_after_utc - now
    names = certificates.names_in(certificate)
    issuer = certificate.issuer.rfc4514_string()
    problems = []
    if left < EXPIRY_WARNING:
        problems.append("expired" if left.total_seconds() < 0 else f"expires in {left.days} days")
    missing = certificates.uncovered(certificate, settings.certificate_names)
    if missing:
        problems.append(f"does not cover {', '.join(missing)}")
    key_matches = matches_local_key(settings, certificate)
    if key_matches is False:
        problems.append("is not the one issued here (server.key does not fit)")
    ca = tls_paths.ca_path(settings)
    trust = facts.platform.trust_store
    trusted = None
    if trusted_here and ca and ca.exists() and trust is not None:
        trusted = facts.file(tls_paths.trust_path(trust, settings.index_name)).holds(
            ca.read_bytes())
        if not trusted:
            problems.append("its CA is not in the host's trust store")
    detail = (f"{', '.join(names)}; {max(left.days, 0)} days left; issuer {issuer}"
              + (f"; {'; '.join(problems)}" if problems else ""))
    return Check("certificate", not problems, detail,
                 {"days_left": left.days, "expires": certificate.not_valid_after_utc.isoformat()})


def check_ca(settings: Settings, now: datetime.datetime) -> Check:
    """The CA clients trust, as this machine holds it: how long it still signs."""
    path = tls_paths.ca_path(settings)
    if path is None or not path.exists():
        return Check("ca", True, "a public CA signs the certificate (tls_cert without "
                                 "tls_ca_cert): its expiry is not known here")
    try:
        ca = x509.load_pem_x509_certificates(path.read_bytes())[0]
    except ValueError:
        return Check("ca", False, f"{path} cannot be read")
    left = ca.not_valid_after_utc - now
    detail = f"{path}: {max(left.days, 0)} days left"
    if left < EXPIRY_WARNING:
        detail += (f"; it expires: {program()} -H <host> deploy --new-identity makes a new one, "
                   f"then clients.configure")
    return Check("ca", left >= EXPIRY_WARNING, detail,
                 {"days_left": left.days, "expires": ca.not_valid_after_utc.isoformat()})


def check_backup(settings: Settings, facts: Facts, now: datetime.datetime) -> Check:
    """When the host's last verified backup was made (backup.create records it)."""
    content = facts.file(settings.verified_backup_path).content
    if content is None:
        return Check("backup", True, f"none verified yet ({program()} -H <host> backup makes one)")
    try:
        made = datetime.datetime.strptime(content.decode().strip(), BACKUP_TIME).replace(
            tzinfo=datetime.timezone.utc)
    except (UnicodeDecodeError, ValueError):
        return Check("backup", False, f"{settings.verified_backup_path} cannot be read")
    age = now - made
    detail = f"the last verified backup was made {format_age(age)} ago"
    if age > BACKUP_AGE_LIMIT:
        detail += (f", over {BACKUP_AGE_LIMIT.total_seconds() / 3600:.0f} hours: "
                   f"{program()} -H <host> backup")
    return Check("backup", age <= BACKUP_AGE_LIMIT, detail,
                 {"age_seconds": int(age.total_seconds()), "made": made.isoformat()})


def matches_local_key(settings: Settings, certificate: x509.Certificate) -> bool | None:
    """Whether the certificate's key is the one kept here (None: nothing kept here)."""
    from cryptography.hazmat.primitives import serialization

    key_path = settings.server_state_dir / "server.key"
    if settings.tls_cert:
        key_path = settings.tls_key
    elif settings.tls_host_cert or not key_path.exists():
        return None
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    return certificates.key_fits(key, certificate)


def check_nginx(settings: Settings, facts: Facts, wanted: bytes) -> Check:
    """nginx serving the site it should (`wanted`, as the settings render it)."""
    installed, running = facts.nginx
    tested, error = facts.nginx_test or (False, "")
    current = facts.file(nginx.SITE_PATH).holds(wanted)
    at_boot = facts.unit_enabled("nginx") or not facts.platform.systemd
    problems = [problem for problem, bad in (
        ("not installed", not installed), ("not running", installed and not running),
        (f"nginx -t fails: {error}", installed and not tested),
        ("the site differs from what the settings render", not current),
        ("it has not loaded the site or certificate as they are (deploy reloads it)",
         running and not nginx.runs_files_as_they_are(settings, facts)),
        ("not enabled at boot", not at_boot)) if bad]
    return Check("nginx", not problems, "; ".join(problems) or
                 "running, nginx -t passes, the site is up to date, enabled at boot")


def status_checks(settings: Settings, facts: Facts, creds: credentials.Credentials | None,
                  now: datetime.datetime) -> list[Check]:
    return [check_images(settings, facts), check_data(settings, facts),
            check_server(settings, facts, now), *check_shared_stores(settings, facts),
            check_rollback(settings, facts),
            check_config(settings, facts, creds), check_publishing(settings),
            check_publishers(settings), check_tokens(settings, facts, now),
            check_certificate(settings, facts, now), check_ca(settings, now),
            check_backup(settings, facts, now),
            check_nginx(settings, facts,
                        nginx.render_site(settings, nginx.serving_port(settings, facts)))]


def check_exporter(facts: Facts) -> Check:
    """nginx's exporter, which the balancer's /metrics answers from."""
    if not balancer.has_exporter(facts):
        return Check("metrics", True, f"{facts.platform.os} packages no nginx exporter: "
                                      f"scrape each index host")
    problems = [problem for problem, bad in (
        ("not installed (balancer.deploy installs it)", not facts.commands.get(balancer.EXPORTER)),
        ("not running", not balancer.exporter_running(facts)),
        (f"{balancer.EXPORTER_DEFAULTS} differs from what ppc-tasks writes",
         not facts.file(balancer.EXPORTER_DEFAULTS).holds(balancer.render_exporter_defaults())),
        ("not enabled at boot", facts.platform.systemd and not facts.unit_enabled(balancer.EXPORTER)),
    ) if bad]
    return Check("metrics", not problems, "; ".join(problems) or
                 f"{balancer.EXPORTER} serves nginx's figures as /metrics")


def balancer_checks(settings: Settings, facts: Facts, now: datetime.datetime,
                    metrics_token: str) -> list[Check]:
    """A balancer holds no index: its certificate, nginx, its figures for Prometheus, and
    where it forwards (each index host's own status tells how that one is doing)."""
    site = balancer.render_site(settings, balancer.upstream_trust(settings, facts),
                                metrics_token, balancer.has_exporter(facts))
    return [Check("role", True, f"balancer for {', '.join(settings.server_names)} "
                                f"(balancer.deploy)"),
            check_certificate(settings, facts, now, trusted_here=False),
            check_nginx(settings, facts, site), check_exporter(facts),
            Check("upstreams", True, f"forwards to {', '.join(settings.index_hosts)} "
                                     f"({program()} -H {','.join(settings.index_hosts)} status "
                                     f"checks them)")]


def parse_time(text: str) -> datetime.datetime | None:
    """Docker's times: RFC 3339 with nanoseconds."""
    try:
        return datetime.datetime.fromisoformat(text[:26].rstrip("Z") + "+00:00")
    except ValueError:
        return None


def format_age(age: datetime.timedelta) -> str:
    seconds = int(age.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
