# logs.sh CONTAINER LINES SINCE FOLLOW
# The server container's log and nginx's error log, each line marked with where it
# comes from: the last LINES of each (the container's since SINCE, when given: 10m, 2h,
# a date); with FOLLOW=1, both then go on as they grow, until the caller hangs up: its
# stdin ends with the connection, and the followers end with it (nothing lingers).
container=$1 lines=$2 since=$3 follow=$4
nginx_log=/var/log/nginx/error.log
set -- --tail "$lines"
[ -n "$since" ] && set -- "$@" --since "$since"
if [ "$follow" = 1 ]; then
    docker logs "$@" --follow "$container" 2>&1 | sed -u "s/^/$container | /" &
    tail -n "$lines" -F "$nginx_log" 2>/dev/null | sed -u 's/^/nginx | /' &
    cat > /dev/null
    pkill -P $$ 2>/dev/null
    wait
else
    docker logs "$@" "$container" 2>&1 | sed "s/^/$container | /"
    if [ -r "$nginx_log" ]; then tail -n "$lines" "$nginx_log" | sed 's/^/nginx | /'; fi
fi
