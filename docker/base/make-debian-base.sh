#!/usr/bin/env bash
# Build a Debian bookworm base image without any registry: mmdebstrap + docker import.
#
#   docker/base/make-debian-base.sh TAG
#
# It holds python3 (with venv, so pip comes from ensurepip) and the allocator
# libraries soak compares, so the stand-in image needs no apt at build time.
# The root filesystem goes to a temporary file first and is checked before the
# import: piping a failed mmdebstrap into `docker import -` would still tag an
# empty image.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 TAG" >&2
    exit 2
fi
tag=$1
packages=python3,python3-venv,ca-certificates,libjemalloc2,libtcmalloc-minimal4,libmimalloc2.0
min_bytes=$((50 * 1024 * 1024))  # a bookworm minbase with python3 is ~240 MB

command -v mmdebstrap >/dev/null || { echo "mmdebstrap not found: apt-get install mmdebstrap" >&2; exit 1; }
command -v docker >/dev/null || { echo "docker CLI not found: run scripts/ensure-docker" >&2; exit 1; }

workdir=$(mktemp -d "${TMPDIR:-/var/tmp}/soak-base.XXXXXX")
trap 'rm -rf "$workdir"' EXIT
rootfs=$workdir/rootfs.tar

if ! mmdebstrap --quiet --variant=minbase --include="$packages" bookworm "$rootfs"; then
    echo "mmdebstrap failed: no base image made" >&2
    exit 1
fi
size=$(stat -c %s "$rootfs")
if [ "$size" -lt "$min_bytes" ]; then
    echo "mmdebstrap wrote only $size bytes: no base image made" >&2
    exit 1
fi
docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    "$rootfs" "$tag" >/dev/null
echo "$tag"
