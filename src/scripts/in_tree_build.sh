#!/bin/sh
# Builds modules in the prepared tree /usr/src/linux. Each line of
# /usr/local/dmb/groups is `DIR OBJECT...` (net/sctp sctp.o): `make M=DIR
# sctp.ko` builds just those modules of the directory. A line `-` ends a
# level: the groups of a level are built at the same time (on two cores,
# the small makes fill the gaps of a big one), and each level sees the
# exports of the levels before it. The .ko files go to /dmb-out/ko.
# $KVER: the release; $KCC: the kernel's compiler command; $DMB_JOBS: make's
# -j (--jobs; default nproc).
# Records: make-failed CODE DIR, no-ko PATH, ko PATH.
set -u
cd /usr/src/linux || exit 1
jobs=${DMB_JOBS:-$(nproc 2>/dev/null || echo 1)}
cc=${KCC:-gcc}
command -v "$cc" >/dev/null 2>&1 || cc=gcc
mkdir -p /dmb-out/ko /dmb-out/depmod /tmp/dmb
# Files newer than this were made by the build; they are removed at the
# end, so the image layer of the build holds little more than /dmb-out.
touch /tmp/dmb/started
: > /tmp/dmb/dirs
extra=""
n=0

# group INDEX DIR MODULE...: one make, its output in /tmp/dmb/INDEX.log
# and its exit code in /tmp/dmb/INDEX.rc. -g0: the modules leave without
# debug information anyway (as the kernel's own are installed), and gcc
# makes the same code with or without it; making it costs a sixth of the
# build.
group() {
  i=$1 d=$2; shift 2
  make -j"$jobs" CC="$cc" KERNELRELEASE="$KVER" KCFLAGS=-g0 M="$d" \
    KBUILD_EXTRA_SYMBOLS="$extra" "$@" > "/tmp/dmb/$i.log" 2>&1
  echo $? > "/tmp/dmb/$i.rc"
}

modules_of() {  # sctp.o sctp_diag.o -> sctp.ko sctp_diag.ko
  echo "$1" | sed 's/\.o$//; s/\.o /.ko /g; s/$/.ko/'
}

# Builds the groups of one level (/tmp/dmb/level: `INDEX DIR OBJECT...`).
level() {
  while read -r i dir objects; do
    echo "dmb: make -j$jobs M=$dir $(modules_of "$objects") for $KVER"
    # shellcheck disable=SC2046
    group "$i" "$dir" $(modules_of "$objects") &
  done < /tmp/dmb/level
  wait
  failed=""
  while read -r i dir objects; do
    rc=$(cat "/tmp/dmb/$i.rc")
    # What a module built here exports is its own: where Module.symvers
    # gives an export of it to vmlinux, modpost stops with "exported twice".
    twice=$(sed -n "s/.*'\([A-Za-z0-9_]*\)' exported twice\. Previous export was in vmlinux.*/\1/p" "/tmp/dmb/$i.log")
    if [ "$rc" -ne 0 ] && [ -n "$twice" ]; then
      echo "$twice" > /tmp/dmb/twice
      awk 'NR == FNR { own[$0] = 1; next } !($3 == "vmlinux" && ($2 in own))' \
        /tmp/dmb/twice Module.symvers > /tmp/dmb/symvers && cp /tmp/dmb/symvers Module.symvers
      echo "dmb: exported by $dir, not by vmlinux: $(echo "$twice" | tr '\n' ' ')"
      # shellcheck disable=SC2046
      group "$i" "$dir" $(modules_of "$objects")
      rc=$(cat "/tmp/dmb/$i.rc")
    fi
    if [ "$rc" -ne 0 ]; then
      failed="$failed $i:$rc:$dir"
    else
      cat "/tmp/dmb/$i.log"
    fi
  done < /tmp/dmb/level
  # A failed make's output comes last, so that the tail shown is its own.
  for f in $failed; do
    i=${f%%:*} rest=${f#*:}
    cat "/tmp/dmb/$i.log"
    echo "@@dmb:make-failed ${rest%%:*} ${rest#*:}"
    exit "${rest%%:*}"
  done
  while read -r i dir objects; do
    # The next levels see what these export, unless the kernel's
    # Module.symvers has it already (twice would be "exported twice").
    n=$((n + 1))
    awk 'NR == FNR { have[$2] = 1; next } !($2 in have)' Module.symvers "$dir/Module.symvers" \
      > "/tmp/dmb/extra-$n.symvers"
    if [ -s "/tmp/dmb/extra-$n.symvers" ]; then extra="$extra /tmp/dmb/extra-$n.symvers"; fi
    for o in $objects; do
      ko="$dir/${o%.o}.ko"
      if [ ! -f "$ko" ]; then echo "@@dmb:no-ko $ko"; exit 3; fi
      cp "$ko" /dmb-out/ko/
      # As the kernel's own modules are installed: without debug
      # information; the build ID stays.
      if command -v strip >/dev/null 2>&1; then strip --strip-debug "/dmb-out/ko/${ko##*/}"; fi
      echo "@@dmb:ko $ko"
    done
    echo "$dir" >> /tmp/dmb/dirs
  done < /tmp/dmb/level
  : > /tmp/dmb/level
}

i=0
: > /tmp/dmb/level
while read -r dir objects; do
  if [ "$dir" = - ]; then level; continue; fi
  [ -n "$dir" ] || continue
  i=$((i + 1))
  echo "$i $dir $objects" >> /tmp/dmb/level
done < /usr/local/dmb/groups
level
while read -r dir; do
  find "$dir" -newer /tmp/dmb/started -type f -exec rm -f {} +
done < /tmp/dmb/dirs
exit 0
