# data-state.sh VOLUME CONTAINER DATA_DIR: where the index's data is, one fact a line.
#   volume missing|empty|data           the named volume for packages and database
#   container missing|VOLUME-NAME       the volume the data container mounts at DATA_DIR
#   container-data empty|data           ...and whether that one holds an index
#   dangling VOLUME-NAME                an unattached volume holding an index
# A volume "holds an index" when pypicloud's database is in it.
set -u
volume=$1 container=$2 data_dir=$3
holds_index() {
    mountpoint=$(docker volume inspect --format '{{.Mountpoint}}' "$1" 2>/dev/null) || return 1
    [ -f "$mountpoint/db.sqlite" ]
}
state_of() {
    if holds_index "$1"; then echo data; else echo empty; fi
}
if docker volume inspect "$volume" >/dev/null 2>&1; then
    echo "volume $(state_of "$volume")"
else
    echo "volume missing"
fi
mounts=$(docker container inspect --format \
    '{{range .Mounts}}{{.Destination}} {{.Name}}{{println}}{{end}}' "$container" 2>/dev/null)
if [ $? -ne 0 ]; then
    echo "container missing"
else
    mounted=$(printf '%s\n' "$mounts" | awk -v dir="$data_dir" '$1 == dir { print $2 }')
    echo "container ${mounted:-none}"
    if [ -n "$mounted" ]; then echo "container-data $(state_of "$mounted")"; fi
fi
for candidate in $(docker volume ls --quiet --filter dangling=true); do
    if [ "$candidate" != "$volume" ] && holds_index "$candidate"; then
        echo "dangling $candidate"
    fi
done
