#!/bin/sh
# The header trees under /usr/src once kernel-dev.tar is unpacked: one
# `@@dmb:tree RELEASE` line each, then `@@dmb:has RELEASE FILE` for each of
# the files an out-of-tree build needs that the tree has.
for d in /usr/src/linux-headers-*/; do
  [ -d "$d" ] || continue
  r=${d%/}; r=${r##*/linux-headers-}
  echo "@@dmb:tree $r"
  for f in .config Makefile Module.symvers; do
    if [ -f "$d$f" ]; then echo "@@dmb:has $r $f"; fi
  done
done
exit 0
