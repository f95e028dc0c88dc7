#!/bin/sh
# The CRCs genksyms computes, under the prepared tree's own configuration,
# for the exported symbols named as parameters: the C file that exports each
# (EXPORT_SYMBOL* by name, in the tree or under arch/$KARCH only) is
# preprocessed the way kbuild does (`make FILE.symtypes`) and run through
# scripts/genksyms, whose output a wrapper keeps. A file kbuild does not
# compile by itself (kernel/sched/wait.c) is taken through the file of its
# directory that #includes it. Records: `crc SYMBOL 0xCRC FILE`, `unfound
# SYMBOL` (nothing exports it by name, nor declares it for assembly), `failed FILE
# SYMBOL` (kbuild could not run genksyms over it); `crc` records carry the
# export macro as a fifth field (EXPORT_SYMBOL_GPL). $KVER: the release;
# $KCC: the kernel's compiler command; $KARCH: its source architecture.
set -u
cd /usr/src/linux || exit 1
jobs=$(nproc 2>/dev/null || echo 1)
cc=${KCC:-gcc}
command -v "$cc" >/dev/null 2>&1 || cc=gcc
arch=${KARCH:-x86}
printf '%s\n' "$@" | sort -u > /tmp/dmb-want
# Exports by name, and the ones macros make of a name: a tracepoint exports
# __tracepoint_, __traceiter_ and its static call's __SCK__/__SCT__ symbols;
# a static call its key and trampoline.
grep -rEo --include='*.c' --include='*.h' 'EXPORT_(SYMBOL|PER_CPU_SYMBOL|EARLY_PER_CPU_SYMBOL|TRACEPOINT_SYMBOL|STATIC_CALL|STATIC_CALL_TRAMP)(_GPL)?(_NS)?(_GPL)?\([[:space:]]*[A-Za-z0-9_]+' . 2>/dev/null \
  | sed -e 's#^\./##' -e 's#:\(EXPORT_[A-Z_]*\)([[:space:]]*# \1 #' \
  | awk '{ kind = ($2 ~ /GPL/) ? "EXPORT_SYMBOL_GPL" : "EXPORT_SYMBOL" }
         $2 ~ /^EXPORT_TRACEPOINT_SYMBOL/ {
           print $1, kind, "__tracepoint_" $3; print $1, kind, "__traceiter_" $3
           print $1, kind, "__SCK__tp_func_" $3; print $1, kind, "__SCT__tp_func_" $3; next }
         $2 ~ /^EXPORT_STATIC_CALL_TRAMP/ { print $1, kind, "__SCT__" $3; next }
         $2 ~ /^EXPORT_STATIC_CALL/ { print $1, kind, "__SCK__" $3; print $1, kind, "__SCT__" $3; next }
         $2 ~ /^EXPORT_EARLY_PER_CPU_SYMBOL/ {
           print $1, kind, $3; print $1, kind, $3 "_early_ptr"; print $1, kind, $3 "_early_map"; next }
         { print }' \
  | awk -v arch="arch/$arch/" '$1 !~ "^arch/" || index($1, arch) == 1' \
  | awk 'NR == FNR { want[$0] = 1; next } ($3 in want) && !seen[$3 " " $1]++ { print $3, $1, $2 }' /tmp/dmb-want - \
  > /tmp/dmb-exporters
awk '{ print $1 }' /tmp/dmb-exporters | sort -u > /tmp/dmb-found
comm -23 /tmp/dmb-want /tmp/dmb-found > /tmp/dmb-unfound
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
    if grep -Eq "^#[[:space:]]*include \"${file##*/}\"" "$other" 2>/dev/null; then
      echo "$file $other" >> /tmp/dmb-includers
      break
    fi
  done
done
# shellcheck disable=SC2046
[ -s /tmp/dmb-includers ] && symtypes $(awk '{ print $2 }' /tmp/dmb-includers | sort -u)
# Exports of assembly (memcpy, __fentry__, __x86_return_thunk: every
# module imports some), as kbuild versions a .S file: a C file that
# includes <asm/asm-prototypes.h> and exports them by name, through
# genksyms. A symbol no prototype there declares gets no CRC (nor does it
# from kbuild); it stays `unfound`.
# Only what a .S file exports by name goes in: another export the C grep
# missed (made by a macro) would get the CRC of another declaration.
asm=arch/$arch/lib/dmb-asm-exports.c
grep -rEoh --include='*.S' 'EXPORT_SYMBOL(_GPL)?\([[:space:]]*[A-Za-z0-9_]+' . 2>/dev/null \
  | sed 's#^\(EXPORT_SYMBOL[A-Z_]*\)([[:space:]]*# \1 #' | awk '{ print $2, $1 }' > /tmp/dmb-asm-kinds
awk 'NR == FNR { asm[$1] = 1; next } ($1 in asm)' /tmp/dmb-asm-kinds /tmp/dmb-unfound > /tmp/dmb-asm-wanted
if [ -s /tmp/dmb-asm-wanted ] && [ -d "${asm%/*}" ]; then
  {
    printf '#include <linux/kernel.h>\n#include <linux/export.h>\n#include <asm/asm-prototypes.h>\n'
    sed 's/.*/EXPORT_SYMBOL(&);/' /tmp/dmb-asm-wanted
  } > "$asm"
  symtypes "$asm"
  # shellcheck disable=SC2016 # an awk program
  awk -v f="$asm" 'FILENAME == "/tmp/dmb-asm-kinds" { kind[$1] = $2; next }
       $1 == "#SYMVER" { print $2, f, ($2 in kind) ? kind[$2] : "EXPORT_SYMBOL" }' \
    /tmp/dmb-asm-kinds "${asm%.c}.dmb-crcs" >> /tmp/dmb-exporters 2>/dev/null
fi
awk '{ print $1 }' /tmp/dmb-exporters | sort -u > /tmp/dmb-found
comm -23 /tmp/dmb-want /tmp/dmb-found | while read -r s; do echo "@@dmb:unfound $s"; done
# Where several files export one symbol (for other configurations or
# platforms: drivers/sh/clk/core.c and drivers/clk/clk.c both export
# clk_enable), a file kbuild does not build into the kernel under this
# configuration is taken only when no other file gives a CRC: its object,
# or a directory on the way to it, is behind an option that is not `y`.
not_built_in() {  # FILE: true when the Makefiles say it is not built in
  dir=${1%/*} obj=${1##*/}
  obj=${obj%.*}.o
  while :; do
    mk=$dir/Makefile
    [ -f "$mk" ] || mk=$dir/Kbuild
    if [ -f "$mk" ]; then
      how=$(awk -v o="$obj" '{ for (i = 2; i <= NF; i++) if ($i == o) { print $1; exit } }' "$mk")
      case $how in
        obj-y*) ;;
        obj-\$\(CONFIG_*)
          opt=${how#obj-\$(CONFIG_}
          opt=${opt%%)*}
          grep -q "^CONFIG_$opt=y" .config || return 0 ;;
      esac
    fi
    case $dir in */*) ;; *) return 1 ;; esac
    obj=${dir##*/}/
    dir=${dir%/*}
  done
}
awk '{ n[$1]++ } END { for (s in n) if (n[s] > 1) print s }' /tmp/dmb-exporters > /tmp/dmb-several
: > /tmp/dmb-not-built
# shellcheck disable=SC2013 # symbols and paths have no spaces
for file in $(awk 'NR == FNR { several[$0] = 1; next } ($1 in several) { print $2 }' /tmp/dmb-several /tmp/dmb-exporters | sort -u); do
  if not_built_in "$file"; then echo "$file" >> /tmp/dmb-not-built; fi
done
# Each symbol from the first of its exporters that genksyms went through,
# built-in ones first, in one pass: thousands of symbols may be asked for.
# shellcheck disable=SC2016 # an awk program
find . -name '*.dmb-crcs' -print0 | xargs -0 -r awk '$1 == "#SYMVER" {
    f = FILENAME; sub(/^\.\//, "", f); sub(/\.dmb-crcs$/, ".c", f); print f, $2, $3 }' \
  > /tmp/dmb-computed
awk 'FILENAME == "/tmp/dmb-includers" { unit[$1] = $2; next }
     FILENAME == "/tmp/dmb-computed" { crc[$1 " " $2] = $3; next }
     FILENAME == "/tmp/dmb-not-built" { skip[$1] = 1; next }
     {
       sym = $1; file = $2; u = (file in unit) ? unit[file] : file
       if (!(sym in first)) { first[sym] = file; order[++n] = sym }
       if ((u " " sym) in crc) {
         if (file in skip) { if (!(sym in late)) late[sym] = crc[u " " sym] " " file " " $3 }
         else if (!(sym in done)) { done[sym] = 1; print "@@dmb:crc", sym, crc[u " " sym], file, $3 }
       }
     }
     END {
       for (i = 1; i <= n; i++) {
         s = order[i]
         if (s in done) continue
         if (s in late) print "@@dmb:crc", s, late[s]
         else print "@@dmb:failed", first[s], s
       }
     }' /tmp/dmb-includers /tmp/dmb-computed /tmp/dmb-not-built /tmp/dmb-exporters
exit 0
