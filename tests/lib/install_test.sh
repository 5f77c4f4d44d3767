#!/bin/sh
# Installs a build tree into a temporary prefix, checks the files are in
# place, then builds and runs a small program against the installed headers
# and library using nothing but `pkg-config --cflags --libs apogee`.
#   install_test.sh BUILD_DIR path/to/pkgconfig_smoke.c
set -eu
build=$1
src=$2
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT

cmake --install "$build" --prefix "$prefix" >/dev/null
for f in bin/apogee lib/libapogee.so lib/libapogee.a include/apogee/apogee.h \
    include/apogee/error.h include/apogee/conf.h include/apogee/version.h \
    lib/pkgconfig/apogee.pc; do
    [ -e "$prefix/$f" ] || { echo "missing after install: $f"; exit 1; }
done
# The soname link and the versioned file behind it.
soname=$(objdump -p "$prefix/lib/libapogee.so" | awk '$1 == "SONAME" {print $2}')
[ -e "$prefix/lib/$soname" ] || { echo "missing soname link $soname"; exit 1; }

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
flags=$(pkg-config --cflags --libs apogee)
${CC:-cc} -std=c11 -Wall -Werror -o "$prefix/smoke" "$src" $flags
# The program must resolve libapogee from the prefix, not from the build.
LD_LIBRARY_PATH="$prefix/lib" ldd "$prefix/smoke" | grep -q "$prefix/lib/libapogee.so" ||
    { echo "smoke program is not linked against the installed libapogee.so"; exit 1; }
out=$(LD_LIBRARY_PATH="$prefix/lib" "$prefix/smoke")
echo "$out"
echo "$out" | grep -q "^version $(pkg-config --modversion apogee)\$"
echo "$out" | grep -q '^send APG_E'
echo "install ok: $prefix (pkg-config flags: $flags)"
