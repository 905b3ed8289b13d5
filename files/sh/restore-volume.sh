# restore-volume.sh (in a throwaway container, the data volume at /var/lib/pypicloud,
# a backup archive on stdin): replace the index's database and packages with the
# archive's, owned by the server's user. The server must be stopped.
set -eu
cd /var/lib/pypicloud
rm -rf packages db.sqlite db.sqlite-journal
tar -xzf - --no-same-permissions
rm -f manifest.json about.json
mkdir -p packages
chown -R 10001:10001 db.sqlite packages
