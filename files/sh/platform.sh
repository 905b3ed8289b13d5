# platform.sh: what kind of host this is, one "key=value" a line (see ppc_tasks/system.py).
set -u
. /etc/os-release 2>/dev/null || true
echo "os=${ID:-unknown} ${ID_LIKE:-}"
if [ -d /run/systemd/system ]; then echo systemd=1; else echo systemd=0; fi
