# hold-lock.sh LOCK AUDIT_LOG WAIT HOLDER FACTS_SCRIPT [QUERY...]
# Hold the host's ppc-tasks lock for as long as stdin stays open (the whole run of ppc): a
# killed ppc drops its connection, and with it the lock; nothing is left to clean up.
# Prints "locked", then the facts QUERY asks for (facts.sh) and "end-of-facts"; or
# "busy HOLDER" when another run holds the lock (after WAIT seconds, if WAIT > 0).
# Each line then read from stdin is appended to the audit log (root, 0640).
set -u
lock=$1 audit=$2 wait=$3 holder=$4 facts=$5
shift 5
[ -d "${lock%/*}" ] || mkdir -p -- "${lock%/*}"
exec 9>>"$lock"
if [ "$wait" -gt 0 ]; then flock -w "$wait" 9; else flock -n 9; fi || {
    echo "busy $(cat -- "$lock.holder" 2>/dev/null)"
    exit 75
}
printf '%s\n' "$holder" > "$lock.holder"
# A command of a killed run may still be running (it outlived its SSH connection; each
# holds LOCK.work): wait for it to end before reading the facts.
flock -w 300 "$lock.work" true || {
    echo "busy a command of a stopped run, still running after 5 minutes"
    exit 75
}
echo locked
sh -c "$facts" facts "$@"
echo end-of-facts
umask 027
mkdir -p -- "$(dirname -- "$audit")"
while IFS= read -r line; do printf '%s\n' "$line" >> "$audit"; done
rm -f -- "$lock.holder"
