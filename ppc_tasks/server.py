"""`server`: config.ini and the pypicloud container (manual steps 3 and 4).

A deploy never takes a working index down for a change that does not work: everything
that can be checked is checked before the running container is touched, and a
replacement that does not answer its health check is removed and the previous
container (with its config.ini) serves again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from . import credentials, docker, index
from .credentials import Credentials
from .errors import TaskError
from .host import Host, host_task, last_lines
from .render import render, script_argv
from .settings import DATA_DIR, PYPICLOUD_UID, SERVER_PORT, Settings

CONTAINER_CONFIG_DIR = "/etc/pypicloud"  # the image's CMD reads config.ini here
PREVIOUS_SUFFIX = "-previous"  # the container being replaced, while its successor starts
STATE_TEMPLATE = (f"{docker.label_template(docker.SPEC_LABEL)}|{{{{.State.Running}}}}|"
                  "{{range $port, $bindings := .HostConfig.PortBindings}}"
                  "{{range $bindings}}{{.HostPort}}{{end}}{{end}}")


@dataclass(frozen=True)
class ContainerState:
    spec: str  # the spec label it was created with ("" for one ppc-tasks did not make)
    running: bool
    port: int | None  # the host port it publishes


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


def container_spec(settings: Settings, image_id: str, config: bytes) -> str:
    """Hash of everything the container depends on; a change means replace it."""
    payload = json.dumps([run_argv(settings), image_id, hashlib.sha256(config).hexdigest()])
    return hashlib.sha256(payload.encode()).hexdigest()


def parse_container_state(output: str | None) -> ContainerState | None:
    if output is None:
        return None
    spec, running, port = (output.split("|") + ["", ""])[:3]
    return ContainerState(spec=spec, running=running == "true",
                          port=int(port) if port.isdigit() else None)


def container_action(current: ContainerState | None, spec: str, config_changed: bool) -> str | None:
    """What the container needs: "create", "replace: <why>", "start", or None."""
    if current is None:
        return "create"
    if config_changed:
        return "replace: config.ini changed"
    if current.spec != spec:
        return "replace: its image or options changed"
    if not current.running:
        return "start"
    return None


def listening_ports(proc_net_tcp: str) -> set[int]:
    """TCP ports in LISTEN state, from /proc/net/tcp and /proc/net/tcp6 (no ss needed)."""
    ports = set()
    for line in proc_net_tcp.splitlines():
        columns = line.split()
        if len(columns) > 3 and columns[3] == "0A" and ":" in columns[1]:
            ports.add(int(columns[1].rsplit(":", 1)[1], 16))
    return ports


# -- doing ---------------------------------------------------------------------------------
def load_credentials(host: Host) -> Credentials:
    """The index's passwords and session keys from the operator's machine; made on first use."""
    path = host.settings.secrets_path
    creds, generated = credentials.ensure(path, host.settings.accounts)
    for user in generated:
        host.note(f"generated a password for {user!r}: it is in {path} (mode 0600)")
    return creds


def container_state(host: Host, name: str) -> ContainerState | None:
    return parse_container_state(docker.inspect(host, "container", name, STATE_TEMPLATE))


def check_port_free(host: Host) -> None:
    """Fail before anything changes when something other than our container holds the port."""
    settings = host.settings
    current = container_state(host, settings.server_container)
    if current is not None and current.running and current.port == settings.port:
        return
    ports = listening_ports(host.run(["cat", "/proc/net/tcp", "/proc/net/tcp6"], check=False).stdout)
    if settings.port in ports:
        raise TaskError(f"port {settings.port} is already in use on {host.name}: stop what "
                        f"listens there or set ppc.port")


def recover_interrupted_replacement(host: Host) -> None:
    """A deploy killed while replacing the server leaves the old one aside: put it back."""
    name = host.settings.server_container
    previous = name + PREVIOUS_SUFFIX
    if docker.inspect(host, "container", previous, "{{.Id}}") is None:
        return
    host.run(["docker", "rm", "--force", name], root=True, check=False)
    host.restore_previous(host.settings.config_path)
    host.run(["docker", "rename", previous, name], root=True)
    host.run(["docker", "start", name], root=True)
    failure = wait_healthy(host, name)
    if failure:
        raise TaskError(f"put back {name}, which an interrupted deploy was replacing, but it {failure}")
    host.report("server.recover", True, f"put back {name}, which an interrupted deploy was replacing")


def write_config(host: Host, config: bytes) -> bool:
    # 0600 and owned by the container's user: it holds password hashes and session keys.
    # The file it replaces is kept until the new server answers.
    changed = host.put(host.settings.config_path, config, mode="600",
                       owner=f"{PYPICLOUD_UID}:{PYPICLOUD_UID}", keep_previous=True)
    host.report("server.config", changed, host.settings.config_path)
    return changed


def wait_healthy(host: Host, name: str) -> str | None:
    """None once the server in `name` answers; else why not, with its last log lines."""
    result = host.run(script_argv("wait-healthy", name, str(host.settings.start_timeout)),
                      root=True, check=False)
    if result.ok:
        return None
    reason, _, logs = result.stdout.partition("\n")
    return f"{reason or 'did not start'}; its last log lines: {last_lines(logs, 5) or '(none)'}"


def replace_container(host: Host, spec: str, had_one: bool, why: str) -> None:
    """Start a new server container; keep the previous one aside until the new one answers."""
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
        host.forget_previous(settings.config_path)
        host.report("server.container", True,
                    f"{why}, answering on 127.0.0.1:{settings.port}")
        return
    host.run(["docker", "rm", "--force", name], root=True, check=False)
    if not had_one:
        raise TaskError(f"server container {name} {failure}")
    host.restore_previous(settings.config_path)
    host.run(["docker", "rename", previous, name], root=True)
    host.run(["docker", "start", name], root=True)
    back = wait_healthy(host, name)
    raise TaskError(f"the new server container {failure}; "
                    + ("the previous one serves again" if back is None
                       else f"the previous one was put back but {back}"))


def deploy_server(host: Host, creds: Credentials) -> None:
    settings = host.settings
    name = settings.server_container
    recover_interrupted_replacement(host)
    image_id = docker.inspect(host, "image", settings.server_image, "{{.Id}}")
    if image_id is None:
        raise TaskError(f"image {settings.server_image} is missing: run image.build first")
    if docker.inspect(host, "volume", settings.data_volume, "{{.Name}}") is None:
        raise TaskError(f"the data volume {settings.data_volume} is missing: run data.create first")
    check_port_free(host)
    config = render_config(settings, creds)
    config_changed = write_config(host, config)
    spec = container_spec(settings, image_id, config)
    current = container_state(host, name)
    action = container_action(current, spec, config_changed)
    if action is None:
        host.report("server.container", False, f"{name} is running and up to date")
    elif action == "start":
        host.run(["docker", "start", name], root=True)
        failure = wait_healthy(host, name)
        if failure:
            raise TaskError(f"server container {name} {failure}")
        host.report("server.container", True, f"started {name}")
    else:
        why = f"recreated {name} ({action.split(': ', 1)[1]})" if current else f"created {name}"
        replace_container(host, spec, current is not None, why)


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
    index.check_identity(host)
    creds = load_credentials(host)
    index.record_identity(host)
    deploy_server(host, creds)


@host_task
def remove(host):
    """Stop and remove the server container; packages stay in the data volume."""
    name = host.settings.server_container
    if docker.inspect(host, "container", name, "{{.Id}}") is None:
        host.report("server.container", False, f"{name} does not exist")
        return
    host.run(["docker", "rm", "--force", name], root=True)
    host.report("server.container", True, f"removed {name}")
