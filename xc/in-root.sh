#!/bin/sh
# Runs a command with ROOT/opt mounted over /opt; meant to run inside `unshare -m`, so only
# that private mount namespace sees it. exec keeps the pid, so signals reach the command.
#   unshare -m --propagation private xc/in-root.sh ROOT COMMAND [ARGS...]
root=$1
shift
mkdir -p /opt && mount --bind "$root/opt" /opt || exit 1
exec "$@"
