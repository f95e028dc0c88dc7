#!/bin/sh
# What the kernel's own configuration tool makes of /dmb/config: `make
# olddefconfig` in /usr/src/linux, then the result as `@@dmb:section
# config`. When it cannot run: `@@dmb:failed olddefconfig` and its log.
# $KCC: the kernel's compiler command, where the builder has it.
cd /usr/src/linux || { echo "@@dmb:failed source"; exit 1; }
cc=${KCC:-gcc}
command -v "$cc" >/dev/null 2>&1 || cc=gcc
cp /dmb/config .config
if ! make -s CC="$cc" olddefconfig >/tmp/dmb-kconfig.log 2>&1; then
  echo "@@dmb:failed olddefconfig"
  tail -n 30 /tmp/dmb-kconfig.log
  exit 1
fi
echo "@@dmb:section config"
cat .config
