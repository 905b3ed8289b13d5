# restore-swap.sh CONTAINER VOLUME IMAGE SECONDS STORE_SCRIPT WAIT_SCRIPT (an admin's login
# on stdin): put the archive staged in the data volume in place of the store, and keep it
# only if the server answers from it. Stop CONTAINER, swap (STORE_SCRIPT is
# restore-volume.py, run in a throwaway container of IMAGE), start it and wait until it
# answers the login (WAIT_SCRIPT is wait-healthy.sh); then drop the old store, or put it
# back and start the server on it again. Prints "restored", or (last) "kept the old
# store: WHY". Once it runs, a lost SSH connection (a killed ppc) does not stop it
# halfway.
set -u
trap '' HUP INT TERM PIPE
container=$1 volume=$2 image=$3 seconds=$4 store_script=$5 wait_script=$6
IFS= read -r login || true  # stays in this shell: never on a command line
store() {
    docker run --rm --user 0 --volume "$volume:/var/lib/pypicloud" \
        --entrypoint /opt/pypicloud/bin/python "$image" -c "$store_script" "$1"
}
put_back() {
    docker stop --time 10 "$container" >/dev/null 2>&1
    store back
    docker start "$container" >/dev/null
    echo "kept the old store: $1"
    exit 1
}
docker stop --time 10 "$container" >/dev/null
store swap || put_back "the swap failed"
docker start "$container" >/dev/null || put_back "the server did not start on the restored store"
if why=$(printf '%s\n' "$login" | sh -c "$wait_script" wait-healthy "$container" "$seconds"); then
    store finish
    echo restored
    exit 0
fi
put_back "the server did not answer from the restored store: $(printf '%s\n' "$why" | head -n 1)"
