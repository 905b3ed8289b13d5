"""`server`: config.ini and the pypicloud container (manual steps 3 and 4)."""

from __future__ import annotations

import hashlib
import json
import shlex
import time

from . import credentials, docker
from .credentials import Credentials
from .host import Host, TaskError, host_task, last_lines
from .render import render
from .settings import DATA_DIR, PYPICLOUD_UID, SERVER_PORT, Settings

CONTAINER_CONFIG_PATH = "/etc/pypicloud/config.ini"  # where the image's CMD reads it


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


def run_argv(settings: Settings) -> list[str]:
    """`docker run` for the server container, as the manual procedure had it, hardened."""
    return [
        "docker", "run", "--detach",
        "--name", settings.server_container,
        "--restart", "unless-stopped",
        "--volume", f"{settings.config_path}:{CONTAINER_CONFIG_PATH}:ro",
        "--volumes-from", settings.data_container,
        # Only the host (nginx) may reach pypicloud directly.
        "--publish", f"127.0.0.1:{settings.port}:{SERVER_PORT}",
        settings.server_image,
    ]


def container_spec(settings: Settings, image_id: str, config: bytes) -> str:
    """Hash of everything the running container depends on; a change means recreate."""
    payload = json.dumps([run_argv(settings), image_id, hashlib.sha256(config).hexdigest()])
    return hashlib.sha256(payload.encode()).hexdigest()


def run_command(settings: Settings, spec: str) -> str:
    argv = run_argv(settings)
    return shlex.join(argv[:2] + ["--label", f"{docker.SPEC_LABEL}={spec}"] + argv[2:])


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


def write_config(host: Host) -> bytes:
    config = render_config(host.settings, load_credentials(host))
    # 0600 and owned by the container's user: it holds password hashes and session keys.
    changed = host.put(host.settings.config_path, config, mode="600",
                       owner=f"{PYPICLOUD_UID}:{PYPICLOUD_UID}")
    host.report("server.config", changed, host.settings.config_path)
    return config


def check_port_free(host: Host) -> None:
    """Fail early when something other than our container holds the published port."""
    settings = host.settings
    if docker.inspect(host, "container", settings.server_container, "{{.State.Running}}") == "true":
        return
    ports = listening_ports(host.run("cat /proc/net/tcp /proc/net/tcp6", check=False).stdout)
    if settings.port in ports:
        raise TaskError(f"port {settings.port} is already in use on {host.name}: stop what "
                        f"listens there or set ppc.port")


def ensure_server_container(host: Host, config: bytes) -> None:
    settings = host.settings
    name = settings.server_container
    image_id = docker.inspect(host, "image", settings.server_image, "{{.Id}}")
    if image_id is None:
        raise TaskError(f"image {settings.server_image} is missing: run image.build first")
    if docker.inspect(host, "container", settings.data_container, "{{.Id}}") is None:
        raise TaskError(f"data container {settings.data_container} is missing: run data.create first")
    spec = container_spec(settings, image_id, config)
    current = docker.inspect(host, "container", name,
                             f"{docker.label_template(docker.SPEC_LABEL)} {{{{.State.Running}}}}")
    if current == f"{spec} true":
        host.report("server.container", False, f"{name} is running and up to date")
        return
    if current is not None and current.split()[0] == spec:
        host.sudo(shlex.join(["docker", "start", name]))
        action = "started"
    else:
        if current is not None:
            host.sudo(shlex.join(["docker", "rm", "--force", name]))
        check_port_free(host)
        host.sudo(run_command(settings, spec))
        action = "recreated" if current is not None else "created"
    wait_until_answering(host)
    host.report("server.container", True, f"{action} {name}, answering on 127.0.0.1:{settings.port}")


def wait_until_answering(host: Host) -> None:
    settings = host.settings
    name = settings.server_container
    deadline = time.monotonic() + settings.start_timeout
    while True:
        if host.sudo(shlex.join(["docker", "exec", name, "pypicloud-health"]), check=False).ok:
            return
        running = docker.inspect(host, "container", name, "{{.State.Running}}")
        if running != "true" or time.monotonic() > deadline:
            logs = host.sudo(shlex.join(["docker", "logs", "--tail", "5", name]), check=False)
            state = "stopped" if running != "true" else f"did not answer within {settings.start_timeout}s"
            raise TaskError(f"server container {name} {state}; its last log lines: "
                            f"{last_lines(logs.stdout + logs.stderr, 5)}")
        time.sleep(1)


def deploy_server(host: Host) -> None:
    config = write_config(host)
    ensure_server_container(host, config)


# -- tasks ---------------------------------------------------------------------------------
@host_task
def deploy(host):
    """Write config.ini and run the pypicloud container; restarts only when something changed.

    config.ini (mode 0600) holds the admins' password hashes and the session keys,
    which are generated once and kept on this machine in <state_dir>/<server name>/.
    The container is recreated when its image, config.ini or run options change; the
    packages stay in the data container.
    """
    deploy_server(host)


@host_task
def remove(host):
    """Stop and remove the server container; packages stay in the data container."""
    name = host.settings.server_container
    if docker.inspect(host, "container", name, "{{.Id}}") is None:
        host.report("server.container", False, f"{name} does not exist")
        return
    host.sudo(shlex.join(["docker", "rm", "--force", name]))
    host.report("server.container", True, f"removed {name}")
