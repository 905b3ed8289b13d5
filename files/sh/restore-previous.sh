# restore-previous.sh PATH: put back PATH.ppc-previous (kept by put-file.sh) if there is one.
set -eu
if [ -f "$1.ppc-previous" ]; then mv -f -- "$1.ppc-previous" "$1"; fi
