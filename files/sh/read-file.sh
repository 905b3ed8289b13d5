# read-file.sh PATH: the file's content; exit 3 when there is no such file.
if [ -f "$1" ]; then exec cat -- "$1"; else exit 3; fi
