#!/bin/sh
# The CRCs genksyms computes, under the prepared tree's own configuration,
# for the exported symbols named as parameters: the C file that exports each
# (EXPORT_SYMBOL* by name, in the tree or under arch/$KARCH only) is
# preprocessed the way kbuild does (`make FILE.symtypes`) and run through
# scripts/genksyms, whose output a wrapper keeps. A file kbuild does not
# compile by itself (kernel/sched/wait.c) is taken through the file of its
# directory that #includes it. Records: `crc SYMBOL 0xCRC FILE`, `unfound
# SYMBOL` (no C file exports it by name: assembly, macros), `failed FILE
# SYMBOL` (kbuild could not run genksyms over it). $KVER: the release;
# $KCC: the kernel's compiler command; $KARCH: its source architecture.
set -u
cd /usr/src/linux || exit 1
jobs=$(nproc 2>/dev/null || echo 1)
cc=${KCC:-gcc}
command -v "$cc" >/dev/null 2>&1 || cc=gcc
arch=${KARCH:-x86}
printf '%s\n' "$@" | sort -u > /tmp/dmb-want
grep -rEo --include='*.c' --include='*.h' 'EXPORT_SYMBOL(_GPL)?(_NS)?(_GPL)?\([[:space:]]*[A-Za-z0-9_]+' . 2>/dev/null \
  | sed -e 's#^\./##' -e 's#:EXPORT_SYMBOL[A-Z_]*([[:space:]]*# #' \
  | awk -v arch="arch/$arch/" '$1 !~ "^arch/" || index($1, arch) == 1' \
  | awk 'NR == FNR { want[$0] = 1; next } ($2 in want) && !seen[$2 " " $1]++ { print $2, $1 }' /tmp/dmb-want - \
  > /tmp/dmb-exporters
awk '{ print $1 }' /tmp/dmb-exporters | sort -u > /tmp/dmb-found
comm -23 /tmp/dmb-want /tmp/dmb-found | while read -r s; do echo "@@dmb:unfound $s"; done
real=scripts/genksyms/genksyms
mv "$real" "$real.dmb-real"
cat > "$real" <<'WRAP'
#!/bin/sh
# dmb: genksyms, its CRCs kept beside the .symtypes file it writes.
out=""; prev=""
for a in "$@"; do [ "$prev" = -T ] && out=$a; prev=$a; done
"$0.dmb-real" "$@" | tee "${out%.symtypes}.dmb-crcs"
WRAP
chmod +x "$real"
symtypes() {  # files...
  # shellcheck disable=SC2046
  make -k -j"$jobs" CC="$cc" KERNELRELEASE="$KVER" $(printf '%s\n' "$@" | sed 's/\.c$/.symtypes/') \
    >>/tmp/dmb-crcs.log 2>&1
}
# shellcheck disable=SC2046
symtypes $(awk '$2 ~ /\.c$/ { print $2 }' /tmp/dmb-exporters | sort -u)
# A file no Makefile compiles by itself (a .c or .h another file includes):
# the file of its directory that includes it.
: > /tmp/dmb-includers
awk '{ print $2 }' /tmp/dmb-exporters | sort -u | while read -r file; do
  case $file in *.c) [ -s "${file%.c}.dmb-crcs" ] && continue ;; esac
  dir=${file%/*}
  for other in "$dir"/*.c; do
    if grep -q "^#include \"${file##*/}\"" "$other" 2>/dev/null; then
      echo "$file $other" >> /tmp/dmb-includers
      break
    fi
  done
done
# shellcheck disable=SC2046
[ -s /tmp/dmb-includers ] && symtypes $(awk '{ print $2 }' /tmp/dmb-includers | sort -u)
# Each symbol from the first of its exporters that genksyms went through
# (several files may export it, for other configurations or architectures).
while read -r sym; do
  first="" found=""
  # shellcheck disable=SC2013 # paths in the tree have no spaces
  for file in $(awk -v s="$sym" '$1 == s { print $2 }' /tmp/dmb-exporters); do
    [ -n "$first" ] || first=$file
    unit=$(awk -v f="$file" '$1 == f { print $2; exit }' /tmp/dmb-includers)
    crcs=${unit:-$file}
    crc=$(awk -v s="$sym" '$1 == "#SYMVER" && $2 == s { print $3; exit }' "${crcs%.c}.dmb-crcs" 2>/dev/null)
    if [ -n "$crc" ]; then echo "@@dmb:crc $sym $crc $file"; found=1; break; fi
  done
  [ -n "$found" ] || echo "@@dmb:failed $first $sym"
done < /tmp/dmb-found
exit 0
