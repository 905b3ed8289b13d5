# retire.sh LIVE NEXT CONFIG ROLLBACK SECONDS SPEC_LABEL TAG_WIDTH: after nginx switched
# to NEXT, retire LIVE:
# wait (at most SECONDS) for nginx's old workers to finish the requests they had, which
# may still go to LIVE; keep what LIVE ran in the folder ROLLBACK (its config.ini, and
# "IMAGE|SPEC" in `container`) for `rollback`; remove LIVE and give NEXT its name. Last,
# delete the server images named by content (a tag ending in TAG_WIDTH hex digits) that
# neither the new LIVE nor the rollback target runs (an image some other container uses
# stays). SPEC_LABEL is the label ppc-tasks puts on the server container.
set -eu
live=$1 next=$2 config=$3 rollback=$4 seconds=$5 spec_label=$6 width=$7
end=$(( $(date +%s) + seconds ))
# The bracket keeps grep from finding its own arguments.
while grep -qs 'worker process is shutting dow[n]' /proc/[0-9]*/cmdline && [ "$(date +%s)" -lt "$end" ]; do
    sleep 0.2
done
if docker container inspect "$live" >/dev/null 2>&1; then
    umask 077
    mkdir -p -- "$rollback"
    # LIVE ran the config kept aside when a deploy wrote a new one, else the current one.
    ran="$config"
    if [ -f "$config.ppc-previous" ]; then ran="$config.ppc-previous"; fi
    cp -p -- "$ran" "$rollback/config.ini"
    docker container inspect --format \
        "{{.Config.Image}}|{{index .Config.Labels \"$spec_label\"}}" "$live" > "$rollback/container"
    docker stop --time 10 "$live" >/dev/null
    docker rm "$live" >/dev/null
fi
docker rename "$next" "$live"
rm -f -- "$config.ppc-previous"
running=$(docker container inspect --format '{{.Config.Image}}' "$live")
target=$(cut -d'|' -f1 "$rollback/container" 2>/dev/null || true)
content_tag="" digits=0  # a glob of WIDTH hex digits
while [ "$digits" -lt "$width" ]; do content_tag="$content_tag[0-9a-f]" digits=$((digits + 1)); done
for image in $(docker image ls --format '{{.Repository}}:{{.Tag}}' "${running%:*}"); do
    case "$image" in
        "$running"|"$target") ;;
        *-$content_tag) docker image rm "$image" >/dev/null 2>&1 || true ;;
    esac
done
