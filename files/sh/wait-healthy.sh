# wait-healthy.sh CONTAINER SECONDS: wait until the server in CONTAINER answers its
# health check. Exit 0 when it does; else exit 1 printing why, then its last log lines.
set -u
name=$1 timeout=$2
end=$(( $(date +%s) + timeout ))
while :; do
    if docker exec "$name" pypicloud-health >/dev/null 2>&1; then exit 0; fi
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
