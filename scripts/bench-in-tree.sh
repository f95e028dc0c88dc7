#!/usr/bin/env bash
# Benchmark: `dmb build --in-tree sctp` for the kit's kernel on this
# machine's engine, cold (no source or prepared-tree image cached) and warm
# (both cached; make runs again), side by side with the floor: `make M=net/sctp
# sctp.ko` in the prepared tree, in a container of the prepared image. Prints
# one table; seconds, wall clock.
#
# Every run uses the legacy builder (the default of the docker CLI first on
# PATH here): BuildKit keeps the steps of a build in its own cache, which
# removing the images does not empty, and reuses the result of a make whose
# inputs did not change, which is no measure of a build. The engine here
# runs another kernel than the kit's, so dmb also builds sctp's
# dependencies (libcrc32c, udp_tunnel, ip6_udp_tunnel); the first floor
# builds sctp alone (the issue's floor), the second the same four modules,
# one make after another.
#
# Needs: the kit (scripts/setup.sh). Removes the kit's dmb-kernel-source and
# dmb-kernel-prepared images first (cold means cold); nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
eval "$(bash scripts/kit.sh | sed 's/^/export /')"
cargo build --release --locked >&2
dmb=$PWD/target/release/dmb
probe=$(bash scripts/sim.sh busybox)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

build() {  # one in-tree build of sctp, timed; prints seconds
  local t0 t1
  t0=$(date +%s.%N)
  DMB_NO_VM_FILES=1 "$dmb" build -q --builder legacy --probe-image "$probe" \
    --in-tree sctp --module-ref dmb-bench/sctp -o "$work/out" >/dev/null 2>"$work/log" \
    || { cat "$work/log" >&2; exit 1; }
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f\n", b - a }'
}

for repo in dmb-kernel-source dmb-kernel-prepared; do
  ids=$(docker images -q "$repo")
  if [ -n "$ids" ]; then
    # shellcheck disable=SC2086
    docker image rm $ids >/dev/null
  fi
done
cold=$(build)
warm=()
for _ in $(seq "$runs"); do warm+=("$(build)"); done
prepared=$(docker images --format '{{.Repository}}:{{.Tag}}' dmb-kernel-prepared | head -n 1)
floor() {  # DIR MODULE ...: make M=DIR MODULE for each pair, one after another, timed
  docker run --rm --network none "$prepared" sh -c '
    cd /usr/src/linux && t0=$(date +%s.%N) &&
    while [ $# -gt 0 ]; do
      make -j"$(nproc)" CC="$KCC" KERNELRELEASE="$KVER" M="$1" "$2" >/dev/null 2>&1 || exit 1
      shift 2
    done &&
    t1=$(date +%s.%N) && awk -v a="$t0" -v b="$t1" "BEGIN { printf \"%.2f\n\", b - a }"' sh "$@"
}
floor=()
floor4=()
for _ in $(seq "$runs"); do
  floor+=("$(floor net/sctp sctp.ko)")
  floor4+=("$(floor lib libcrc32c.ko net/ipv4 udp_tunnel.ko net/ipv6 ip6_udp_tunnel.ko net/sctp sctp.ko)")
done
docker image rm dmb-bench/sctp >/dev/null 2>&1 || true

median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo "# dmb build --in-tree sctp for $KVER; $(nproc) cores; $(date -u +%Y-%m-%d); $("$dmb" --version)"
echo
echo "| run | seconds | runs | goal |"
echo "|:---|---:|---:|:---|"
printf '| dmb cold (no source or prepared tree cached) | %.1f | 1 | <= 300 |\n' "$cold"
printf '| dmb warm (prepared tree cached; make runs) | %.1f | %s | <= 30 and <= 1.5x floor |\n' "$(median "${warm[@]}")" "$runs"
printf '| floor: make M=net/sctp sctp.ko in the prepared tree | %.1f | %s | |\n' "$(median "${floor[@]}")" "$runs"
printf '| floor, the same 4 modules: 4 makes, one after another | %.1f | %s | |\n' "$(median "${floor4[@]}")" "$runs"
awk -v w="$(median "${warm[@]}")" -v f="$(median "${floor[@]}")" -v g="$(median "${floor4[@]}")" \
  'BEGIN { printf "\nwarm / floor: %.2f; warm / floor of the same 4 modules: %.2f\n", w / f, w / g }'
