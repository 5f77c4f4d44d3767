#!/usr/bin/env bash
# Checks the include graph of src/ and include/apogee/ against the layer order
# of the tree:
#
#   include/apogee   the public headers: include nothing from src/
#   common           (nothing below it but include/apogee)
#   protocol         common
#   net, store       common, protocol (not each other)
#   ha               common, protocol, store (replication streams through
#                    store.h with sockets of its own)
#   acl              common, protocol (the plain ACL both servers check)
#   namesrv, broker  common, protocol, net, store, acl (not each other);
#                    broker also ha
#   proxy            common, protocol, net, store, acl, broker (the gRPC front
#                    calls the broker's internal put and tables, no socket; the
#                    `apogee proxy` backend, src/proxy/remote, reaches brokers
#                    with net's outbound remoting client, not src/client)
#   http             common, protocol, net, store, acl, broker (the HTTP port
#                    reads the broker's tables, like proxy)
#   cli, main.c      everything
#   client           common, protocol (and include/apogee)
#
# A module is the first directory under src/ (src/broker/tables/x.c belongs to
# broker). Every module may include its own headers, the public headers in
# include/apogee and the generated apogee_version.h. A second rule forbids a
# circle of #includes between files, inside a module as well as across.
#
# Only quoted includes are read (system headers use <>). Prints one line per
# offence, "file:line: #include "x" -- rule", and exits 1 if there is any.
# Usage: scripts/check-layers.sh [ROOT]   (default: the repository root)
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"

# What each module may include besides itself, apogee/ and apogee_version.h.
declare -A allowed=(
    [common]=""
    [protocol]="common"
    [net]="common protocol"
    [store]="common protocol"
    [acl]="common protocol"
    [ha]="common protocol store"
    [namesrv]="common protocol net store acl"
    [broker]="common protocol net store acl ha"
    [proxy]="common protocol net store acl ha broker"
    [http]="common protocol net store acl ha broker"
    [client]="common protocol"
    [cli]="common protocol net store acl ha namesrv broker proxy http client"
    [main.c]="common protocol net store acl ha namesrv broker proxy http client cli"
)
# Files generated into the build tree that anyone may include.
generated="apogee_version.h proto/messaging.pb-c.h"

bad=0
edges=$(mktemp)
trap 'rm -f "$edges"' EXIT

offence() { # file line target rule
    printf '%s:%s: #include "%s" -- %s\n' "$1" "$2" "$3" "$4"
    bad=1
}

module_of() { # src/<module>/... -> module; src/main.c -> main.c; include/apogee/... -> apogee
    case "$1" in
    include/apogee/*) echo apogee ;;
    src/*/*) local rest=${1#src/}; echo "${rest%%/*}" ;;
    src/*) echo "${1#src/}" ;;
    esac
}

mapfile -t files < <(find src include/apogee -type f \( -name '*.c' -o -name '*.h' -o -name '*.def' \) | sort)

for f in "${files[@]}"; do
    from=$(module_of "$f")
    if [ "$from" != apogee ] && [ -z "${allowed[$from]+set}" ]; then
        offence "$f" 1 "" "module '$from' has no place in the layer order (add it to the table in scripts/check-layers.sh)"
        continue
    fi
    while IFS=: read -r line target; do
        # Resolve: next to the including file, then under src/, then include/.
        dir=$(dirname "$f")
        if [ -f "$dir/$target" ]; then
            path=$(realpath --relative-to=. "$dir/$target")
        elif [ -f "src/$target" ]; then
            path="src/$target"
        elif [ -f "include/$target" ]; then
            path="include/$target"
        elif [[ " $generated " == *" $target "* ]]; then
            [ "$from" = apogee ] && offence "$f" "$line" "$target" "include/apogee includes nothing from src/"
            continue
        else
            offence "$f" "$line" "$target" "no such file under src/ or include/"
            continue
        fi
        echo "$f $path" >>"$edges"
        to=$(module_of "$path")
        if [ "$from" = apogee ]; then
            [ "$to" = apogee ] || offence "$f" "$line" "$target" "include/apogee includes nothing from src/"
            continue
        fi
        if [ "$to" = apogee ] || [ "$to" = "$from" ]; then
            continue
        fi
        if [[ " ${allowed[$from]} " != *" $to "* ]]; then
            offence "$f" "$line" "$target" "$from may include only: ${allowed[$from]:-nothing} (layer table in scripts/check-layers.sh)"
        fi
    done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]+"[^"]+"' "$f" |
        sed -E 's/^([0-9]+):.*"([^"]+)".*/\1:\2/')
done

# Circles: tsort reports the files of each loop it finds on stderr; name the
# include lines that close it.
if [ -s "$edges" ]; then
    loops=$(tsort "$edges" 2>&1 >/dev/null || true)
    if [ -n "$loops" ]; then
        # tsort prints "tsort: -: input contains a loop:" then one "tsort: FILE"
        # per member, in include order.
        members=()
        flush_loop() {
            local n=${#members[@]} i a b ln
            [ "$n" -gt 0 ] || return 0
            for ((i = 0; i < n; i++)); do
                a=${members[$i]}
                b=${members[$(((i + 1) % n))]}
                ln=$(grep -nE "^[[:space:]]*#[[:space:]]*include[[:space:]]+\"([^\"]*/)?$(basename "$b")\"" "$a" |
                    head -n 1 | cut -d: -f1)
                offence "$a" "${ln:-?}" "${b#*/}" "closes a circle of includes: ${members[*]}"
            done
            members=()
        }
        while IFS= read -r l; do
            case "$l" in
            *"input contains a loop"*) flush_loop ;;
            "tsort: "*) members+=("${l#tsort: }") ;;
            esac
        done <<<"$loops"
        flush_loop
    fi
fi

if [ "$bad" -ne 0 ]; then
    echo "check-layers: include rules broken (see above)" >&2
    exit 1
fi
echo "check-layers: ok (${#files[@]} files)"
