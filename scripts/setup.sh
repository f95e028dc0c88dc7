#!/usr/bin/env bash
# Everything dmb's tests and examples need on a Debian machine: the packages,
# a Docker engine that answers, and the kit's images. Idempotent.
# Prints the kit's KVER=, KERNEL_REF=, BUILD_REF= lines on stdout, so that
#   scripts/setup.sh > kit.env && env $(cat kit.env) dmb build ...
# sets them for dmb. Progress goes to stderr.
#
# When no engine answers, it starts dockerd and records its pid in
# ${DMB_STATE_DIR:-/run/dmb}/dockerd.pid; `scripts/setup.sh --stop-engine`
# stops that one (and only that one).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
state=${DMB_STATE_DIR:-/run/dmb}
pidfile=$state/dockerd.pid

log() { echo "setup: $*" >&2; }

stop_engine() {
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping the dockerd this script started (pid $pid)"
    kill "$pid"
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  fi
  rm -f "$pidfile"
}

if [ "${1:-}" = "--stop-engine" ]; then
  stop_engine
  exit 0
fi

# Packages: the engine and Debian's 20.10 docker CLI (BuildKit through
# DOCKER_BUILDKIT=1), debootstrap for the kit, xz and dpkg-deb for its images.
missing=()
command -v dockerd >/dev/null 2>&1 && [ -x /usr/bin/docker ] || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v xz >/dev/null 2>&1 || missing+=(xz-utils)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v zstd >/dev/null 2>&1 || missing+=(zstd)
# The desktop-sim VM (scripts/sim.sh): qemu, cpio and lz4 for its
# initramfs, mkfs.ext4 for its disk.
command -v qemu-system-x86_64 >/dev/null 2>&1 || missing+=(qemu-system-x86)
command -v cpio >/dev/null 2>&1 || missing+=(cpio)
command -v lz4 >/dev/null 2>&1 || missing+=(lz4)
command -v mkfs.ext4 >/dev/null 2>&1 || missing+=(e2fsprogs)
# ip and nsenter: the tests' spare engine runs in a network namespace of
# its own (tests/common/spare_engine.rs); script: the progress test's
# pseudo-terminal.
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v nsenter >/dev/null 2>&1 || missing+=(util-linux)
command -v script >/dev/null 2>&1 || missing+=(bsdutils)
# openssl: the signing test makes a key for the kernel's sign-file.
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# The test command lints every shell script with shellcheck, dmb's in-container
# scripts (src/scripts/) among them.
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
# The man page test renders `dmb man` with man -l (groff).
command -v man >/dev/null 2>&1 || missing+=(man-db)
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

docker=${DMB_DOCKER:-docker}
if ! "$docker" info >/dev/null 2>&1; then
  mkdir -p "$state"
  log "no Docker engine answers: starting dockerd (log: $state/dockerd.log)"
  dockerd >"$state/dockerd.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 120); do
    "$docker" info >/dev/null 2>&1 && break
    kill -0 "$(cat "$pidfile")" 2>/dev/null || { tail -20 "$state/dockerd.log" >&2; exit 1; }
    sleep 0.5
  done
  "$docker" info >/dev/null 2>&1 || { log "dockerd did not answer within 60 s"; exit 1; }
fi

bash "$here/kit.sh" >/dev/null
# A header tree of another kernel release, for the tests of `dmb check`.
bash "$here/kit.sh" --other-headers >/dev/null
exec bash "$here/kit.sh"
