# retire.sh LIVE NEXT CONFIG SECONDS: after nginx switched to NEXT, retire LIVE: wait (at
# most SECONDS) for nginx's old workers to finish the requests they had, which may still
# go to LIVE; then remove LIVE, give NEXT its name, and drop the config LIVE ran with.
set -eu
live=$1 next=$2 config=$3 seconds=$4
end=$(( $(date +%s) + seconds ))
# The bracket keeps grep from finding its own arguments.
while grep -qs 'worker process is shutting dow[n]' /proc/[0-9]*/cmdline && [ "$(date +%s)" -lt "$end" ]; do
    sleep 0.2
done
if docker container inspect "$live" >/dev/null 2>&1; then
    docker stop --time 10 "$live" >/dev/null
    docker rm "$live" >/dev/null
fi
docker rename "$next" "$live"
rm -f -- "$config.ppc-previous"
