#!/bin/sh
# The password goes into a config file, not onto redis-server's command line.
set -eu
: "${REDIS_PASSWORD:?}"
printf 'bind 0.0.0.0\nprotected-mode no\nsave ""\nappendonly no\nrequirepass %s\n' \
    "$REDIS_PASSWORD" > /etc/redis/ppc-test.conf
exec redis-server /etc/redis/ppc-test.conf
