#!/usr/bin/env bash
# A venv with the pinned Python tools of the API contract test (tests/api/requirements.txt),
# made once under ~/.cache/switchboard/venv-<hash of the requirements> and reused after; a venv
# whose install did not finish is made again.  Prints the venv's directory.
# Needs Debian's python3 with python3-venv (make deps).
set -euo pipefail
cd "$(dirname "$0")/.."
REQ=tests/api/requirements.txt
hash=$(sha256sum "$REQ" | cut -c1-16)
venv="${XDG_CACHE_HOME:-$HOME/.cache}/switchboard/venv-$hash"
if [ ! -f "$venv/.complete" ]; then
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  echo "pytools: installing $REQ into $venv" >&2
  /usr/bin/python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$REQ" >&2
  touch "$venv/.complete"
fi
echo "$venv"
