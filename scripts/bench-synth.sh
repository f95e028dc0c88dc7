#!/usr/bin/env bash
# Benchmark: `dmb kernel synthesize` for the kit's kernel from a snapshot of
# the desktop-sim (taken once: `dmb detect --save` in the VM) and the kit
# kernel's own Debian source tarball, cold (no synthesis image cached: the
# source unpacked, the tree prepared, every CRC computed, the image packed),
# then a build of examples/hello against the synthesized image side by side
# with the same build against the kit's real kernel image (each warm: its
# build environment cached; the median of RUNS). Prints one table; seconds,
# wall clock, and the coverage line.
#
# Needs: the kit (scripts/setup.sh) and the sim's prerequisites, or a
# snapshot given as SNAPSHOT=FILE. Removes dmb-synth-source,
# dmb-synth-prepared and dmb-synth/kernel images first (cold means cold).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
eval "$(bash scripts/kit.sh | sed 's/^/export /')"
source_tarball=$(bash scripts/kit.sh --source-tarball)
cargo build --release --locked >&2
dmb=$PWD/target/release/dmb
work=$(mktemp -d)
state=$work/sim
cleanup() {
  if [ -d "$state" ]; then DMB_SIM_STATE=$state bash scripts/sim.sh down >&2 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

snapshot=${SNAPSHOT:-}
if [ -z "$snapshot" ]; then
  snapshot=$work/sim.dmb
  host=$(DMB_SIM_STATE=$state bash scripts/sim.sh up | sed -n 's/^DOCKER_HOST=//p')
  t0=$(date +%s.%N)
  DOCKER_HOST=$host "$dmb" detect --probe-image dmb-kit/busybox:latest --save "$snapshot" >/dev/null
  t1=$(date +%s.%N)
  save=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  DMB_SIM_STATE=$state bash scripts/sim.sh down >&2
else
  save="-"
fi

# Children before their parents: kernel images, prepared trees, sources.
for repo in dmb-synth/kernel dmb-synth-prepared dmb-synth-source; do
  ids=$(docker images -q "$repo")
  if [ -n "$ids" ]; then
    # shellcheck disable=SC2086
    docker image rm -f $ids >/dev/null
  fi
done
t0=$(date +%s.%N)
ref=$(env -u DOCKER_HOST "$dmb" kernel synthesize --snapshot "$snapshot" --source "$source_tarball" 2>"$work/synth.log") \
  || { cat "$work/synth.log" >&2; exit 1; }
t1=$(date +%s.%N)
cold=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
coverage=$(sed -n 's/^dmb: Module.symvers: //p' "$work/synth.log")
steps=$(grep -E '^dmb: [0-9]+ CRCs computed in' "$work/synth.log" | sed 's/^dmb: //' | paste -sd ';' -)

build() {  # KERNEL_REF: one build of examples/hello, timed; prints seconds
  local t0 t1
  t0=$(date +%s.%N)
  DMB_NO_VM_FILES=1 "$dmb" build -q --builder legacy --kernel-ref "$1" --build-ref "$BUILD_REF" \
    examples/hello --module-ref dmb-bench/hello >/dev/null 2>"$work/log" \
    || { cat "$work/log" >&2; exit 1; }
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f\n", b - a }'
}
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
build "$ref" >/dev/null
build "$KERNEL_REF" >/dev/null
ours=() theirs=()
for _ in $(seq "$runs"); do
  ours+=("$(build "$ref")")
  theirs+=("$(build "$KERNEL_REF")")
done
docker image rm dmb-bench/hello >/dev/null 2>&1 || true
o=$(median "${ours[@]}") t=$(median "${theirs[@]}")
printf '| step | seconds |\n|---|---|\n'
printf '| dmb detect --save in the sim (TCG) | %s |\n' "$save"
printf '| dmb kernel synthesize, cold | %s |\n' "$cold"
printf '| hello against the synthesized image (median of %s) | %s |\n' "$runs" "$o"
printf '| hello against the kit'"'"'s real image (median of %s) | %s |\n' "$runs" "$t"
printf '| ratio synthesized / real | %s |\n' "$(awk -v a="$o" -v b="$t" 'BEGIN { printf "%.2f", a / b }')"
echo
echo "coverage: $coverage"
echo "CRC rounds: $steps"
