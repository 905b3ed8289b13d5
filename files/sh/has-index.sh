# has-index.sh CONFIG_PATH DATA_VOLUME DATA_CONTAINER: exit 0 when this host already
# serves an index (its config, data volume or data container exists).
[ -e "$1" ] || docker volume inspect "$2" >/dev/null 2>&1 \
    || docker container inspect "$3" >/dev/null 2>&1
