# copy-volume.sh (inside a throwaway container): copy /from into /to with owners, modes
# and times, then prove the copy is identical.
set -eu
cp -a /from/. /to/
diff -r /from /to
