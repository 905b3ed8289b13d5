# Inside a throwaway container of the server image: copy every package of the store
# that config.ini $1 names into the store of the config.ini on stdin, with pypicloud's
# own ppc-migrate. The new config (it holds secrets) lives only in this container.
set -eu
umask 077
cat > /tmp/config-to.ini
exec /opt/pypicloud/bin/ppc-migrate "$1" /tmp/config-to.ini
