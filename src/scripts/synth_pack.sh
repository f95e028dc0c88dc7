#!/bin/sh
# The files of a kernel image in the LinuxKit layout, from the prepared
# tree /usr/src/linux of release $KVER (architecture $KARCH), into /dmb-out:
#   kernel-dev.tar  usr/src/linux-headers-$KVER: what `make M=` reads (the
#                   top Makefile, .config, Module.symvers, include/, the
#                   architecture's Makefiles and include/, scripts/ with its
#                   built tools, objtool) and every Makefile, Kbuild and
#                   Kconfig file of the tree (for in-tree builds);
#   kernel.tar      lib/modules/$KVER/build, a link to that tree;
#   linux.tar.xz    the source, for in-tree builds;
#   vmlinux.btf     the running kernel's BTF, when the snapshot had it.
set -eu
cd /usr/src/linux
out=/dmb-out
hdr=usr/src/linux-headers-$KVER
mkdir -p "$out"
{
  printf '%s\n' ./Makefile ./.config ./Module.symvers
  find . \( -name Makefile\* -o -name Kbuild\* -o -name Kconfig\* \) \( -type f -o -type l \)
  find ./include ./scripts "./arch/$KARCH/include" \( -type f -o -type l \)
  find "./arch/$KARCH" -maxdepth 1 -name 'Makefile*' -type f
  find ./tools/objtool -maxdepth 1 -name objtool -type f 2>/dev/null || true
  find "./arch/$KARCH" -name '*.lds' -type f
} | sort -u > /tmp/dmb-headers
tar -cf "$out/kernel-dev.tar" --owner=0 --group=0 --numeric-owner \
  --transform "s,^\\.,$hdr," -T /tmp/dmb-headers
mkdir -p "/tmp/dmb-kernel/lib/modules/$KVER"
ln -s "/$hdr" "/tmp/dmb-kernel/lib/modules/$KVER/build"
tar -C /tmp/dmb-kernel -cf "$out/kernel.tar" --owner=0 --group=0 --numeric-owner lib
mv /usr/src/linux.tar.xz "$out/linux.tar.xz"
if [ -s /tmp/dmb/vmlinux.btf ]; then cp /tmp/dmb/vmlinux.btf "$out/vmlinux.btf"; fi
echo "@@dmb:packed $(wc -l < /tmp/dmb-headers)"
