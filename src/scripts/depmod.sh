#!/bin/sh
# depmod's index (modules.dep, .softdep, .alias and the .bin files modprobe
# reads) of the modules in /dmb/ko, as the kmod layout's extra/ directory of
# release $KVER, into /dmb/depmod. Records: `depmod` when it ran.
set -eu
tree=/tmp/dmb-tree/lib/modules/$KVER
mkdir -p "$tree/extra" /dmb/depmod
cp /dmb/ko/*.ko "$tree/extra/"
if command -v depmod >/dev/null 2>&1 && depmod -b /tmp/dmb-tree "$KVER"; then
  for f in "$tree"/modules.*; do
    if [ -f "$f" ]; then cp "$f" /dmb/depmod/; fi
  done
  echo "@@dmb:depmod"
fi
