#!/usr/bin/env bash
# `make images`: OCI images of switchboard-router and switchboard-operator, built without a daemon
# (buildah, vfs storage, chroot isolation). Each image is FROM scratch: the binary, exactly the shared
# libraries `ldd` says it loads (copied from this Debian system, paths kept), the NSS modules for name
# lookups, CA certificates, and a passwd entry for the non-root user 65532. The router image also carries
# curl for the chart's `helm test` hook. Tags follow charts/switchboard/Chart.yaml's appVersion, the
# references the chart uses by default. Output: build/images/<name>.oci.tar (oci-archive).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=$(awk '/^appVersion:/ {gsub(/"/, "", $2); print $2}' charts/switchboard/Chart.yaml)
REGISTRY=${IMAGE_REGISTRY:-ghcr.io/switchboard-dev}
OUT=build/images
export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot
mkdir -p "$OUT"

copy_with_libs() { # rootfs file...
  local root=$1 f lib
  shift
  for f in "$@"; do
    install -D -m 0755 "$f" "$root/usr/local/bin/$(basename "$f")"
    for lib in $(ldd "$f" | awk '/=> \// {print $3} /^\t\/[^ ]+ \(/ {print $1}'); do
      [ -e "$root$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
    done
  done
}

rootfs() { # name binaries...
  local name=$1 root=$OUT/$1/rootfs
  shift
  rm -rf "$OUT/$name"
  mkdir -p "$root/etc/ssl/certs" "$root/tmp" "$root/var/lib/switchboard"
  copy_with_libs "$root" "$@"
  # name lookups (push endpoints, the API server) go through glibc's NSS modules
  for lib in /lib/x86_64-linux-gnu/libnss_dns.so.2 /lib/x86_64-linux-gnu/libnss_files.so.2 \
      /lib/x86_64-linux-gnu/libresolv.so.2; do
    [ -e "$lib" ] && install -D -m 0644 "$(readlink -f "$lib")" "$root$lib"
  done
  printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
  printf 'root:x:0:0:root:/:/sbin/nologin\nswitchboard:x:65532:65532:switchboard:/var/lib/switchboard:/sbin/nologin\n' \
    >"$root/etc/passwd"
  printf 'root:x:0:\nswitchboard:x:65532:\n' >"$root/etc/group"
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
  chown -R 65532:65532 "$root/var/lib/switchboard"
  chmod 1777 "$root/tmp"
}

build() { # name containerfile
  local name=$1 ref=$REGISTRY/switchboard-$1:$VERSION
  cp "images/Containerfile.$name" "$OUT/$name/Containerfile"
  buildah --storage-driver vfs bud --isolation chroot --quiet -f "$OUT/$name/Containerfile" -t "$ref" "$OUT/$name" >/dev/null
  rm -f "$OUT/switchboard-$name.oci.tar"
  buildah --storage-driver vfs push --quiet "$ref" "oci-archive:$OUT/switchboard-$name.oci.tar:$ref"
  echo "images: $ref -> $OUT/switchboard-$name.oci.tar ($(du -h "$OUT/switchboard-$name.oci.tar" | cut -f1))"
}

command -v buildah >/dev/null || { echo "images: buildah is missing (make deps installs it)" >&2; exit 1; }
rootfs router build/switchboard-router /usr/bin/curl
build router
rootfs operator build/switchboard-operator
build operator
