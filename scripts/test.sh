#!/usr/bin/env bash
# The whole test suite: formatting, lints (Rust and shell), unit and
# integration tests (against a real engine and the kit's real kernel headers).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
cargo fmt --check
shellcheck src/scripts/*.sh scripts/*.sh scripts/lib/*.sh scripts/sim/init .ci/run
cargo clippy --all-targets --locked -- -D warnings
# Every test binary runs, so that one failure does not hide another.
cargo test --locked --no-fail-fast
