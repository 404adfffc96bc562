#!/usr/bin/env bash
# Install every Debian package the build, the tests and the demo need.
# Safe to run any number of times: it installs only what is missing.
set -euo pipefail

# Extra packages may be named on the command line (make peer-deps does).
PKGS=("$@"
  build-essential pkg-config git curl ca-certificates
  zlib1g-dev libcurl4-openssl-dev libjansson-dev libyaml-dev libmicrohttpd-dev libgnutls28-dev
  libsqlite3-dev sqlite3 libsodium-dev libcmocka-dev uthash-dev libyajl-dev
  liburcu-dev libxxhash-dev
  valgrind clang-format clang-tidy cppcheck clang-14 libclang-rt-14-dev
  prometheus python3 python3-pytest python3-yaml python3-venv openssl buildah
  containerd runc containernetworking-plugins procps util-linux
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's prometheus, redis-server, nats-server, rabbitmq-server (and Erlang's epmd) and containerd
# packages start servers; tests and benchmarks run their own on free ports.
for svc in prometheus redis-server nats-server rabbitmq-server epmd.socket epmd containerd; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    $SUDO systemctl stop "$svc" || true
  fi
done
