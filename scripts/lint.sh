#!/usr/bin/env bash
# Static checks run by `make test`: clang-format (no diff), cppcheck and
# clang-tidy (no findings).  Any finding fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

SRC=$(ls lib/*.c router/*.c operator/*.c 2>/dev/null || true)
HDR=$(ls include/switchboard/*.h lib/*.h router/*.h operator/*.h 2>/dev/null || true)
TESTS=$(ls tests/unit/*.c bench/*.c tests/fuzz/*.c tests/fuzz/*.h 2>/dev/null || true)

echo "lint: clang-format"
clang-format --dry-run --Werror $SRC $HDR $TESTS

echo "lint: every header compiles on its own"
PKG_CFLAGS=$(pkg-config --cflags libcurl zlib jansson yaml-0.1 libmicrohttpd gnutls sqlite3 libsodium libxxhash yajl liburcu-bp)
for h in $HDR; do
  echo "#include \"$(basename "$h")\"" | cc -std=c11 -D_GNU_SOURCE -Iinclude -Iinclude/switchboard -Ilib -Irouter \
    -Ioperator $PKG_CFLAGS -Wall -Wextra -Werror -fsyntax-only -x c - -I"$(dirname "$h")"
done

echo "lint: docs/config.md matches the schema"
/usr/bin/python3 scripts/gen-config-doc.py --check
/usr/bin/python3 scripts/gen-crds.py --check

echo "lint: docs/api/openapi.yaml describes every route of the data and admin ports"
/usr/bin/python3 scripts/check-openapi.py

echo "lint: cppcheck"
cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability --inline-suppr \
  --suppress=missingIncludeSystem --library=scripts/uthash.cfg --std=c11 -D_GNU_SOURCE -Iinclude -Ilib -Irouter -Ioperator $SRC

echo "lint: clang-tidy"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# one file per process, two at a time; any finding fails
if ! printf '%s\n' $SRC | xargs -P2 -I{} clang-tidy --quiet --warnings-as-errors='*' {} -- -std=c11 \
    -D_GNU_SOURCE -Iinclude -Ilib -Irouter -Ioperator $PKG_CFLAGS >"$out" 2>&1; then
  grep -vE '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$' "$out" || true
  echo "lint: clang-tidy found problems"
  exit 1
fi
echo "lint: ok"
