# reload-nginx.sh LOADED FILE... -- COMMAND...: start or reload nginx with COMMAND and
# return once the new configuration is live: every worker that ran the old one has
# stopped taking requests (it is gone, or finishing what it had); the signal alone
# returns before that. Then record in LOADED the sha256 of each FILE (the site, the
# certificate and its key) as nginx has now read them: a later run that finds other
# files there knows nginx has not loaded them (a run stopped before reloading).
set -u
loaded=$1
shift
files=""
while [ "$1" != "--" ]; do files="$files $1"; shift; done
shift
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
mkdir -p -- "$(dirname -- "$loaded")"
# shellcheck disable=SC2086 # the paths are validated settings: no spaces
sha256sum -- $files > "$loaded.new" && mv -f -- "$loaded.new" "$loaded"
