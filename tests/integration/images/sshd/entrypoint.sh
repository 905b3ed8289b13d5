#!/bin/sh
# Authorize the test key for root, start dockerd when the image has it, then run sshd.
set -e
mkdir -p /root/.ssh && chmod 700 /root/.ssh
printf '%s\n' "$AUTHORIZED_KEY" > /root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys
ssh-keygen -A >/dev/null
if command -v dockerd >/dev/null; then
    dockerd --cgroup-parent="${CGROUP_PARENT:-/ppc-test}" >/var/log/dockerd.log 2>&1 &
fi
exec /usr/sbin/sshd -D -e
