#!/bin/sh
# sync_sources.sh FROM TO MANIFEST: makes the build directory TO (kept
# between builds, with the objects of the last one) hold the module's
# sources in FROM, which MANIFEST lists as `SHA256 PATH` lines. TO keeps
# the manifest of the sources it holds in .dmb-sources.
#
# Only files whose content changed are copied, so that make sees exactly
# those as newer than their objects. When files came or went, or a
# Makefile, Kbuild or *.mk changed, what the build makes may have changed
# too (a module renamed leaves its old .ko behind): TO is emptied and the
# build is a full one. So is the first, and one whose manifest is missing
# (an interrupted sync removes it before it copies anything). When nothing
# changed, /tmp/dmb-unchanged says so.
set -u
from=$1 to=$2 manifest=$3
state="$to/.dmb-sources"
mkdir -p "$to"
full=""
if [ -f "$state" ]; then
  # The hash is 64 hex digits and a space: the path is the rest of the
  # line, whatever it holds.
  awk 'NR == FNR { old[substr($0, 66)] = substr($0, 1, 64); next }
       { p = substr($0, 66); seen[p] = 1
         if (!(p in old)) print "new " p
         else if (old[p] != substr($0, 1, 64)) print "changed " p }
       END { for (p in old) if (!(p in seen)) print "gone " p }' \
    "$state" "$manifest" > /tmp/dmb-changes || exit 1
  rm -f "$state"
  if grep -q -e '^new ' -e '^gone ' /tmp/dmb-changes; then
    full="files were added or removed"
  elif sed -n 's/^changed //p' /tmp/dmb-changes | grep -q -E '(^|/)(GNUmakefile|[Mm]akefile|Kbuild|[^/]*\.mk)$'; then
    full="a Makefile changed"
  fi
else
  full="no earlier build for this module and build environment"
fi

if [ -n "$full" ]; then
  echo "dmb: full build: $full"
  find "$to" -mindepth 1 -maxdepth 1 ! -name .dmb-lock -exec rm -rf {} + || exit 1
  cp -R -P "$from/." "$to/" || exit 1
else
  n=0
  while IFS= read -r line; do
    p=${line#changed }
    rm -f "$to/$p" || exit 1
    cp -P "$from/$p" "$to/$p" || exit 1
    echo "dmb: changed: $p"
    n=$((n + 1))
  done < /tmp/dmb-changes
  echo "dmb: incremental build: $n changed file(s)"
  if [ "$n" -eq 0 ]; then : > /tmp/dmb-unchanged; fi
fi
cp "$manifest" "$state" || exit 1
