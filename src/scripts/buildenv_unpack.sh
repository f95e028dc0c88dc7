#!/bin/sh
# buildenv_unpack.sh TAR: unpacks a kernel image's kernel-dev.tar (header
# trees under usr/src/) at / of the build environment.
#
# A merged-/usr image has /lib as a link to usr/lib: a tar that meets a
# `lib/` directory entry would replace the link, and nothing would run.
# GNU tar keeps the link with --keep-directory-symlink and unpacks in
# place; any other tar (busybox) unpacks beside, and the trees are copied
# over path by path, which keeps the links too.
set -eu
tarball=$1
if tar --help 2>&1 | grep -q -e --keep-directory-symlink; then
  tar -xf "$tarball" --keep-directory-symlink -C /
else
  mkdir -p /tmp/dmb-headers
  tar -xf "$tarball" -C /tmp/dmb-headers
  for d in /tmp/dmb-headers/*; do
    if [ -d "$d" ]; then
      mkdir -p "/${d##*/}" && cp -a "$d/." "/${d##*/}/"
    else
      cp -a "$d" /
    fi
  done
  rm -rf /tmp/dmb-headers
fi
