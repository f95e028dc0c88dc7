#!/bin/sh
# depmod's index (modules.dep, .softdep, .alias and the .bin files modprobe
# reads) of the modules in /dmb/ko, as the kmod layout's extra/ directory of
# release $KVER, into /dmb/depmod. Records: `depmod` when it ran.
set -eu
tree=/tmp/dmb-tree/lib/modules/$KVER
mkdir -p "$tree/extra" /dmb/depmod
cp /dmb/ko/*.ko "$tree/extra/"
# depmod warns of a whole kernel's lists that a set of modules has none of:
# empty ones quiet it, and are not copied.
for l in order builtin builtin.modinfo; do : > "$tree/modules.$l"; done
if command -v depmod >/dev/null 2>&1 && depmod -b /tmp/dmb-tree "$KVER"; then
  for f in "$tree"/modules.*; do
    case ${f##*/} in modules.order | modules.builtin | modules.builtin.modinfo) continue ;; esac
    if [ -f "$f" ]; then cp "$f" /dmb/depmod/; fi
  done
  echo "@@dmb:depmod"
fi
