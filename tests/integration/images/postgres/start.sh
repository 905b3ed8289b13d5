#!/bin/sh
# Start PostgreSQL, make PG_USER's role and database (the password comes on stdin, not
# on a command line), then stay in the foreground with it.
set -eu
: "${PG_USER:?}" "${PG_PASSWORD:?}"
pg() { su postgres -s /bin/sh -c "$*"; }
pg "/usr/lib/postgresql/15/bin/pg_ctl -D /var/lib/postgresql/15/main -o '-c config_file=/etc/postgresql/15/main/postgresql.conf' -w start"
printf "CREATE ROLE \"%s\" LOGIN PASSWORD '%s';\nCREATE DATABASE \"%s\" OWNER \"%s\";\n" \
    "$PG_USER" "$PG_PASSWORD" "$PG_USER" "$PG_USER" | pg "psql -q -v ON_ERROR_STOP=1"
pg "/usr/lib/postgresql/15/bin/pg_ctl -D /var/lib/postgresql/15/main -m fast -w stop"
exec su postgres -s /bin/sh -c "exec /usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main -c config_file=/etc/postgresql/15/main/postgresql.conf"
