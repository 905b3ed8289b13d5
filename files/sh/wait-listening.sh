# wait-listening.sh PORT SECONDS -- COMMAND...: (re)start a service with COMMAND, then
# return once something listens on TCP PORT; fail after SECONDS. A service whose start
# command returns before it serves (or that stops again) fails the step here, not later.
set -u
port=$1 seconds=$2
shift 3
"$@" || exit
hex=$(printf '%04X' "$port")
end=$(( $(date +%s) + seconds ))
until cat /proc/net/tcp /proc/net/tcp6 2>/dev/null \
        | awk -v port="$hex" '$4 == "0A" && substr($2, length($2) - 3) == port { found = 1 } END { exit !found }'; do
    [ "$(date +%s)" -lt "$end" ] || { echo "nothing listens on port $port after ${seconds}s" >&2; exit 1; }
    sleep 0.2
done
