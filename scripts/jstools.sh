#!/usr/bin/env bash
# The pinned JavaScript tools of one package directory (its package.json and package-lock.json):
# `npm ci` into DIR/node_modules, once per lock file (a stamp holds the lock's hash; a changed lock or
# an unfinished install installs again).
#
#   scripts/jstools.sh [DIR]   default tests/a2a/js (the A2A suite's @a2a-js/sdk client test)
#
# Needs node >= 20 and npm (@a2a-js/sdk's engines).  Without them it says so and exits 0: the tests
# that need them skip (tests/a2a/test_js_sdk.py).  An install that fails is an error.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-tests/a2a/js}
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "jstools: node and npm are not installed; the JavaScript SDK tests will be skipped" >&2
  exit 0
fi
major=$(node --version | sed -E 's/^v([0-9]+).*/\1/')
if [ "${major:-0}" -lt 20 ]; then
  echo "jstools: node $(node --version) is older than 20; the JavaScript SDK tests will be skipped" >&2
  exit 0
fi
hash=$(sha256sum "$DIR/package-lock.json" | cut -c1-16)
stamp="$DIR/node_modules/.switchboard-$hash"
if [ ! -f "$stamp" ]; then
  echo "jstools: npm ci in $DIR" >&2
  (cd "$DIR" && npm ci --no-audit --no-fund --loglevel=error >&2)
  touch "$stamp"
fi
