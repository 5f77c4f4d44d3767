#!/bin/sh
# The shared library exports exactly the documented API: every function
# declared with APG_EXPORT in the public headers, and nothing else.
#   check_exports.sh path/to/libapogee.so path/to/include/apogee
set -eu
lib=$1
inc=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Defined dynamic symbols (functions and data), without the linker's own.
nm -D --defined-only "$lib" | awk '{print $NF}' |
    grep -v -E '^(_init|_fini|_edata|_end|__bss_start)$' | sort -u >"$tmp/exported"
# The identifier right before the "(" of each APG_EXPORT prototype (a
# prototype may span lines: join each header into one line first).
for h in "$inc"/*.h; do tr '\n' ' ' <"$h"; echo; done |
    grep -o 'APG_EXPORT[^;(]*(' | sed -E 's/.*[^A-Za-z0-9_]([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*\($/\1/' |
    grep '^apg_' | sort -u >"$tmp/declared"

extra=$(comm -23 "$tmp/exported" "$tmp/declared")
missing=$(comm -13 "$tmp/exported" "$tmp/declared")
n=$(wc -l <"$tmp/exported")
if [ -n "$extra" ] || [ -n "$missing" ]; then
    [ -z "$extra" ] || printf 'exported but not in the public headers:\n%s\n' "$extra"
    [ -z "$missing" ] || printf 'declared APG_EXPORT but not exported:\n%s\n' "$missing"
    exit 1
fi
echo "exports ok: $n symbols, all declared with APG_EXPORT in $inc"
