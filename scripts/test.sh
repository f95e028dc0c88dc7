#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and integration tests
# (against a real engine and the kit's real kernel headers).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
