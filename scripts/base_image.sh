#!/usr/bin/env bash
# A Debian bookworm base image with Python 3.11 and venv, made from Debian's packages: for building the platform's
# image where no image registry can be reached (python:3.11-slim cannot be pulled).
#   scripts/base_image.sh [tag]       # default mlplatform-base:bookworm; does nothing if the image exists
set -euo pipefail
tag=${1:-mlplatform-base:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if docker image inspect "$tag" >/dev/null 2>&1; then
  exit 0
fi
command -v debootstrap >/dev/null || { echo "base_image: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
root=$(mktemp -d /tmp/mlplatform-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "base_image: debootstrap bookworm (python3, venv) from $mirror"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$mirror" >/dev/null
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/usr/share/doc/* "$root"/usr/share/man/*
tar -C "$root" -c . | docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - "$tag" >/dev/null
echo "base_image: $tag ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
