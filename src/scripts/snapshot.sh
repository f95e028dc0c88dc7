#!/bin/sh
# A tar stream of what a snapshot of the running kernel needs beyond the
# probe: `exports`, the kernel's export symbols as /proc/kallsyms lists them
# (`__ksymtab_*` lines, visible without privilege; their addresses are not
# needed), and `btf`, /sys/kernel/btf/vmlinux when the kernel has one
# (empty otherwise).
set -u
mkdir -p /tmp/dmb-snapshot
cd /tmp/dmb-snapshot || exit 1
grep ' __ksymtab_' /proc/kallsyms > exports 2>/dev/null || : > exports
cat /sys/kernel/btf/vmlinux > btf 2>/dev/null || : > btf
tar -cf - exports btf
