# put-file.sh PATH MODE [UID:GID] [keep] < CONTENT
# Replace PATH atomically with stdin: the new file is private from its first byte
# (umask 077), gets its mode and owner, then is moved into place. A directory where the
# file belongs (what Docker makes of a missing bind-mount source) is removed if empty.
# With "keep", the file it replaces stays as PATH.ppc-previous (see restore-previous.sh).
set -eu
path=$1 mode=$2 owner=${3:-} keep=${4:-}
mkdir -p -- "$(dirname -- "$path")"
umask 077
if [ -d "$path" ]; then
    rmdir -- "$path" || { echo "$path is a directory, not a file: move it away" >&2; exit 1; }
fi
staged="$path.ppc-new"
cat > "$staged"
chmod "$mode" "$staged"
if [ -n "$owner" ]; then chown "$owner" "$staged"; fi
if [ -n "$keep" ] && [ -f "$path" ]; then cp -p -- "$path" "$path.ppc-previous"; fi
mv -f -- "$staged" "$path"
