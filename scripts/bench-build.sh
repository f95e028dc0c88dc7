#!/usr/bin/env bash
# Benchmark: `dmb build` of examples/hello and of a large real module (the
# kernel part of jool-dkms from Debian's archive, src/mod with the headers
# of src/: 71 C files, three modules) for the kit's kernel, on this machine's engine, side by side with
#   (a) the floor: the module's make (-j as dmb) in a running container of
#       the build environment, timed inside it: full, and after one file
#       changed;
#   (e) the seed recipe transcribed: one image build that copies
#       kernel-dev.tar and kernel.tar out of the kernel image, unpacks both
#       (--keep-directory-symlink: a merged-/usr builder would lose /lib),
#       copies the module, runs make and copies the .ko files to scratch;
#       cold (no build cache) and after one file changed.
# and dmb (b) after one file changed, (c) with nothing changed, (d) cold:
# the build environment, the build cache and dmb's host caches removed,
# the kit's images present. Medians of RUNS runs (default 5), seconds, wall
# clock. Prints one table per module and the ratios b/a, c/a, d/e, b/e.
#
# DOCKER (default /usr/bin/docker: Debian's 20.10 CLI, BuildKit with
# DOCKER_BUILDKIT=1) picks the CLI; with one that has no BuildKit, dmb and
# the seed use the legacy builder. Cold runs prune the engine's whole build
# cache (`docker builder prune`) and dmb's build-cache volumes.
#
# MODULES="hello" (or "jool") runs one of the two.
#
# Needs: the kit (scripts/setup.sh) and, for jool, Debian's archive (apt).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
docker_cli=${DOCKER:-/usr/bin/docker}
eval "$(bash scripts/kit.sh | sed 's/^/export /')"
cargo build --release --locked >&2
dmb=$PWD/target/release/dmb
work=$(mktemp -d)
floor_ctr=""
cleanup() {
  if [ -n "$floor_ctr" ]; then "$docker_cli" rm -f "$floor_ctr" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
export DMB_CACHE_DIR="$work/dmb-cache"
if "$docker_cli" buildx version >/dev/null 2>&1 || DOCKER_BUILDKIT=1 "$docker_cli" build --help 2>/dev/null | grep -q -- '--output'; then
  buildkit=1
else
  buildkit=0
fi

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f\n", b - a }'; }
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
change() { printf '/* bench %s */\n' "$(now)" >> "$1"; }

# The large module: jool's kernel modules, as Debian ships them.
debs=${XDG_CACHE_HOME:-$HOME/.cache}/dmb-kit/dkms
mkdir -p "$debs"
if ! ls "$debs"/jool-dkms_*.deb >/dev/null 2>&1; then
  (cd "$debs" && apt-get download jool-dkms >&2)
fi
mkdir -p "$work/jool-deb" "$work/jool"
dpkg-deb -x "$(find "$debs" -name 'jool-dkms_*.deb' | sort | tail -n 1)" "$work/jool-deb"
# Its kernel modules are src/mod/{common,nat64,siit}, which include
# headers from src/ (mod/common/...): the module directory is src/'s parent,
# with a Makefile of ours that runs the three makes of its dkms.conf, one
# after another (jool's own src/mod/Makefile runs them at once under -j,
# and the second needs the first's Module.symvers).
cp -r "$work"/jool-deb/usr/src/jool-*/src "$work/jool/src"
cat > "$work/jool/Makefile" <<'EOF'
KDIR ?= /lib/modules/$(shell uname -r)/build
all:
	$(MAKE) -C $(KDIR) M=$(CURDIR)/src/mod/common modules
	$(MAKE) -C $(KDIR) M=$(CURDIR)/src/mod/nat64 modules
	$(MAKE) -C $(KDIR) M=$(CURDIR)/src/mod/siit modules
EOF
jool=$work/jool
cp -r examples/hello "$work/hello"

dmb_build() {  # DIR: one dmb build, timed; prints seconds
  local t0
  t0=$(now)
  "$dmb" --docker "$docker_cli" build -q "$1" --module-ref dmb-bench/module \
    >/dev/null 2>"$work/log" || { cat "$work/log" >&2; exit 1; }
  since "$t0"
}

make_cold() {  # everything a cold dmb build has to make again
  "$docker_cli" image rm "$env_tag" >/dev/null
  "$docker_cli" builder prune -af >/dev/null 2>&1 || true
  local vols
  vols=$("$docker_cli" volume ls -q --filter label=dmb.build-cache)
  # shellcheck disable=SC2086
  if [ -n "$vols" ]; then "$docker_cli" volume rm $vols >/dev/null; fi
  rm -rf "$DMB_CACHE_DIR"
}

buildenv_tag() {
  "$dmb" --docker "$docker_cli" -v build -q "$work/hello" --module-ref dmb-bench/module 2>&1 \
    | grep -o 'dmb-buildenv:[0-9a-f]\{16\}' | head -n 1
}

floor() {  # DIR FILE MAKEVARS: full and one-file make in a running container; sets floor_full, floor_one
  local dir=$1 file=$2 vars=$3 full=() one=() i
  floor_ctr=$("$docker_cli" run -d --network none -e KVER="$KVER" "$env_tag" sleep infinity)
  for i in $(seq "$runs"); do
    "$docker_cli" exec "$floor_ctr" rm -rf /usr/src/module
    "$docker_cli" cp "$dir/." "$floor_ctr:/usr/src/module"
    # shellcheck disable=SC2016
    full+=("$("$docker_cli" exec "$floor_ctr" sh -c 'cd /usr/src/module && t0=$(date +%s.%N) &&
      { make -j"$(nproc)" '"$vars"' >/tmp/floor.log 2>&1 || { tail -n 20 /tmp/floor.log >&2; exit 1; }; } &&
      t1=$(date +%s.%N) && awk -v a="$t0" -v b="$t1" "BEGIN { printf \"%.2f\n\", b - a }"')")
    # shellcheck disable=SC2016
    one+=("$("$docker_cli" exec "$floor_ctr" sh -c 'cd /usr/src/module && printf "/* %s */\n" '"$i"' >> "$1" &&
      t0=$(date +%s.%N) &&
      { make -j"$(nproc)" '"$vars"' >/tmp/floor.log 2>&1 || { tail -n 20 /tmp/floor.log >&2; exit 1; }; } &&
      t1=$(date +%s.%N) && awk -v a="$t0" -v b="$t1" "BEGIN { printf \"%.2f\n\", b - a }"' sh "$file")")
  done
  "$docker_cli" rm -f "$floor_ctr" >/dev/null
  floor_ctr=""
  floor_full=$(median "${full[@]}")
  floor_one=$(median "${one[@]}")
}

seed() {  # DIR MAKEVARS: the seed recipe as one image build; prints seconds
  local dir=$1 vars=$2 ctx="$work/seed" t0
  rm -rf "$ctx" && mkdir -p "$ctx" && cp -r "$dir" "$ctx/module"
  cat > "$ctx/Dockerfile" <<EOF
FROM $KERNEL_REF AS kernel
FROM $BUILD_REF AS build
COPY --from=kernel /kernel-dev.tar /kernel.tar /
RUN tar -xf /kernel-dev.tar --keep-directory-symlink -C / && tar -xf /kernel.tar --keep-directory-symlink -C / && rm /kernel-dev.tar /kernel.tar
COPY module/ /usr/src/module/
RUN make -C /usr/src/module $vars && mkdir /out && find /usr/src/module -name '*.ko' -exec cp {} /out/ \;
FROM scratch
COPY --from=build /out/ /
EOF
  t0=$(now)
  DOCKER_BUILDKIT=$buildkit "$docker_cli" build --network none -t dmb-bench/seed "$ctx" \
    >"$work/log" 2>&1 || { tail -n 20 "$work/log" >&2; exit 1; }
  since "$t0"
}

bench() {  # NAME DIR FILE MAKEVARS: one module's table
  local name=$1 dir=$2 file=$3 vars=$4 b=() c=() d=() e_cold=() e_one=() i
  floor "$dir" "$file" "$vars"
  for i in $(seq "$runs"); do
    make_cold
    d+=("$(dmb_build "$dir")")
    change "$dir/$file"
    b+=("$(dmb_build "$dir")")
    c+=("$(dmb_build "$dir")")
  done
  for i in $(seq "$runs"); do
    "$docker_cli" builder prune -af >/dev/null 2>&1 || true
    e_cold+=("$(seed "$dir" "$vars")")
    change "$dir/$file"
    e_one+=("$(seed "$dir" "$vars")")
  done
  local mb mc md mec meo
  mb=$(median "${b[@]}") mc=$(median "${c[@]}") md=$(median "${d[@]}")
  mec=$(median "${e_cold[@]}") meo=$(median "${e_one[@]}")
  echo
  echo "## $name ($(find "$dir" -name '*.c' | wc -l) C files), $runs runs each"
  echo
  echo "| run | seconds |"
  echo "|:---|---:|"
  echo "| (a) floor: make in a running container, full | $floor_full |"
  echo "| (a) floor: make in a running container, one file changed | $floor_one |"
  echo "| (b) dmb, one file changed | $mb |"
  echo "| (c) dmb, nothing changed | $mc |"
  echo "| (d) dmb cold | $md |"
  echo "| (e) seed recipe, cold | $mec |"
  echo "| (e) seed recipe, one file changed | $meo |"
  echo
  awk -v a="$floor_one" -v b="$mb" -v c="$mc" -v d="$md" -v e="$mec" -v f="$meo" 'BEGIN {
    printf "b/a %.2f (goal: b <= 1.5 a + 0.5 s for hello, <= 1.5 a for the large module: b - 1.5 a = %+.2f s)\n", b / a, b - 1.5 * a
    printf "c/a %.2f (goal: c <= a + 1.0 s: c - a = %+.2f s)\n", c / a, c - a
    printf "d/e %.2f (goal: <= 0.5; cold against the seed cold)\n", d / e
    printf "b/e %.2f (one file changed, against the seed after one file changed: %.2f)\n", b / e, b / f
    printf "b/d %.2f (goal for the large module: <= 0.1)\n", b / d
  }'
}

echo "# dmb build against its floor and the seed recipe"
echo
echo "$(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 }') GiB; kernel $KVER (kit); builder $BUILD_REF;" \
  "$("$docker_cli" version --format 'CLI {{.Client.Version}}, engine {{.Server.Version}}')," \
  "$([ "$buildkit" = 1 ] && echo BuildKit || echo 'legacy builder'); $(date -u +%Y-%m-%d); $("$dmb" --version)"
env_tag=$(buildenv_tag)
modules=${MODULES:-hello jool}
case " $modules " in *" hello "*)
  bench "examples/hello" "$work/hello" hello.c "KDIR=/usr/src/linux-headers-$KVER" ;;
esac
case " $modules " in *" jool "*)
  jool_file=$(cd "$jool" && find src/mod/common -name '*.c' | sort | head -n 1)
  bench "jool-dkms src/mod" "$jool" "$jool_file" "KDIR=/usr/src/linux-headers-$KVER" ;;
esac
"$docker_cli" image rm dmb-bench/module dmb-bench/seed >/dev/null 2>&1 || true
