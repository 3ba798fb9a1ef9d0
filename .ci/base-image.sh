#!/usr/bin/env bash
# Builds the local Docker base image bugsmith uses (no registry needed): a minimal Debian with
# python3, python3-venv, pip, git, patch (SWE-bench's third apply command) and ca-certificates, bootstrapped from the machine's own Debian
# package source and imported with `docker import`. Skips the work when the image exists.
set -euo pipefail
image="${1:-bugsmith-base:bookworm}"
if docker image inspect "$image" >/dev/null 2>&1; then
  if docker run --rm --network none "$image" sh -c 'command -v patch' >/dev/null 2>&1; then
    echo "base image $image present"
    exit 0
  fi
  echo "base image $image lacks patch: rebuilding"
fi
command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap; }
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,git,patch,ca-certificates,procps \
  bookworm "$root" "$mirror" >/dev/null
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'ENV LANG=C.UTF-8' - "$image" >/dev/null
echo "built base image $image"
