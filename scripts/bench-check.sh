#!/usr/bin/env bash
# Benchmark: `dmb check` over the whole module tree of the kit's kernel
# against its Module.symvers, side by side with the nearest existing tool,
# `depmod -e -E Module.symvers` (which checks only symbol CRCs), on the same
# tree, in one run. Prints hyperfine's table; medians of >= 5 runs.
#
# Needs: the kit (scripts/setup.sh), hyperfine and depmod on the host
# (`apt-get install hyperfine kmod`). depmod -b only writes index files into
# the unpacked copy; nothing touches the running kernel.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-10}

for tool in hyperfine depmod; do
  command -v "$tool" >/dev/null || { echo "bench: needs $tool (apt-get install hyperfine kmod)" >&2; exit 1; }
done
eval "$(bash scripts/kit.sh | sed 's/^/export /')"
cargo build --release --locked >&2
dmb=$PWD/target/release/dmb

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
unpack() {  # image path-in-image destination
  local id
  id=$(docker create "$1" /none)
  docker cp "$id:$2" - | tar -xO | tar -x -C "$3"
  docker rm "$id" >/dev/null
}
unpack "$KERNEL_REF" /kernel-dev.tar "$work"
unpack "$KERNEL_REF" /kernel.tar "$work"
headers=$work/usr/src/linux-headers-$KVER
modules=$work/lib/modules/$KVER
count=$(find "$modules" -name '*.ko*' | wc -l)

echo "# $count modules of $KVER; $(nproc) cores; $(date -u +%Y-%m-%d)"
echo "# dmb: $("$dmb" --version); depmod: $(depmod --version | head -n 1)"
hyperfine --warmup 2 --runs "$runs" --style basic \
  --export-markdown "$work/bench.md" --export-json "$work/bench.json" \
  -n "dmb check" "$dmb check --kernel-dir $headers --modules-dir $modules" \
  -n "depmod -e -E" "depmod -e -E $headers/Module.symvers -b $work $KVER"
cat "$work/bench.md"
python3 - "$work/bench.json" <<'PY'
import json, statistics, sys
results = json.load(open(sys.argv[1]))["results"]
print()
print("| command | median [ms] | runs | user [ms] | system [ms] |")
print("|:---|---:|---:|---:|---:|")
for r in results:
    print(f"| `{r['command']}` | {statistics.median(r['times']) * 1000:.1f} | {len(r['times'])} "
          f"| {r['user'] * 1000:.1f} | {r['system'] * 1000:.1f} |")
PY
