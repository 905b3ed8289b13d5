"""`server`: config.ini and the pypicloud container (manual steps 3 and 4).

A deploy never takes a working index down for a change that does not work: everything
that can be checked is checked before the running container is touched, and a
replacement that does not answer its health check is removed and the previous
container (with its config.ini) serves again.
"""

from __future__ import annotations

import hashlib
import json
import re

from . import credentials, docker, image, index
from .credentials import Credentials
from .errors import TaskError
from .facts import ContainerFacts, Facts
from .host import Host, host_task, last_lines
from .plan import REDACTED, Change, Command, Plan, Unchanged, file_step
from .render import render, script_argv
from .settings import DATA_DIR, PYPICLOUD_UID, SERVER_PORT, Settings

CONTAINER_CONFIG_DIR = "/etc/pypicloud"  # the image's CMD reads config.ini here
PREVIOUS_SUFFIX = "-previous"  # the container being replaced, while its successor starts
# Lines of config.ini that --dry never shows: password hashes and session keys.
SECRET_LINE = re.compile(r"^(user\.[^=\s]+|session\.(encrypt|validate)_key)(\s*=\s*).*$", re.M)


# -- deciding ------------------------------------------------------------------------------
def render_config(settings: Settings, creds: Credentials) -> bytes:
    return render(
        "config.ini.j2",
        fallback=settings.fallback,
        data_dir=DATA_DIR,
        admins=settings.admins,
        accounts=[{"name": name, "password_hash": creds.password_hashes[name]}
                  for name in settings.accounts],
        session_encrypt_key=creds.session_encrypt_key,
        session_validate_key=creds.session_validate_key,
    )


def redact_config(text: str) -> str:
    return SECRET_LINE.sub(lambda match: f"{match[1]}{match[3]}{REDACTED}", text)


def run_argv(settings: Settings, spec: str | None = None) -> list[str]:
    """`docker run` for the server container, as the manual procedure had it, hardened.

    The config *folder* is mounted, not the file: a file mount whose source went
    missing comes back as a directory Docker made."""
    label = ["--label", f"{docker.SPEC_LABEL}={spec}"] if spec else []
    return [
        "docker", "run", "--detach", *label,
        "--name", settings.server_container,
        "--restart", "unless-stopped",
        "--volume", f"{settings.config_dir}:{CONTAINER_CONFIG_DIR}:ro",
        "--volume", f"{settings.data_volume}:{DATA_DIR}",
        # Only the host (nginx) may reach pypicloud directly.
        "--publish", f"127.0.0.1:{settings.port}:{SERVER_PORT}",
        settings.server_image,
    ]


def container_spec(settings: Settings, image_identity: str, config: bytes) -> str:
    """Hash of everything the container depends on; a change means replace it."""
    payload = json.dumps([run_argv(settings), image_identity, hashlib.sha256(config).hexdigest()])
    return hashlib.sha256(payload.encode()).hexdigest()


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
    return [f"container={name}", f"container={name}{PREVIOUS_SUFFIX}",
            f"text={settings.config_path}", f"volume={settings.data_volume}",
            f"image={settings.server_image}", "ports"]


def check_port(settings: Settings, facts: Facts, current: ContainerFacts | None, host_name: str) -> None:
    """Refuse before anything changes when something else holds the published port."""
    if current is not None and current.running and current.port == settings.port:
        return
    if settings.port in facts.ports:
        raise TaskError(f"port {settings.port} is already in use on {host_name}: stop what "
                        f"listens there or set ppc.port")


def plan_server(settings: Settings, facts: Facts, plan: Plan, creds: Credentials,
                host_name: str) -> None:
    """server.recover (after an interrupted deploy), server.config, server.container."""
    name, previous = settings.server_container, settings.server_container + PREVIOUS_SUFFIX
    current = facts.containers[name]
    interrupted = facts.containers[previous]
    if interrupted is not None:
        plan.add(Change(
            "server.recover", done=f"put back {name}, which an interrupted deploy was replacing",
            would=f"put back {name}, which an interrupted deploy was replacing",
            commands=[*([Command.of("docker", "rm", "--force", name)] if current else []),
                      Command.of(*script_argv("restore-previous", settings.config_path)),
                      Command.of("docker", "rename", previous, name),
                      Command.of("docker", "start", name)],
            run=lambda host: raise_unless_healthy(host, name, "was put back but")))
        current = ContainerFacts(interrupted.spec, True, interrupted.port)
    identity = image.image_identity(settings, facts, plan, settings.server_image, "server")
    if identity is None:
        raise TaskError(f"image {settings.server_image} is missing: run image.build first")
    if facts.volumes[settings.data_volume] == "missing" and not plan.changes("data."):
        raise TaskError(f"the data volume {settings.data_volume} is missing: run data.create first")
    check_port(settings, facts, current, host_name)

    config = render_config(settings, creds)
    # 0600 and owned by the container's user: it holds password hashes and session keys.
    # The file it replaces is kept until the new server answers.
    config_step = file_step("server.config", settings.config_path, config,
                            facts.file(settings.config_path), mode="600",
                            owner=f"{PYPICLOUD_UID}:{PYPICLOUD_UID}", keep_previous=True,
                            redact=redact_config)
    plan.add(config_step)
    spec = container_spec(settings, identity, config)
    action = container_action(current, spec, isinstance(config_step, Change),
                              plan.notified("image.server"))
    if action is None:
        plan.add(Unchanged("server.container", f"{name} is running and up to date"))
    elif action == "start":
        plan.add(Change("server.container", done=f"started {name}", would=f"start {name}",
                        commands=[Command.of("docker", "start", name)],
                        run=lambda host: raise_unless_healthy(host, name, "")))
    else:
        why = action.split(": ", 1)[-1]
        done = f"recreated {name} ({why})" if current else f"created {name}"
        plan.add(Change(
            "server.container", done=f"{done}, answering on 127.0.0.1:{settings.port}",
            would=f"recreate {name}: {why}" if current else f"create {name}",
            run=lambda host: replace_container(host, spec, had_one=current is not None),
            preview=replacement_preview(settings, spec, had_one=current is not None)))


def replacement_preview(settings: Settings, spec: str, had_one: bool) -> list[Command]:
    """What replace_container runs when all goes well, for --dry."""
    name, previous = settings.server_container, settings.server_container + PREVIOUS_SUFFIX
    aside = [Command.of("docker", "stop", "--time", "10", name),
             Command.of("docker", "rename", name, previous)] if had_one else []
    after = [Command.of("docker", "rm", "--force", previous)] if had_one else []
    return [*aside, Command.of(*run_argv(settings, spec)),
            Command.of(*script_argv("wait-healthy", name, str(settings.start_timeout))), *after]


# -- doing ---------------------------------------------------------------------------------
def wait_healthy(host: Host, name: str) -> str | None:
    """None once the server in `name` answers; else why not, with its last log lines."""
    result = host.run(script_argv("wait-healthy", name, str(host.settings.start_timeout)),
                      root=True, check=False)
    if result.ok:
        return None
    reason, _, logs = result.stdout.partition("\n")
    return f"{reason or 'did not start'}; its last log lines: {last_lines(logs, 5) or '(none)'}"


def raise_unless_healthy(host: Host, name: str, context: str) -> None:
    failure = wait_healthy(host, name)
    if failure:
        raise TaskError(f"server container {name} {context + ' ' if context else ''}{failure}")


def replace_container(host: Host, spec: str, had_one: bool) -> None:
    """Start a new server container; keep the previous one (and config.ini) aside until
    the new one answers, and put them back if it does not."""
    settings = host.settings
    name, previous = settings.server_container, settings.server_container + PREVIOUS_SUFFIX
    if had_one:
        # Stopped first: Docker cannot rename a container in a restart loop.
        host.run(["docker", "stop", "--time", "10", name], root=True)
        host.run(["docker", "rename", name, previous], root=True)
    started = host.run(run_argv(settings, spec), root=True, check=False)
    failure = wait_healthy(host, name) if started.ok else last_lines(started.stderr, 1)
    if failure is None:
        if had_one:
            host.run(["docker", "rm", "--force", previous], root=True)
        host.run(["rm", "-f", "--", f"{settings.config_path}.ppc-previous"], root=True)
        return
    host.run(["docker", "rm", "--force", name], root=True, check=False)
    if not had_one:
        raise TaskError(f"server container {name} {failure}")
    host.run(script_argv("restore-previous", settings.config_path), root=True)
    host.run(["docker", "rename", previous, name], root=True)
    host.run(["docker", "start", name], root=True)
    back = wait_healthy(host, name)
    raise TaskError(f"the new server container {failure}; "
                    + ("the previous one serves again" if back is None
                       else f"the previous one was put back but {back}"))


# -- tasks ---------------------------------------------------------------------------------
@host_task
def deploy(host):
    """Write config.ini and run the pypicloud container; restarts only when something changed.

    config.ini (mode 0600) holds the admins' password hashes and the session keys,
    which are generated once and kept on this machine in <state_dir>/<index>/.
    The container is replaced when its image, config.ini or run options change; a
    replacement that does not answer is removed and the previous one serves again.
    The packages stay in the data volume.
    """
    settings = host.settings
    facts = host.read_facts(["platform", "docker", *index.queries(settings), *queries(settings)])
    host.require_docker(facts)
    index.check_identity(host, facts)
    plan = Plan()
    creds, secrets = credentials.prepare(host.settings.secrets_path, host.settings.accounts)
    plan.add(secrets, index.identity_step(host.settings, facts))
    plan_server(host.settings, facts, plan, creds, host.name)
    host.carry_out(plan)


@host_task
def remove(host):
    """Stop and remove the server container; packages stay in the data volume."""
    name = host.settings.server_container
    facts = host.read_facts(["platform", "docker", f"container={name}"])
    host.require_docker(facts)
    plan = Plan()
    if facts.containers[name] is None:
        plan.add(Unchanged("server.container", f"{name} does not exist"))
    else:
        plan.add(Change("server.container", done=f"removed {name}", would=f"remove {name}",
                        commands=[Command.of("docker", "rm", "--force", name)]))
    host.carry_out(plan)
