# facts.sh CONTEXT_LABEL SPEC_LABEL QUERY...: everything a task decides from, read in one
# round trip, changing nothing. The labels are those ppc-tasks puts on its images and on
# the server container (ppc_tasks/docker.py). Each QUERY is KIND or KIND=VALUE; each
# answer is one line of tab-separated fields, KIND VALUE ANSWER... (see
# ppc_tasks/facts.py). Values never hold tabs or newlines: paths and names are
# validated, file contents are base64.
set -u
context_label=$1 spec_label=$2
shift 2
tab=$(printf '\t')

answer() {  # answer FIELD...: one line, fields joined by tabs
    line=$1; shift
    for field in "$@"; do line="$line$tab$field"; done
    printf '%s\n' "$line"
}

# GNU tools on Linux; BSD ones on a developer's Mac.
mode_owner() { stat -c '%a %u:%g' -- "$1" 2>/dev/null || stat -f '%Lp %u:%g' -- "$1"; }
sha256() { if command -v sha256sum >/dev/null 2>&1; then sha256sum; else shasum -a 256; fi; }

file_state() {  # missing | directory | MODE UID:GID SHA256
    if [ -d "$1" ]; then echo directory
    elif [ -f "$1" ]; then echo "$(mode_owner "$1") $(sha256 < "$1" | cut -d' ' -f1)"
    else echo missing
    fi
}

home_path() {  # a leading ~/ means the connecting user's home
    case "$1" in "~/"*) printf '%s/%s' "$HOME" "${1#"~/"}" ;; *) printf '%s' "$1" ;; esac
}

tool_path() {  # on PATH, or where uv's and pipx's installers put it (off a non-login PATH)
    command -v "$1" 2>/dev/null && return
    for dir in "$HOME/.local/bin" "$HOME/.cargo/bin"; do
        [ -x "$dir/$1" ] && { printf '%s\n' "$dir/$1"; return; }
    done
    return 1
}

docker_state=""
docker_answers() {  # asked once: each docker command costs tens of milliseconds
    if [ -z "$docker_state" ]; then
        if ! command -v docker >/dev/null 2>&1; then docker_state=missing
        elif docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then docker_state=running
        else docker_state=stopped
        fi
    fi
    [ "$docker_state" = running ]
}

volume_mountpoint() { docker volume inspect --format '{{.Mountpoint}}' "$1" 2>/dev/null; }

holds_index() { mountpoint=$(volume_mountpoint "$1") && [ -f "$mountpoint/db.sqlite" ]; }

for query in "$@"; do
    kind=${query%%=*}
    value=${query#*=}
    [ "$value" = "$query" ] && value=""
    case "$kind" in
    uid)  # the accounts that have this numeric uid
        answer uid "$value" "$( (getent passwd 2>/dev/null || cat /etc/passwd) \
            | awk -F: -v uid="$value" '$3 == uid { printf "%s%s", sep, $1; sep = "," }')"
        ;;
    platform)
        . /etc/os-release 2>/dev/null || true
        [ -r /etc/os-release ] || { [ "$(uname -s)" = Darwin ] && ID=macos; }
        if [ -d /run/systemd/system ]; then systemd=1; else systemd=0; fi
        answer platform "" "${ID:-unknown} ${ID_LIKE:-}" "$systemd" "$(id -u):$(id -g)" "$HOME" ;;
    command)
        if command -v "$value" >/dev/null 2>&1 || [ -x "/usr/sbin/$value" ]; then state=yes; else state=no; fi
        answer command "$value" "$state" ;;
    tool)  # a developer tool of the connecting user: its path and version (uv only: the
           # others are Python programs that take a second to print theirs)
        if path=$(tool_path "$value"); then
            version=""
            [ "$value" = uv ] && version=$("$path" --version 2>/dev/null | sed -n 's/^uv \([0-9][0-9.]*\).*/\1/p')
            answer tool "$value" "$path" "$version"
        else
            answer tool "$value" "" ""
        fi ;;
    pip)  # the versions of pip and of the Python it runs on, for `python3 -m pip`
        answer pip "" "$(python3 -m pip --version 2>/dev/null \
            | sed -n 's/^pip \([0-9][0-9.]*\) .*(python \([0-9][0-9.]*\))$/\1 \2/p')" ;;
    docker)
        docker_answers
        answer docker "" "$docker_state" ;;
    unit)
        if [ -d /run/systemd/system ]; then
            answer unit "$value" "$(systemctl is-enabled "$value" 2>/dev/null || true)" \
                "$(systemctl is-active "$value" 2>/dev/null || true)"
        else
            answer unit "$value" none none
        fi ;;
    image)
        docker_answers || continue
        found=$(docker image inspect --format \
            "{{.Id}}|{{index .Config.Labels \"$context_label\"}}" "$value" 2>/dev/null) \
            && answer image "$value" "$found" || answer image "$value" missing ;;
    container)
        docker_answers || continue
        found=$(docker container inspect --format \
            "{{index .Config.Labels \"$spec_label\"}}"'|{{.State.Running}}|{{range $p, $b := .HostConfig.PortBindings}}{{range $b}}{{.HostPort}}{{end}}{{end}}|{{.RestartCount}}|{{if .State.Health}}{{.State.Health.Status}}{{end}}|{{.State.StartedAt}}|{{.Image}}|{{range .Mounts}}{{.Destination}}={{.Name}},{{end}}|{{.Config.Image}}' \
            "$value" 2>/dev/null) && answer container "$value" "$found" || answer container "$value" missing ;;
    volume)
        docker_answers || continue
        if ! mountpoint=$(volume_mountpoint "$value"); then answer volume "$value" missing
        elif [ -f "$mountpoint/db.sqlite" ]; then answer volume "$value" data
        else answer volume "$value" empty
        fi ;;
    volume-usage)  # for status: bytes, package files, projects, free and total bytes where it lives
        docker_answers || continue
        mountpoint=$(volume_mountpoint "$value") || continue
        answer volume-usage "$value" "$(du -sb "$mountpoint" | cut -f1)" \
            "$(find "$mountpoint/packages" -type f ! -name '.*' 2>/dev/null | wc -l)" \
            "$(find "$mountpoint/packages" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | wc -l)" \
            "$(df -B1 --output=avail "$mountpoint" | tail -n 1 | tr -d ' ')" \
            "$(df -B1 --output=size "$mountpoint" | tail -n 1 | tr -d ' ')" ;;
    data-container)  # the volume a data container holds at DATA_DIR, and whether it holds an index
        docker_answers || continue
        name=${value%%:*} data_dir=${value#*:}
        if ! mounts=$(docker container inspect --format \
            '{{range .Mounts}}{{.Destination}} {{.Name}}{{println}}{{end}}' "$name" 2>/dev/null); then
            answer data-container "$value" missing ""
            continue
        fi
        mounted=$(printf '%s\n' "$mounts" | awk -v dir="$data_dir" '$1 == dir { print $2 }')
        if [ -z "$mounted" ]; then answer data-container "$value" none ""
        elif holds_index "$mounted"; then answer data-container "$value" "$mounted" data
        else answer data-container "$value" "$mounted" empty
        fi ;;
    nginx)  # installed? running?
        if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then installed=yes; else installed=no; fi
        if [ -d /run/systemd/system ]; then
            systemctl is-active --quiet nginx && running=yes || running=no
        elif [ -s /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; then running=yes
        else running=no
        fi
        answer nginx "" "$installed" "$running" ;;
    dangling)
        docker_answers || continue
        for candidate in $(docker volume ls --quiet --filter dangling=true); do
            if [ "$candidate" != "$value" ] && holds_index "$candidate"; then answer dangling "$candidate"; fi
        done ;;
    file)
        path=$(home_path "$value")
        answer file "$value" "$(file_state "$path")" ;;
    text)  # a file's state and its content, for diffs and merges
        path=$(home_path "$value")
        state=$(file_state "$path")
        case "$state" in
            missing|directory) answer text "$value" "$state" "" ;;
            *) answer text "$value" "$state" "$(base64 < "$path" | tr -d '\n')" ;;
        esac ;;
    ports)  # listening TCP ports, in hex as the kernel lists them
        answer ports "" "$(cat /proc/net/tcp /proc/net/tcp6 2>/dev/null \
            | awk '$4 == "0A" { split($2, local, ":"); printf "%s ", local[2] }')" ;;
    nginx-test)
        if output=$(nginx -t 2>&1); then answer nginx-test "" ok ""
        else answer nginx-test "" failed "$(printf '%s' "$output" | grep -m1 -E 'emerg|crit' | tr '\t' ' ')"
        fi ;;
    health)  # pypicloud's own /health, asked inside its container: ok|failed REPORT (base64)
        docker_answers || continue
        if report=$(docker exec "$value" pypicloud-health --report 2>/dev/null); then state=ok
        else state=failed
        fi
        answer health "$value" "$state" "$(printf '%s' "$report" | base64 | tr -d '\n')" ;;
    release)  # CONTAINER/NAME/VERSION: ok JSON (base64) | unknown, when the server cannot say
        docker_answers || continue
        container=${value%%/*} release=${value#*/}
        if state=$(docker exec "$container" ppc-guard release "${release%%/*}" "${release#*/}" 2>/dev/null)
        then answer release "$value" ok "$(printf '%s' "$state" | base64 | tr -d '\n')"
        else answer release "$value" unknown ""
        fi ;;
    api-tokens)  # CONTAINER: ok JSON (base64) of its API tokens (no secret) | unknown
        docker_answers || continue
        if state=$(docker exec "$value" ppc-guard token-list 2>/dev/null)
        then answer api-tokens "$value" ok "$(printf '%s' "$state" | base64 | tr -d '\n')"
        else answer api-tokens "$value" unknown ""
        fi ;;
    *)
        echo "facts.sh: unknown query $query" >&2; exit 2 ;;
    esac
done
