#!/usr/bin/env bash
# The soak test (docs/RELIABILITY.md): 32 concurrent tasks mix reads, queries, single and
# batch writes through the cached libSQL store for 3 minutes, then a fresh store must hold
# exactly the acknowledged writes. Extra arguments go to `memory-bench soak`
# (--secs, --tasks, --seed).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release --locked -p memory-bench -- soak "$@"
