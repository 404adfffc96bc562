#!/usr/bin/env bash
# A venv with the pinned Python tools of one requirements file, made once under
# ~/.cache/switchboard/venv-<hash of the requirements> and reused after; a venv whose install did not
# finish is made again.  Each requirements file (each set of pins) gets its own venv, so suites with
# different tools never share or fight over one.  Prints the venv's directory.
#
#   scripts/pytools.sh [REQUIREMENTS]   default tests/api/requirements.txt (the API contract test);
#                                       tests/a2a/requirements.txt for the A2A suite (make a2a-test)
#
# A relative path is taken from the repository's top.  Needs Debian's python3 with python3-venv
# (make deps); the packages come from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
REQ=${1:-tests/api/requirements.txt}
if [ ! -f "$REQ" ]; then
  echo "pytools: $REQ: no such requirements file" >&2
  exit 2
fi
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
