#!/bin/bash
# Makes everything the PostgreSQL image needs from outside, on the host (the
# build itself runs with no network): a debootstrap Debian bookworm minbase
# as a rootfs tar, `berth import`ed as $BASE, and the .debs of postgresql-15
# with their dependency closure (what that base lacks) in ./debs. Then
# `berth build`s the image as $IMAGE.
#
#   examples/postgres/setup.sh            # berth on PATH, default roots
#   BERTH="target/release/berth --root /tmp/r --runroot /tmp/rr" examples/postgres/setup.sh
#
# The rootfs and the .debs are cached in $CACHE (debootstrap runs once).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
BERTH="${BERTH:-berth}"
CACHE="${CACHE:-/var/cache/berth-examples}"
BASE="${BASE:-pristine/debian:bookworm}"
IMAGE="${IMAGE:-pristine/postgres:15}"
SUITE=bookworm
MIRROR="${MIRROR:-http://deb.debian.org/debian}"

mkdir -p "$CACHE"
root="$CACHE/$SUITE-minbase"
if [ ! -e "$root.done" ]; then
  rm -rf "$root"
  # debootstrap fetches with wget: give it apt's proxy, if apt has one.
  proxy="$(apt-config shell P Acquire::http::Proxy | sed -n "s/^P='\(.*\)'$/\1/p")"
  if [ -n "$proxy" ] && [ "$proxy" != DIRECT ]; then export http_proxy="$proxy"; fi
  echo "debootstrap $SUITE minbase into $root (once)"
  debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" >"$CACHE/debootstrap.log"
  # What an image build cleans: downloaded packages and package lists.
  find "$root/var/cache/apt/archives" "$root/var/lib/apt/lists" -type f ! -name lock -delete
  touch "$root.done"
fi
if [ ! -e "$CACHE/$SUITE-minbase.tar" ]; then
  tar -C "$root" --numeric-owner --xattrs --xattrs-include='*' --sort=name -cf "$CACHE/$SUITE-minbase.tar.tmp" .
  mv "$CACHE/$SUITE-minbase.tar.tmp" "$CACHE/$SUITE-minbase.tar"
fi

# The packages the base lacks for postgresql-15: apt resolves against the
# base's own dpkg status (not the host's), from the host's package lists.
if [ ! -e "$here/debs/.done" ]; then
  rm -rf "$here/debs"
  mkdir -p "$here/debs/partial"
  apt-get -q -y --no-install-recommends --download-only \
    -o Dir::State::status="$root/var/lib/dpkg/status" \
    -o Dir::Cache::archives="$here/debs" \
    -o Debug::NoLocking=1 \
    install postgresql-15 >"$CACHE/apt-download.log"
  rmdir "$here/debs/partial"
  rm -f "$here/debs/lock"
  touch "$here/debs/.done"
fi

$BERTH import "$CACHE/$SUITE-minbase.tar" "$BASE" >/dev/null
$BERTH build -q -t "$IMAGE" --build-arg BASE="$BASE" "$here" >/dev/null
echo "built $IMAGE"
