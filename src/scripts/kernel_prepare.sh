#!/bin/sh
# Prepares /usr/src/linux for `make M=` builds of the running kernel's
# modules: the configuration dmb settled (.config), `make modules_prepare`
# with the kernel's exact release ($KVER), and the kernel's own
# Module.symvers, whose CRCs every module built here is linked against (a
# synthesized kernel has none yet: dmb computes it afterwards).
# $KCC: the kernel's compiler command, where the builder has it; $DMB_JOBS:
# make's -j (--jobs; default nproc).
set -eu
cd /usr/src/linux
cc=${KCC:-gcc}
command -v "$cc" >/dev/null 2>&1 || cc=gcc
make -s CC="$cc" olddefconfig
make -j"${DMB_JOBS:-$(nproc)}" CC="$cc" KERNELRELEASE="$KVER" modules_prepare
# make M= reads the release from here: it must be the running kernel's.
echo "$KVER" > include/config/kernel.release
if ! grep -q "\"$KVER\"" include/generated/utsrelease.h; then
  echo "@@dmb:failed utsrelease $(cat include/generated/utsrelease.h)"
  exit 1
fi
if [ -d "/usr/src/linux-headers-$KVER" ]; then
  cp "/usr/src/linux-headers-$KVER/Module.symvers" Module.symvers
fi
