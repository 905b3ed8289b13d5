# as-root.sh [COMMAND...]
# Find out how this account becomes root and, in the same round trip, run COMMAND as
# root. Prints "UID:GID root" (already root) or "UID:GID nopasswd" (sudo without a
# password) and then runs COMMAND; prints "UID:GID none" and runs nothing when sudo
# would need a password, or there is no sudo.
uid=$(id -u)
ids="$uid:$(id -g)"
if [ "$uid" = 0 ]; then
    echo "$ids root"
    [ $# -eq 0 ] || exec "$@"
elif sudo -n true 2>/dev/null; then
    echo "$ids nopasswd"
    [ $# -eq 0 ] || exec sudo -n -- "$@"
else
    echo "$ids none"
fi
