# Sourced by tests/run and the demo: makes a fresh Debian/Ubuntu machine (as root)
# ready to run ppc-tasks against Docker-in-Docker hosts. Installs only what is missing.

ensure_system_packages() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v docker >/dev/null || missing+=(docker.io)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v ssh-keygen >/dev/null || missing+=(openssh-client)
    python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "==> installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

ensure_docker_running() {
    docker info >/dev/null 2>&1 && return 0
    echo "==> starting dockerd (log: /var/log/dockerd.log)"
    setsid nohup dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && return 0
        sleep 1
    done
    echo "dockerd did not start; see /var/log/dockerd.log" >&2
    tail -n 20 /var/log/dockerd.log >&2
    return 1
}

ensure_virtualenv() {
    if [ ! -x .venv/bin/fab ] || [ pyproject.toml -nt .venv/.installed ]; then
        echo "==> installing ppc-tasks and its test tools into .venv"
        python3 -m venv .venv
        .venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
        touch .venv/.installed
    fi
}

ensure_system_packages
ensure_docker_running
ensure_virtualenv
