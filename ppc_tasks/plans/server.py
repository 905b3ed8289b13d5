"""What `server` decides, from the settings and a host's facts alone: the facts it
asks for, its steps and what they render (its tasks: ppc_tasks/server.py)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from .. import credentials, docker
from ..config_ini import redact_config, render_config, with_todays_accounts_and_rules
from ..credentials import Credentials
from ..errors import TaskError
from ..facts import (
    CONTAINER,
    FILE,
    PORTS,
    TEXT,
    UID,
    VOLUME,
    ContainerFacts,
    Facts,
)
from ..plan import (
    Change,
    Command,
    Handler,
    HealthGate,
    Step,
    Unchanged,
    file_step,
)
from ..render import script_argv
from ..settings import DATA_DIR, PYPICLOUD_UID, SERVER_PORT, Settings
from . import image, nginx

CONTAINER_CONFIG_DIR = "/etc/pypicloud"  # the image's CMD reads config.ini here
NEXT_SUFFIX = "-next"  # a replacement, until nginx serves from it
SERVER_STARTED = "server.started"  # what a new or started server container notifies
RECORDS_PENDING = "/etc/ppc-tasks/records-pending"  # a records run that has not finished
PREVIOUS_SUFFIX = "-previous"  # how releases before blue/green set the live one aside
# At most this long for requests nginx's old workers still forward to a retiring server.
DRAIN_SECONDS = 120
# What the last replacement retired (config.ini, and "IMAGE|SPEC"): `rollback` returns to it.
ROLLBACK_DIR = "/etc/ppc-tasks/rollback"
ROLLBACK_CONFIG, ROLLBACK_CONTAINER = f"{ROLLBACK_DIR}/config.ini", f"{ROLLBACK_DIR}/container"


@dataclass
class Serving:
    """The server's steps, and what they leave for the steps after them."""

    port: int  # where the server answers once the plan ran: nginx's upstream
    steps: list[Step]  # server.recover, server.config, server.container
    retire: Change | None = None  # the last step: remove the container nginx left

    def in_order(self, switch: list[Step], records: Step | None = None) -> list[Step]:
        """The one order of a replacement (deploy, server.deploy, storage.migrate,
        rollback): the new server answers; nginx switches to it (after what must be in
        place first, such as its certificate); the old one is retired once nginx's old
        workers are done; then the server records what it serves."""
        return [*self.steps, *switch, *[step for step in (self.retire, records) if step]]


# -- deciding ------------------------------------------------------------------------------
def run_argv(settings: Settings, image_ref: str, spec: str | None = None, *, name: str = "",
             port: int = 0) -> list[str]:
    """`docker run` for the server container, as the manual procedure had it, hardened.

    The config *folder* is mounted, not the file: a file mount whose source went
    missing comes back as a directory Docker made."""
    label = ["--label", f"{docker.SPEC_LABEL}={spec}"] if spec else []
    memory = settings.server_memory
    limit = ["--memory", str(memory), "--memory-swap", str(memory)] if memory else []
    return [
        "docker", "run", "--detach", *label,
        "--name", name or settings.server_container,
        "--restart", "unless-stopped", *limit,
        "--volume", f"{settings.config_dir}:{CONTAINER_CONFIG_DIR}:ro",
        "--volume", f"{settings.data_volume}:{DATA_DIR}",
        # Only the host (nginx) may reach pypicloud directly.
        "--publish", f"127.0.0.1:{port or settings.port}:{SERVER_PORT}",
        image_ref,
    ]


def container_spec(settings: Settings, image_ref: str, image_identity: str, config: bytes) -> str:
    """Hash of everything the container depends on; a change means replace it. Taken
    with the container's own name and `port`, whichever of the two it runs on."""
    payload = json.dumps([run_argv(settings, image_ref), image_identity,
                          hashlib.sha256(config).hexdigest()])
    return hashlib.sha256(payload.encode()).hexdigest()


def replacement_port(settings: Settings, live: ContainerFacts) -> int:
    """The loopback port a replacement starts on: of `port` and `port + 1`, the one the
    live container does not publish."""
    return settings.port + 1 if live.port == settings.port else settings.port


def container_action(current: ContainerFacts | None, spec: str, config_changed: bool,
                     image_rebuilt: bool = False) -> str | None:
    """What the container needs: "create", "replace: <why>", "start", or None."""
    if current is None:
        return "create"
    if config_changed:
        return "replace: config.ini changed"
    if image_rebuilt:
        return "replace: its image was rebuilt"
    if current.spec != spec:
        return "replace: its image or options changed"
    if not current.running:
        return "start"
    return None


def queries(settings: Settings) -> list[str]:
    name = settings.server_container
    return [CONTAINER.query(name), CONTAINER.query(f"{name}{NEXT_SUFFIX}"),
            CONTAINER.query(f"{name}{PREVIOUS_SUFFIX}"), TEXT.query(settings.config_path),
            VOLUME.query(settings.data_volume), *image.queries(settings), PORTS.query(),
            TEXT.query(ROLLBACK_CONTAINER), UID.query(PYPICLOUD_UID), FILE.query(RECORDS_PENDING),
            *nginx.queries(settings)]


def refuse_shared_uid(facts: Facts, host_name: str) -> None:
    """config.ini (every password hash, the session keys, the services' secrets) and the
    packages belong to the server image's uid: an account of the host with that uid
    could read and change them all."""
    accounts = facts.uid_accounts.get(PYPICLOUD_UID, ())
    if accounts:
        raise TaskError(f"the account {accounts[0]!r} on {host_name} has uid {PYPICLOUD_UID}, "
                        f"which owns config.ini (password hashes, session keys) and the "
                        f"packages: give it another uid (usermod -u) and run again")


def check_port_free(settings: Settings, ports_in_use: set[int], port: int,
                    host_name: str) -> None:
    """Refuse before anything changes when something else holds the port a new
    container needs."""
    if port in ports_in_use:
        raise TaskError(f"port {port} is already in use on {host_name}: the index's server "
                        f"runs on port {settings.port} or {settings.port + 1}; stop what "
                        f"listens there or set ppc.port")


def plan_recovery(settings: Settings,
                  facts: Facts) -> tuple[list[Step], ContainerFacts | None, set[int]]:
    """Finish or undo what an interrupted deploy left: its steps, the live container
    after them, and the ports they free."""
    steps: list[Step] = []
    name = settings.server_container
    live, candidate = facts.containers[name], facts.containers[name + NEXT_SUFFIX]
    previous = facts.containers[name + PREVIOUS_SUFFIX]
    if candidate is not None and candidate.running and candidate.port == nginx.forwarded_port(facts):
        steps.append(Change(
            "server.recover", done=f"finished the switch to {name}{NEXT_SUFFIX}, which an "
                                   f"interrupted deploy had made", would=f"finish the switch "
            f"to {name}{NEXT_SUFFIX}, which an interrupted deploy had made",
            # The run may have stopped between writing the site and reloading nginx.
            commands=[*([nginx.reload_command(settings, facts)] if facts.nginx and facts.nginx[1] else []),
                      Command.of(*retire_argv(settings, name + NEXT_SUFFIX))]))
        return steps, candidate, {live.port} if live else set()
    if candidate is not None:
        # config.ini may already be the new one: the replacement below starts with it.
        steps.append(Change(
            "server.recover", done=f"removed {name}{NEXT_SUFFIX}, which an interrupted deploy "
                                   f"was starting",
            would=f"remove {name}{NEXT_SUFFIX}, which an interrupted deploy was starting",
            commands=[Command.of("docker", "rm", "--force", name + NEXT_SUFFIX)]))
    freed = {candidate.port} if candidate else set()
    if previous is not None:  # left by a release before blue/green
        steps.append(Change(
            "server.recover", done=f"put back {name}, which an interrupted deploy was replacing",
            would=f"put back {name}, which an interrupted deploy was replacing",
            commands=[*([Command.of("docker", "rm", "--force", name)] if live else []),
                      Command.of(*script_argv("restore-previous", settings.config_path)),
                      Command.of("docker", "rename", name + PREVIOUS_SUFFIX, name),
                      Command.of("docker", "start", name)],
            gate=health_gate(settings, name, f"server container {name} was put back but {{why}}")))
        return steps, ContainerFacts(previous.spec, True, previous.port), freed
    return steps, live, freed


def plan_server(settings: Settings, facts: Facts, creds: Credentials, host_name: str, *,
                image_built: bool = False, data_made: bool = False) -> Serving:
    """server.recover (after an interrupted deploy), server.config, server.container; a
    replacement's server.retire is for the caller to add once nginx is switched.
    image_built: the plan builds the server image first; data_made: it makes the data
    volume first."""
    name = settings.server_container
    refuse_shared_uid(facts, host_name)
    steps, live, freed = plan_recovery(settings, facts)
    server_image = image.server_image(settings, facts, building=image_built)
    if server_image is None:
        raise TaskError(f"image {settings.server_image} is missing: run image.build first")
    image_ref, identity = server_image
    if facts.volumes[settings.data_volume] == "missing" and not data_made:
        raise TaskError(f"the data volume {settings.data_volume} is missing: run data.create first")

    config = render_config(settings, creds)
    config_step = config_file_step(settings, facts, config)
    spec = container_spec(settings, image_ref, identity, config)
    action = container_action(live, spec, isinstance(config_step, Change), image_built)
    if action is None:
        return Serving(live.port, [*steps, config_step, Unchanged(
            "server.container", f"{name} is running and up to date")])
    if action == "start":
        return Serving(live.port, [*steps, config_step, Change(
            "server.container", done=f"started {name}", would=f"start {name}",
            commands=[Command.of("docker", "start", name)], gate=health_gate(settings, name),
            notifies=(SERVER_STARTED,))])
    login = credentials.login_line(settings, creds)
    if live is None:
        check_port_free(settings, facts.ports - freed, settings.port, host_name)
        return Serving(settings.port, [*steps, config_step, Change(
            "server.container", done=f"created {name}, answering on 127.0.0.1:{settings.port}",
            would=f"create {name}", commands=[Command.of(*run_argv(settings, image_ref, spec))],
            gate=health_gate(settings, name, login=login), notifies=(SERVER_STARTED,))])
    why = action.split(": ", 1)[1]
    return plan_replacement(settings, facts.ports - freed, [*steps, config_step], live, image_ref,
                            spec, login, f"recreated {name} ({why})", f"recreate {name}: {why}",
                            host_name)


def config_file_step(settings: Settings, facts: Facts, config: bytes) -> Step:
    # 0600 and owned by the container's user: it holds password hashes and session keys.
    # The file it replaces is kept until the new server answers.
    return file_step("server.config", settings.config_path, config,
                     facts.file(settings.config_path), mode="600",
                     owner=f"{PYPICLOUD_UID}:{PYPICLOUD_UID}", keep_previous=True,
                     redact=redact_config)


def plan_replacement(settings: Settings, ports_in_use: set[int], steps: list[Step],
                     live: ContainerFacts, image_ref: str, spec: str, login: bytes, done: str,
                     would: str, host_name: str) -> Serving:
    """After `steps`, server.container: the replacement starts beside the live one and
    must answer; and server.retire, for the caller to add once nginx serves from it."""
    name, next_name = settings.server_container, settings.server_container + NEXT_SUFFIX
    port = replacement_port(settings, live)
    check_port_free(settings, ports_in_use, port, host_name)
    kept = "the running one kept serving, with its config.ini"
    replacement = Change(
        "server.container", done=f"{done}: {next_name} answers on 127.0.0.1:{port}",
        would=f"{would}; {next_name} starts beside it on 127.0.0.1:{port}",
        commands=[Command.of(*run_argv(settings, image_ref, spec, name=next_name, port=port),
                             failure=f"the new server container did not start: {{output}}; {kept}")],
        gate=health_gate(settings, next_name, f"the new server container {{why}}; {kept}", login),
        notifies=(SERVER_STARTED,),
        # A replacement that does not answer goes, and config.ini is put back: the live
        # container never stopped serving.
        undo=[Command.of("docker", "rm", "--force", next_name),
              Command.of(*script_argv("restore-previous", settings.config_path))])
    return Serving(port, [*steps, replacement], Change(
        "server.retire", done=f"removed the old {name} (kept for rollback); {next_name} is "
                              f"{name} now",
        would=f"remove the old {name} once nginx's old workers are done, keeping what it ran "
              f"for rollback; rename {next_name}",
        commands=[Command.of(*retire_argv(settings, next_name))]))


def plan_records(settings: Settings, facts: Facts, data_made: bool = False) -> Step:
    """server.records, once the server serves: the size and core metadata (PEP 658) of
    every stored file, which the simple API lists and serves. An upload records its
    file; a server that starts (new, upgraded, or with another cache) reads the files it
    finds without a record, once; so does the next deploy after a run that could not
    finish (RECORDS_PENDING stays until one does)."""
    if data_made:
        return Unchanged("server.records", "a new index: each file is recorded as it is uploaded")
    if facts.file(RECORDS_PENDING).state is None:
        otherwise: Step = Unchanged("server.records", "every stored file has its size and core metadata")
    else:
        otherwise = records_change(
            settings, "recorded the size and core metadata of the files a run before could not read",
            "read the stored files a run before could not, for their size and core metadata")
    return Handler("server.records", SERVER_STARTED, records_change(
        settings, "recorded the size and core metadata of any stored file without them, as "
                  "the new server sees the index",
        "read any stored file without its size and core metadata, once the new server serves"),
        otherwise)


def require_running(settings: Settings, facts: Facts) -> None:
    """Tasks that ask the index itself (yanks, tokens) need its server up."""
    live = facts.containers[settings.server_container]
    if live is None or not live.running:
        raise TaskError(f"the index's server ({settings.server_container}) is not running: "
                        f"deploy first")


def guard_argv(settings: Settings, *arguments: str) -> list[str]:
    """ppc-guard in the server container, reading stdin: the index's own code answers."""
    return ["docker", "exec", "-i", settings.server_container, "ppc-guard", *arguments]


def records_change(settings: Settings, done: str, would: str) -> Change:
    """server.records: ppc-guard in the server container reads every stored file without
    a record, each committed on its own; RECORDS_PENDING marks the run until it is done."""
    return Change("server.records", done=done, would=would, commands=[
        Command.of("install", "-D", "-m", "644", "/dev/null", RECORDS_PENDING),
        Command.of("docker", "exec", settings.server_container, "ppc-guard", "record",
                   failure="the index serves, but some stored files could not be read (the "
                           "next deploy tries them again): {output}"),
        Command.of("rm", "-f", RECORDS_PENDING)])


def retire_argv(settings: Settings, next_name: str) -> list[str]:
    """files/sh/retire.sh: the old container out once nginx's old workers are done."""
    return script_argv("retire", settings.server_container, next_name, settings.config_path,
                       ROLLBACK_DIR, str(DRAIN_SECONDS), docker.SPEC_LABEL,
                       str(docker.CONTENT_TAG_WIDTH))


def rollback_target(facts: Facts) -> tuple[str, str] | None:
    """(image, spec) of what the last replacement retired, if it kept one."""
    record = (facts.file(ROLLBACK_CONTAINER).content or b"").decode().strip()
    image_ref, _, spec = record.partition("|")
    return (image_ref, spec) if image_ref and spec else None


def rollback_queries(settings: Settings) -> list[str]:
    """What plan_rollback reads: the server's facts and the config.ini it would go back to
    (the retired image's own facts are asked once its name is known: rollback_target)."""
    return [*queries(settings), TEXT.query(ROLLBACK_CONFIG)]


def plan_rollback(settings: Settings, facts: Facts, creds: Credentials,
                  host_name: str) -> Serving:
    """server.config and server.container back to what the last replacement retired,
    with the same switch as a deploy; what runs now becomes the rollback target."""
    refuse_shared_uid(facts, host_name)
    steps, live, freed = plan_recovery(settings, facts)
    target = rollback_target(facts)
    config = facts.file(ROLLBACK_CONFIG).content
    if live is None:
        raise TaskError(f"there is no server container on {host_name}: deploy first")
    if target is None or config is None:
        raise TaskError(f"there is nothing to roll back to on {host_name}: a deploy that "
                        f"replaces the server keeps what it replaced")
    image_ref = target[0]
    if facts.images.get(image_ref) is None:
        raise TaskError(f"the rollback target's image {image_ref} is no longer on {host_name}")
    config = with_todays_accounts_and_rules(config, settings, creds)
    config_step = config_file_step(settings, facts, config)
    # What it starts: the target's image, run as today's settings run the server, with
    # that config.ini; labelled as such, so that a deploy of the same changes nothing.
    spec = container_spec(settings, image_ref, facts.images[image_ref].context, config)
    if live.spec == spec and not isinstance(config_step, Change):
        return Serving(live.port, [*steps, config_step, Unchanged(
            "server.container", f"{settings.server_container} runs the rollback target")])
    return plan_replacement(settings, facts.ports - freed, [*steps, config_step], live,
                            image_ref, spec, credentials.login_line(settings, creds),
                            f"rolled back to {image_ref}",
                            f"roll back to {image_ref} and its config.ini", host_name)


def health_gate(settings: Settings, name: str, failure: str = "", login: bytes = b"") -> HealthGate:
    """The server in `name` must answer within start_timeout (with a login, an admin's
    authenticated request too)."""
    return HealthGate(name, settings.start_timeout, failure or f"server container {name} {{why}}",
                      login)
