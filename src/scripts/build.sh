#!/bin/sh
# Runs the module's default make target in /usr/src/module, then gathers
# every .ko it left into /dmb-out/ko and, where the image has depmod, the
# index of the kmod layout into /dmb-out/depmod. Tells dmb what happened
# with `@@dmb:` lines: make-failed CODE, no-ko, duplicate NAME, ko PATH, depmod.
set -u
mkdir -p "/lib/modules/$KVER"
ln -sfn "$KDIR" "/lib/modules/$KVER/build"
# Makefiles that say M=$(PWD) expect make to start in the module directory.
cd /usr/src/module && export PWD=/usr/src/module
echo "dmb: make -C /usr/src/module for $KVER"
make -C /usr/src/module
rc=$?
if [ "$rc" -ne 0 ]; then echo "@@dmb:make-failed $rc"; exit "$rc"; fi
mkdir -p /dmb-out/ko /dmb-out/depmod /tmp/dmb-tree/lib/modules/"$KVER"/extra
find /usr/src/module -name '*.ko' -type f | sort > /tmp/dmb-ko-list
if [ ! -s /tmp/dmb-ko-list ]; then echo "@@dmb:no-ko"; exit 3; fi
while IFS= read -r f; do
  b=${f##*/}
  if [ -e "/dmb-out/ko/$b" ]; then echo "@@dmb:duplicate $b"; exit 4; fi
  cp "$f" "/dmb-out/ko/$b"
  cp "$f" "/tmp/dmb-tree/lib/modules/$KVER/extra/$b"
  echo "@@dmb:ko ${f#/usr/src/module/}"
done < /tmp/dmb-ko-list
if command -v depmod >/dev/null 2>&1; then
  if depmod -b /tmp/dmb-tree "$KVER"; then
    for f in /tmp/dmb-tree/lib/modules/"$KVER"/modules.*; do
      if [ -f "$f" ]; then cp "$f" /dmb-out/depmod/; fi
    done
    echo "@@dmb:depmod"
  fi
fi
exit 0
