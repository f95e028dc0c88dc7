#!/bin/sh
# The source of a kernel to synthesize an image for: /tmp/dmb/source (a
# tarball, compressed or not, with one top directory or none) unpacked at
# /usr/src/linux, the patches of /tmp/dmb/patches applied in order (their
# `series` file when there is one, else by name; `patch -p1`), and the
# result kept as /usr/src/linux.tar.xz for in-tree builds (the tarball
# itself when it is already .tar.xz and nothing was patched).
# Records: `@@dmb:failed unpack|patch NAME`.
set -u
mkdir -p /tmp/dmb/x /usr/src
if ! tar -xf /tmp/dmb/source -C /tmp/dmb/x; then
  echo "@@dmb:failed unpack"
  exit 1
fi
top=/tmp/dmb/x
# One top directory (linux-6.6.22/, linux-source-6.1/): the tree is inside it.
entries=$(find "$top" -mindepth 1 -maxdepth 1)
if [ ! -e "$top/Makefile" ] && [ "$(printf '%s\n' "$entries" | wc -l)" -eq 1 ] && [ -d "$entries" ]; then
  top=$entries
fi
if [ ! -f "$top/Makefile" ] || [ ! -f "$top/Kconfig" ]; then
  echo "@@dmb:failed unpack (no kernel Makefile and Kconfig at the top of the tree)"
  exit 1
fi
mv "$top" /usr/src/linux
cd /usr/src/linux || exit 1
patched=""
if [ -d /tmp/dmb/patches ]; then
  if [ -f /tmp/dmb/patches/series ]; then
    list=$(grep -v '^[[:space:]]*#' /tmp/dmb/patches/series | awk 'NF { print $1 }')
  else
    list=$(find /tmp/dmb/patches -maxdepth 1 -type f \( -name '*.patch' -o -name '*.diff' \) -exec basename {} \; | sort)
  fi
  for p in $list; do
    if ! patch -p1 --batch --forward --quiet < "/tmp/dmb/patches/$p"; then
      echo "@@dmb:failed patch $p"
      exit 1
    fi
    patched=1
  done
fi
if [ -z "$patched" ] && xz -t /tmp/dmb/source 2>/dev/null; then
  mv /tmp/dmb/source /usr/src/linux.tar.xz
else
  tar -C /usr/src -cf - linux | xz -T0 -3 > /usr/src/linux.tar.xz
fi
rm -rf /tmp/dmb
