# backup-once.sh PATH: before ppc-tasks first changes PATH, keep it as
# PATH.ppc-tasks-backup, or note that there was none (PATH.ppc-tasks-created). Later
# changes keep nothing more: the backup holds the original, and a file configure
# created is never taken for one.
set -eu
if [ -e "$1.ppc-tasks-backup" ] || [ -e "$1.ppc-tasks-created" ]; then exit 0; fi
if [ -f "$1" ]; then cp -p -- "$1" "$1.ppc-tasks-backup"
else mkdir -p -- "$(dirname -- "$1")" && : > "$1.ppc-tasks-created"
fi
