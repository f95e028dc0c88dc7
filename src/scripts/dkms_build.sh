#!/usr/bin/env bash
# Builds a DKMS package as dkms's prepare_build and actual_build do, for the
# kernel $KVER whose headers are $KDIR, from the plan dmb wrote from the
# package's dkms.conf into /usr/local/dmb/dkms/:
#   name, version         the package; its sources are /usr/src/NAME-VERSION
#   arch                  dkms's $arch of the target
#   make, clean           the make command chosen (MAKE_MATCH), CLEAN
#   pre_build, post_build the scripts, relative to the build directory
#   patches               PATCH[] chosen (PATCH_MATCH), one per line
#   jobs                  make's -j (absent: nproc)
#   modules               one per line: BUILT_LOCATION, BUILT_NAME,
#                         DEST_LOCATION, DEST_NAME, STRIP separated by the
#                         unit separator (0x1f: a tab would collapse an
#                         empty BUILT_LOCATION)
# Then gathers the modules into /dmb-out/ko (with `places`: where each goes
# in the kmod tree) and, where the image has depmod, its index into
# /dmb-out/depmod. Records: patch-missing P, patch-failed P, make-failed CODE,
# missing NAME LOCATION, duplicate NAME, depmod.
set -u
plan=/usr/local/dmb/dkms
read_plan() { cat "$plan/$1"; }
name=$(read_plan name)
version=$(read_plan version)
# dkms's variables, for the commands eval'd below as dkms evals them.
# shellcheck disable=SC2034
arch=$(read_plan arch)
kernelver=$KVER
kernel_source_dir=$KDIR
dkms_tree=/var/lib/dkms
base="$dkms_tree/$name/$version"
build_dir="$base/build"

mkdir -p "/lib/modules/$kernelver" "$base"
ln -sfn "$kernel_source_dir" "/lib/modules/$kernelver/build"
ln -sfn "/usr/src/$name-$version" "$base/source"
rm -rf "$build_dir"
cp -a "/usr/src/$name-$version/" "$build_dir"
cd "$build_dir" || exit 3
export PWD="$build_dir"

while IFS= read -r p; do
  [ -n "$p" ] || continue
  if [ ! -e "$build_dir/patches/$p" ]; then echo "@@dmb:patch-missing $p"; exit 5; fi
  echo "dmb: applying patch $p"
  if ! patch -p1 < "./patches/$p"; then echo "@@dmb:patch-failed $p"; exit 6; fi
done < "$plan/patches"

# dkms hands PRE_BUILD the compiler the kernel was built with, by name.
cc=$(sed -n 's|^CONFIG_CC_VERSION_TEXT="\([^ ]*\) .*"|\1|p' "$kernel_source_dir/.config" 2>/dev/null)
if [ -n "$cc" ] && command -v "$cc" >/dev/null 2>&1; then export CC="$cc"; fi

# dkms's run_build_script: SCRIPT ARGS..., run when SCRIPT is executable.
run_script() {
  local what=$1 script
  script=$(read_plan "$what")
  [ -n "$script" ] || return 0
  if [ -x "$build_dir/${script%% *}" ]; then
    echo "dmb: running the $what script: $script"
    eval "$build_dir/$script" || echo "dmb: the $what script failed (dkms goes on too)"
  fi
}
run_script pre_build

# actual_build: CC unset, the clean command first, then make, with dkms's
# -j and KERNELRELEASE put after its leading `make`.
unset CC
clean=$(read_plan clean)
eval "$clean" >/dev/null 2>&1 || true
make_command=$(read_plan make)
if [ -s "$plan/jobs" ]; then jobs=$(cat "$plan/jobs"); else jobs=$(nproc 2>/dev/null || echo 1); fi
the_make_command="${make_command/#make/make -j$jobs KERNELRELEASE=$kernelver}"
echo "dmb: $the_make_command"
eval "{ $the_make_command; }"
rc=$?
if [ "$rc" -ne 0 ]; then echo "@@dmb:make-failed $rc"; exit "$rc"; fi

mkdir -p /dmb-out/ko /dmb-out/depmod
: > /dmb-out/ko/places
tree="/tmp/dmb-tree/lib/modules/$kernelver"
missing=0
while IFS=$'\x1f' read -r location built dest_location dest strip; do
  [ -n "$built" ] || continue
  file="$build_dir/$location$built.ko"
  if [ ! -e "$file" ]; then echo "@@dmb:missing $built ${location:-.}"; missing=1; continue; fi
  if [ -e "/dmb-out/ko/$dest.ko" ]; then echo "@@dmb:duplicate $dest.ko"; exit 4; fi
  [ "$strip" = no ] || strip -g "$file"
  cp "$file" "/dmb-out/ko/$dest.ko"
  place="${dest_location#/}"
  place="${place%/}"
  mkdir -p "$tree/$place"
  cp "$file" "$tree/$place/$dest.ko"
  printf '%s\t%s\n' "$dest.ko" "$place/$dest.ko" >> /dmb-out/ko/places
  echo "@@dmb:ko $location$built.ko"
done < "$plan/modules"
if [ "$missing" -ne 0 ]; then exit 7; fi

run_script post_build

# depmod warns of a whole kernel's lists that a set of modules has none of:
# empty ones quiet it, and are not copied.
if command -v depmod >/dev/null 2>&1; then
  for l in order builtin builtin.modinfo; do : > "$tree/modules.$l"; done
  if depmod -b /tmp/dmb-tree "$kernelver"; then
    for f in "$tree"/modules.*; do
      case ${f##*/} in modules.order | modules.builtin | modules.builtin.modinfo) continue ;; esac
      if [ -f "$f" ]; then cp "$f" /dmb-out/depmod/; fi
    done
    echo "@@dmb:depmod"
  fi
fi
exit 0
