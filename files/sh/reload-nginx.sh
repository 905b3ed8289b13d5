# reload-nginx.sh RELOAD-COMMAND...: reload nginx gracefully and return once the new
# configuration is live: every worker that ran the old one has stopped taking requests
# (it is gone, or finishing what it had). The signal alone returns before that.
set -u
workers() {  # the worker processes of nginx's master
    master=$(cat /run/nginx.pid 2>/dev/null) || return 0
    for stat in /proc/[0-9]*/stat; do
        read -r pid _ _ parent _ < "$stat" 2>/dev/null && [ "$parent" = "$master" ] && echo "$pid"
    done
}
old=$(workers)
"$@" || exit
end=$(( $(date +%s) + 30 ))
for pid in $old; do
    while [ -e "/proc/$pid" ] && ! grep -qs 'shutting down' "/proc/$pid/cmdline"; do
        [ "$(date +%s)" -lt "$end" ] || { echo "nginx's old workers still serve after 30s" >&2; exit 1; }
        sleep 0.05
    done
done
