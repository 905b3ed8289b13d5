# wait-healthy.sh CONTAINER SECONDS (a login "USER:PASSWORD" line on stdin, or nothing):
# wait until the server in CONTAINER answers its health check and, given a login, an
# authenticated /simple/ request. Exit 0 when it does; else exit 1 printing why, then
# its last log lines.
set -u
name=$1 timeout=$2
IFS= read -r login || true  # stays in this shell: never on a command line
end=$(( $(date +%s) + timeout ))
while :; do
    if docker exec "$name" pypicloud-health >/dev/null 2>&1; then
        [ -z "${login:-}" ] && exit 0
        if failure=$(printf '%s\n' "$login" | docker exec -i "$name" pypicloud-health --login 2>&1); then
            exit 0
        fi
        echo "answers /health, but not a login: $failure"
        docker logs --tail 8 "$name" 2>&1
        exit 1
    fi
    state=$(docker inspect --format '{{.State.Running}} {{.RestartCount}}' "$name" 2>/dev/null)
    reason=""
    case "$state" in
        "true 0") [ "$(date +%s)" -lt "$end" ] || reason="did not answer within ${timeout}s" ;;
        "") reason="is gone" ;;
        *) reason="stopped" ;;
    esac
    if [ -n "$reason" ]; then
        echo "$reason"
        docker logs --tail 8 "$name" 2>&1
        exit 1
    fi
    sleep 0.5
done
