#!/usr/bin/env bash
# Benchmark: `dmb build` of examples/hello for two kernels in one run (the
# kit's kernel and `scripts/kit.sh --other-kernel`), one kernel at a time
# (--parallel 1, as before --parallel existed) side by side with two at once
# (--parallel 2, the default): cold (both build environments, the build
# cache, the kept objects and dmb's host caches removed; the kit's images
# present), after one file changed, and with nothing changed. Medians of
# RUNS runs (default 5), seconds, wall clock.
#
# DOCKER (default /usr/bin/docker: Debian's 20.10 CLI, BuildKit with
# DOCKER_BUILDKIT=1) picks the CLI. Cold runs prune the engine's whole build
# cache (`docker builder prune`) and dmb's build-cache volumes.
#
# Needs: the kit (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
docker_cli=${DOCKER:-/usr/bin/docker}
eval "$(bash scripts/kit.sh | sed 's/^/export /')"
other=$(bash scripts/kit.sh --other-kernel | sed -n 's/^KERNEL_REF=//p')
cargo build --release --locked >&2
dmb=$PWD/target/release/dmb
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export DMB_CACHE_DIR="$work/dmb-cache"
cp -r examples/hello "$work/hello"

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f\n", b - a }'; }
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
change() { printf '/* bench %s */\n' "$(now)" >> "$1"; }

build() {  # PARALLEL: one two-kernel dmb build, timed; prints seconds
  local t0
  t0=$(now)
  "$dmb" --docker "$docker_cli" build -q "$work/hello" --module-ref dmb-bench/matrix \
    --kernel-ref "$KERNEL_REF" --kernel-ref "$other" --parallel "$1" \
    >/dev/null 2>"$work/log" || { cat "$work/log" >&2; exit 1; }
  since "$t0"
}

buildenv_tags() {  # the two build environments' tags, as -v names them
  "$dmb" --docker "$docker_cli" -v build -q "$work/hello" --module-ref dmb-bench/matrix \
    --kernel-ref "$KERNEL_REF" --kernel-ref "$other" 2>&1 \
    | grep -o 'dmb-buildenv:[0-9a-f]\{16\}' | sort -u
}

make_cold() {
  local tags vols
  tags=$(buildenv_tags)
  # shellcheck disable=SC2086
  "$docker_cli" image rm $tags >/dev/null
  "$docker_cli" builder prune -af >/dev/null 2>&1 || true
  vols=$("$docker_cli" volume ls -q --filter label=dmb.build-cache)
  # shellcheck disable=SC2086
  if [ -n "$vols" ]; then "$docker_cli" volume rm $vols >/dev/null; fi
  rm -rf "$DMB_CACHE_DIR"
}

declare -A cold one same
for p in 1 2; do cold[$p]="" one[$p]="" same[$p]=""; done
for _ in $(seq "$runs"); do
  # Alternating which goes first, so that neither always meets a warmer
  # page cache.
  for p in 1 2; do
    make_cold
    cold[$p]+=" $(build "$p")"
    change "$work/hello/hello.c"
    one[$p]+=" $(build "$p")"
    same[$p]+=" $(build "$p")"
  done
done

echo "# dmb build for two kernels: one at a time against two at once"
echo
echo "$(nproc) cores; kernels $KERNEL_REF and $other; builder $BUILD_REF;" \
  "$("$docker_cli" version --format 'CLI {{.Client.Version}}, engine {{.Server.Version}}');" \
  "$(date -u +%Y-%m-%d); $("$dmb" --version); $runs runs each"
echo
echo "| examples/hello, two kernels | --parallel 1 | --parallel 2 | ratio |"
echo "|:---|---:|---:|---:|"
row() {  # NAME ARRAY-NAME
  local -n runs_of=$2
  local a b
  # shellcheck disable=SC2086
  a=$(median ${runs_of[1]}) b=$(median ${runs_of[2]})
  awk -v n="$1" -v a="$a" -v b="$b" 'BEGIN { printf "| %s | %.2f | %.2f | %.2f |\n", n, a, b, b / a }'
}
row "cold" cold
row "one file changed" one
row "nothing changed" same
"$docker_cli" image rm "dmb-bench/matrix:$KVER" "dmb-bench/matrix:${other##*:}" >/dev/null 2>&1 || true
