"""`deploy`: the whole server, in the order of the manual procedure; `rollback`: back
to the server the last replacement retired; `storage.migrate`: a deploy that first
copies the file store into S3."""

from __future__ import annotations

import datetime
import sys

from . import credentials, index, local, tls_paths
from .apply import Host
from .errors import TaskError, program
from .facts import DOCKER, IMAGE, PLATFORM, Facts
from .plan import Plan
from .plans import nginx, server
from .plans.bootstrap import plan_docker
from .plans.deploy import plan_deploy, queries
from .settings import SettingsError
from .wiring import host_task


def confirm_first_names(settings, *, name_from_host=False, **_) -> None:
    """A first deploy fixes the index's names for good: never the -H alias unless the
    operator says so (interactively, or with --name-from-host)."""
    if not settings.names_from_host or name_from_host or settings.server_state_dir.exists():
        return
    if sys.stdin.isatty():
        answer = input(f"No server_names are set: name the index {settings.index_name} for "
                       f"good (its CA will sign for that name only)? [y/N] ")
        if answer.strip().lower() in ("y", "yes"):
            return
    raise SettingsError(f"ppc.server_names: set the names clients will use (a first deploy "
                        f"fixes them: the CA signs for them only), or take "
                        f"{settings.index_name} with deploy --name-from-host")


@host_task(preflight=confirm_first_names, option_help={
    "bootstrap": "first install the Docker engine where it is missing (as host.bootstrap)",
    "name_from_host": "on a first deploy without server_names, name the index after the "
                      "-H host, for good",
    "new_identity": "make a new CA and passwords for an index whose own are not on this "
                    "machine (every client must be configured again)",
    "skip_build": "use the images already on the host"})
def deploy(host, skip_build=False, rebuild=False, new_identity=False, verbose=False,
           bootstrap=False, name_from_host=False):  # name_from_host: for the preflight
    """Turn the host into an HTTPS package index: images, data, server, TLS, nginx.

    Every step is skipped when already done; the recap counts what changed and says
    where the admin passwords and the CA certificate are on this machine. Docker and
    nginx are enabled at boot (with systemd), so the index comes back by itself after
    a reboot. --skip-build uses the images already on the host; --rebuild rebuilds
    them from scratch; --verbose shows the image builds' own output; --bootstrap
    first installs the Docker engine where it is missing (as host.bootstrap). With
    --dry, shows what would change (diffs, commands) and changes nothing.

    Example: ppc -H pypi-internal deploy --bootstrap

    A first deploy names the index for good (its CA signs for its names only): it takes
    them from server_names, or, with none set, asks to take the -H host's name (or
    takes it with --name-from-host).

    The index keeps its CA and passwords when names are reordered, or added where the
    CA may sign for them (by default, ca_name_constraints, only the first deploy's names
    and names under them). For a new name it may not sign for, or a host that serves an
    index whose CA and passwords are not on this machine, deploy refuses;
    --new-identity makes new ones (the old ones are set aside, never deleted; every
    client must then be configured again).
    """
    host.verbose = verbose
    facts = host.read_facts(queries(host.settings))
    if bootstrap and facts.docker != "running":
        first = Plan()
        first.add(plan_docker(facts, host.name))
        host.carry_out(first)
        if host.dry:
            host.note("the rest of the deploy is planned once the Docker engine runs")
            return
        facts = host.gather(queries(host.settings))
    carry_out_deploy(host, facts, skip_build=skip_build, rebuild=rebuild,
                     new_identity=new_identity)


def carry_out_deploy(host: Host, facts: Facts, *, new_identity: bool = False, **options) -> None:
    """deploy's (and storage.migrate's) work once the facts are in: check, plan, apply."""
    host.require_docker(facts)
    facts = index.settle(host, facts, queries, new_identity)
    here = local.read(host.settings)  # what this machine holds for the index, read once
    new_client_account = credentials.client_account_is_new(host.settings, here.credentials)
    # Everything is decided before anything changes: a refusal leaves host and here as they were.
    plan = plan_deploy(host.settings, facts, datetime.datetime.now(datetime.timezone.utc),
                       host.name, here=here, new_identity=new_identity, **options)
    host.carry_out(plan)
    recap(host, new_client_account)


@host_task(name="rollback")
def rollback(host):
    """Go back to the server the last replacement retired: its image and config.ini.

    Without downtime, as a deploy replaces: the previous server starts beside the
    running one, must answer (an admin's login too), nginx switches to it, and what ran
    until now becomes the rollback target (a second rollback goes forward again). The
    next deploy puts back what the settings say.
    """
    settings = host.settings
    facts = host.read_facts([PLATFORM.query(), DOCKER.query(), *server.rollback_queries(settings)])
    host.require_docker(facts)
    target = server.rollback_target(facts)
    if target is not None:  # is its image still there? (named only in the record)
        facts.images.update(host.gather([IMAGE.query(target[0])]).images)
    creds = credentials.admin_credentials(settings, "roll back")
    plan = Plan()
    serving = server.plan_rollback(settings, facts, creds, host.name)
    plan.add(*serving.in_order(nginx.plan_switch(settings, facts, serving.port)))
    host.carry_out(plan)


@host_task(name="storage.migrate")
def migrate_storage(host):
    """Move the index's packages from its file store into S3, then switch the server to it.

    Set the S3 settings first (ppc.storage = s3, s3_bucket, ...; the secret key in
    PPC_S3_SECRET_ACCESS_KEY for this run). pypicloud's ppc-migrate copies every
    package and its metadata into the bucket; then the server is replaced by one on S3
    without downtime, as a deploy replaces it. The file store stays in the data volume
    until you remove it. Running it again changes nothing.
    """
    if host.settings.storage != "s3":
        raise TaskError("ppc.storage: set it to s3 (and the bucket's settings) to move the "
                        "packages into S3")
    carry_out_deploy(host, host.read_facts(queries(host.settings)), migrate_storage=True)


def recap(host: Host, new_client_account: bool = False) -> None:
    settings = host.settings
    host.note(f"index:       {settings.index_url}")
    host.note(f"admins:      {', '.join(settings.admins)}; passwords in "
              f"{settings.secrets_path}")
    if new_client_account:
        host.note(f"clients:     the account {settings.client_user!r} is new: run "
                  f"`{program()} -H DEV1,DEV2,... clients.configure` again, so that developer machines "
                  f"use it instead of an admin's password; then change the admin passwords "
                  f"they held (delete them from {settings.secrets_path} and deploy)")
    ca = tls_paths.ca_path(settings)
    if ca:
        host.note(f"CA:          {ca} (clients.configure puts it on developer machines)")
