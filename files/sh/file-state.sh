# file-state.sh PATH: "missing", "directory", or "<mode> <uid>:<gid> <sha256>".
set -eu
if [ -d "$1" ]; then echo directory
elif [ -f "$1" ]; then printf '%s ' "$(stat -c '%a %u:%g' -- "$1")"; sha256sum < "$1" | cut -d' ' -f1
else echo missing
fi
