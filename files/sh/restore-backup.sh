# restore-backup.sh PATH: put back the file from before the first configure (and print
# "restored"), or remove one configure created (and print "removed").
set -eu
rm -f -- "$1.ppc-tasks-created"
if [ -f "$1.ppc-tasks-backup" ]; then mv -f -- "$1.ppc-tasks-backup" "$1" && echo restored
elif [ -f "$1" ]; then rm -f -- "$1" && echo removed
fi
