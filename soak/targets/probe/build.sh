#!/bin/sh
# Build libsoakprobe.so from soakprobe.c beside this script: one recipe for
# scripts/setup (through soak.targets.probe_library), the stand-in image and the
# allocator layer over a user's TF Serving image.
#
#   build.sh OUT        (CC overrides the compiler, default cc)
set -eu
[ $# -eq 1 ] || { echo "usage: $0 OUT" >&2; exit 2; }
here=$(dirname "$0")
${CC:-cc} -Wall -Wextra -Werror -O2 -fPIC -shared -o "$1" "$here/soakprobe.c" -ldl -lpthread
