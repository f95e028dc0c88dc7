#!/bin/sh
# Unpacks the kernel image's source (/tmp/dmb/linux.tar.xz, which unpacks
# to one top directory such as linux/) into /usr/src/linux, and builds the
# kernel's configuration tool there once (by settling the kernel's own
# .config), so that each configuration tried later starts at once.
# $KVER: the release whose header tree holds that .config; $KCC: the
# compiler command the kernel was built with (gcc-12), where the builder has it.
set -eu
mkdir -p /usr/src/linux
xz -dc /tmp/dmb/linux.tar.xz | tar -x -C /usr/src/linux --strip-components=1
rm -rf /tmp/dmb
cd /usr/src/linux
cc=${KCC:-gcc}
command -v "$cc" >/dev/null 2>&1 || cc=gcc
cp "/usr/src/linux-headers-$KVER/.config" .config
make -s CC="$cc" olddefconfig
