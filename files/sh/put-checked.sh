# put-checked.sh PUT_FILE_SCRIPT PATH MODE CHECK...: put stdin at PATH with put-file.sh
# (its text is the first argument), keeping the old file, then run CHECK (e.g. nginx -t).
# If the check fails the old file is put back (or the new one removed) and the check's
# first error line is printed: a file the check rejects never stays in place.
set -u
put_file=$1 path=$2 mode=$3
shift 3
sh -c "$put_file" put-file "$path" "$mode" 0:0 keep || exit 1
if output=$("$@" 2>&1); then
    rm -f -- "$path.ppc-previous"
    exit 0
fi
if [ -f "$path.ppc-previous" ]; then mv -f -- "$path.ppc-previous" "$path"; else rm -f -- "$path"; fi
printf '%s\n' "$output" | grep -m1 -E 'emerg|crit|error' || printf '%s\n' "$output" | tail -n 1
exit 1
