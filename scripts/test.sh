#!/usr/bin/env bash
# The whole test suite, as README.md gives it and .ci/run calls it: formatting, lints,
# documentation and every test of every crate. Works on a fresh machine: cargo fetches the
# crates, and scripts/install-sqld.sh installs sqld for the remote tests if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
# One build from scratch gains nothing from incremental caches, which would take gigabytes
# of disk beside the build (a fresh run filled a CI machine's disk once). Set it to 1 to keep them.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step() { printf '\n==> %s\n' "$*"; }

# Builds, then writes the build's output to disk before anything timed runs. On a fresh
# clone gigabytes of build output are still being written back when the tests start, and
# a database's sync then waits behind them for seconds (sqld's checkpoints took over 1 s,
# and a remote write waited 30 s for sqld, only in fresh-clone runs): the tests would
# measure the build's write-back, not the store. (docs/RELIABILITY.md)
built() { "$@"; sync; }

step "sqld (libSQL server for the remote and replica tests)"
SQLD_BIN="$(scripts/install-sqld.sh)"
export SQLD_BIN
echo "$SQLD_BIN"

step "rustfmt"
cargo fmt --all -- --check

step "clippy (warnings are errors)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "rustdoc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --locked

step "layering: memory-metrics builds no store (no libSQL in its tree, dev-dependencies included)"
if cargo tree --locked -p memory-metrics -e normal,build,dev | grep -q libsql; then
    echo "memory-metrics depends on libsql:" >&2
    cargo tree --locked -p memory-metrics -e normal,build,dev -i libsql >&2 || true
    exit 1
fi

step "tests"
built cargo test --workspace --all-features --locked --no-run
cargo test --workspace --all-features --locked

step "the benches' small-scale self-checks (every criterion bench once, in test mode)"
cargo test --locked -p memory-bench --benches

step "damaged redb pages in a release build (debug redb refuses such files at open)"
built cargo test --release --locked -p memory-storage-redb --test corrupt --no-run
cargo test --release --locked -p memory-storage-redb --test corrupt

step "the change feed with other writers in other processes, short (the full one: memory-bench feed)"
built cargo build --locked -p memory-bench
cargo run --locked -p memory-bench -- feed --quick

step "similarity, text and hybrid search on a local file, short (the full one: memory-bench search)"
cargo run --locked -p memory-bench -- search --quick

step "short soak (the full one: scripts/soak.sh)"
cargo run --locked -p memory-bench -- soak --secs 20 --tasks 16
