# backup-once.sh PATH: keep PATH as PATH.ppc-tasks-backup before ppc-tasks first changes
# it; a backup that exists already is never overwritten (it holds the original).
set -eu
if [ -f "$1" ] && [ ! -e "$1.ppc-tasks-backup" ]; then cp -p -- "$1" "$1.ppc-tasks-backup"; fi
