#!/bin/sh
# What the engine's host may give a container, read by an unprivileged
# container in its PID namespace (--pid=host): the capability bounding set
# of its PID 1 (the VM's init) and the highest capability its kernel knows.
# `dmb doctor` infers from them, without trying, whether a privileged
# container and CAP_SYS_MODULE can be had.
set -eu
bound=$(sed -n 's/^CapBnd:[[:space:]]*//p' /proc/1/status)
echo "@@dmb:capbnd $bound"
echo "@@dmb:cap_last $(cat /proc/sys/kernel/cap_last_cap)"
