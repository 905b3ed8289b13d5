#!/bin/sh
# Authorize the test key for root, then run sshd (hosts without an init system).
set -e
mkdir -p /root/.ssh && chmod 700 /root/.ssh
printf '%s\n' "$AUTHORIZED_KEY" > /root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys
ssh-keygen -A >/dev/null
exec /usr/sbin/sshd -D -e
