#!/bin/sh
# Runs the module's default make target in /usr/src/module, then gathers
# every .ko it left into /dmb-out/ko and, where the image has depmod, the
# index of the kmod layout into /dmb-out/depmod. Tells dmb what happened
# with `@@dmb:` lines: sync-failed, make-failed CODE, no-ko, duplicate NAME,
# ko PATH, depmod.
#
# /usr/local/dmb holds the sources (module/, listed in `sources`), the
# arguments for make (`make-args`, one per line), the job count (`jobs`,
# else nproc) and, for a build from scratch, `fresh`. /usr/src/module is
# kept between builds (a BuildKit cache mount or a volume, keyed on the
# build environment, the module and the make arguments), so that make
# recompiles only what changed.
set -u
dmb=/usr/local/dmb
src=/usr/src/module
export PATH="$dmb/bin:$PATH"
# This shell is PID 1 of the build container: `docker start --attach`
# forwards Ctrl-C (SIGINT) and SIGTERM to it alone, and PID 1 ignores a
# signal it has no handler for. With one, and the long waits in the
# background (a shell acts on a trapped signal only between commands, or
# in `wait`), it exits at once and the container's processes go with it.
trap 'echo "dmb: interrupted"; exit 130' INT TERM
mkdir -p "/lib/modules/$KVER" "$src"
ln -sfn "$KDIR" "/lib/modules/$KVER/build"
# Two builds of one module share its build directory: the second waits for
# the first (BuildKit's cache mounts lock on their own). The lock file is
# never removed, so both lock the same file.
if command -v flock >/dev/null 2>&1; then
  exec 9> "$src/.dmb-lock"
  # The lock belongs to the open file, which this shell keeps open.
  flock 9 &
  wait $!
fi
if [ -e "$dmb/fresh" ]; then
  echo "dmb: --fresh: removing the objects of earlier builds"
  find "$src" -mindepth 1 -maxdepth 1 ! -name .dmb-lock -exec rm -rf {} +
fi
if ! sh "$dmb/sync_sources.sh" "$dmb/module" "$src" "$dmb/sources"; then
  echo "@@dmb:sync-failed"
  exit 7
fi
if [ -s "$dmb/jobs" ]; then jobs=$(cat "$dmb/jobs"); else jobs=$(nproc 2>/dev/null || echo 1); fi
set --
if [ -f "$dmb/make-args" ]; then
  while IFS= read -r a; do set -- "$@" "$a"; done < "$dmb/make-args"
fi
# Nothing changed since a build that succeeded (its sources, and all that
# the build directory's key covers, are the same): its output is the
# answer, as BuildKit would answer from its cache.
last="$src/.dmb-last"
if [ -e /tmp/dmb-unchanged ] && [ -f "$last/ok" ]; then
  echo "dmb: nothing changed since the last build: its modules are reused"
  rm -rf /dmb-out && cp -R "$last/out" /dmb-out || exit 1
  if [ -n "$(ls /dmb-out/depmod 2>/dev/null)" ]; then echo "@@dmb:depmod"; fi
  exit 0
fi
rm -rf "$last"
# Makefiles that say M=$(PWD) expect make to start in the module directory.
cd "$src" && export PWD="$src"
# The module's Makefile, as make would choose it, then serial.mk.
for mf in GNUmakefile makefile Makefile; do [ -f "$src/$mf" ] && break; done
echo "dmb: make -j$jobs -C $src${*:+ $*} for $KVER"
make -j"$jobs" -C "$src" -f "$mf" -f "$dmb/serial.mk" "$@" < /dev/null &
wait $!
rc=$?
if [ "$rc" -ne 0 ]; then echo "@@dmb:make-failed $rc"; exit "$rc"; fi
rm -rf /dmb-out /tmp/dmb-tree
mkdir -p /dmb-out/ko /dmb-out/depmod /tmp/dmb-tree/lib/modules/"$KVER"/extra
find "$src" -path "$last" -prune -o -name '*.ko' -type f -print | sort > /tmp/dmb-ko-list
if [ ! -s /tmp/dmb-ko-list ]; then echo "@@dmb:no-ko"; exit 3; fi
while IFS= read -r f; do
  b=${f##*/}
  if [ -e "/dmb-out/ko/$b" ]; then echo "@@dmb:duplicate $b"; exit 4; fi
  cp "$f" "/dmb-out/ko/$b"
  cp "$f" "/tmp/dmb-tree/lib/modules/$KVER/extra/$b"
  echo "@@dmb:ko ${f#"$src"/}"
done < /tmp/dmb-ko-list
# depmod warns of a whole kernel's lists that a set of modules has none of:
# empty ones quiet it, and are not copied.
if command -v depmod >/dev/null 2>&1; then
  for l in order builtin builtin.modinfo; do : > /tmp/dmb-tree/lib/modules/"$KVER"/modules.$l; done
  if depmod -b /tmp/dmb-tree "$KVER"; then
    for f in /tmp/dmb-tree/lib/modules/"$KVER"/modules.*; do
      case ${f##*/} in modules.order | modules.builtin | modules.builtin.modinfo) continue ;; esac
      if [ -f "$f" ]; then cp "$f" /dmb-out/depmod/; fi
    done
    echo "@@dmb:depmod"
  fi
fi
mkdir -p "$last" && cp -R /dmb-out "$last/out" && : > "$last/ok"
exit 0
