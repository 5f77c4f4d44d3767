#!/usr/bin/env bash
# Server instructions per message, counted by callgrind (repeatable: it counts
# instructions, not time, so a loaded machine gives the same figure).
#
#   scripts/callgrind-send.sh [BIN] [bench produce args...]
#
# Starts BIN (default build/apogee) `standalone` under valgrind --tool=callgrind
# on fresh ports and a temporary store, warms it up with one 2 s sync run,
# zeroes the counters, runs `BIN bench produce` with the given arguments
# (default: 2 threads, batches of 256, 262,144 messages of 128 B), dumps the
# counters and prints instructions, messages and instructions per message for
# every thread of the server process together. SERVER_ARGS adds server flags
# (e.g. SERVER_ARGS=--serverBusyPollUs=0: no busy polling, whose spinning adds
# instructions that vary with timing).
set -euo pipefail
bin=${1:-build/apogee}
shift || true
[ $# -gt 0 ] || set -- --threads=2 --batch=256 --size=128 --messages=262144
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
port=$((20000 + RANDOM % 20000))
nport=$((port + 1))
valgrind --tool=callgrind --callgrind-out-file="$dir/cg.%p" "$bin" standalone \
    --storePathRootDir="$dir/data" --listenPort=$port --namesrvListenPort=$nport ${SERVER_ARGS:-} \
    >"$dir/log" 2>&1 &
pid=$!
for _ in $(seq 1 150); do grep -q ready "$dir/log" 2>/dev/null && break; sleep 0.2; done
sleep 1
"$bin" bench produce --namesrvAddr=127.0.0.1:$nport --topic=T --threads=1 --size=128 --duration=2 \
    --json >/dev/null
callgrind_control -z $pid >/dev/null 2>&1
out=$("$bin" bench produce --namesrvAddr=127.0.0.1:$nport --topic=T "$@" --duration=120 --json | tail -n 1)
callgrind_control -d $pid >/dev/null 2>&1
kill $pid
wait $pid 2>/dev/null || true
ins=$(grep -hE "^(summary|totals):" "$dir/cg.$pid.1" | head -n 1 | awk "{print \$2}")
sent=$(grep -oE '"sent":[0-9]+' <<<"$out" | cut -d: -f2)
echo "instructions=$ins messages=$sent per_message=$((ins / sent))"
