#!/bin/bash
# Client benchmark sweep (the bars of docs/perf.md): each row three times against a fresh `apogee standalone`
# (own temp store, fixed loopback ports 25911/25876), one JSON-derived line per run:
#   row tps mbps p50_us p99_us failed
# Usage: scripts/bench-client.sh [BUILD_DIR]   (default: build). Takes ~9 minutes.
# Run it on an otherwise idle machine; docs/perf.md records its output.
set -u
BIN=${1:-build}/apogee
[ -x "$BIN" ] || { echo "no $BIN; run scripts/build.sh first" >&2; exit 1; }

one() { # server-args, bench args...
    local sargs=$1
    shift
    local d
    d=$(mktemp -d /tmp/apogee-bench.XXXXXX)
    # shellcheck disable=SC2086
    "$BIN" standalone --httpListenPort=0 --storePathRootDir="$d" --listenPort=25911 --namesrvListenPort=25876 --grpcServerPort=0 \
        $sargs >"$d/log" 2>&1 &
    local p=$!
    sleep 0.5
    "$BIN" bench "$@" --namesrvAddr=127.0.0.1:25876 --json >"$d/out" 2>&1
    kill "$p" 2>/dev/null
    wait "$p" 2>/dev/null
    tail -1 "$d/out"
    rm -rf "$d"
}

row() { # name, server-args, bench args...
    local name=$1 sargs=$2
    shift 2
    for _ in 1 2 3; do
        one "$sargs" "$@" | python3 -c "import json,sys
j=json.loads(sys.stdin.read())
print('$name', j['tps'], j['mbps'], j['p50_us'], j['p99_us'], j['failed'])"
    done
}

if [ "${DRAIN_ONLY:-0}" != 1 ]; then
row sync1 "" produce --topic=T1 --threads=1 --size=128 --duration=5
row sync64 "" produce --topic=T1 --threads=64 --size=128 --duration=5
row async4 "" produce --topic=T1 --threads=4 --mode=async --size=128 --duration=5
row batch256 "" produce --topic=T2 --threads=2 --batch=256 --size=128 --duration=30
row kib_batch64 "" produce --topic=T3 --threads=2 --batch=64 --size=1024 --duration=30
row rate20k "" produce --topic=T1 --threads=4 --rate=20000 --size=128 --duration=5
row rate20k_async "" produce --topic=T1 --threads=2 --mode=async --rate=20000 --size=128 --duration=5
row syncflush64 "--flushDiskType=SYNC_FLUSH" produce --topic=T5 --threads=64 --size=1024 --duration=5
fi

# Drain: one broker, a 1M backlog per topic, consumed from the first offset
# (DRAIN_ONLY=1 runs only this part).
d=$(mktemp -d /tmp/apogee-bench.XXXXXX)
"$BIN" standalone --httpListenPort=0 --storePathRootDir="$d" --listenPort=25911 --namesrvListenPort=25876 --grpcServerPort=0 \
    >"$d/log" 2>&1 &
p=$!
sleep 0.5
for i in 1 2 3; do
    "$BIN" bench produce --topic="T4$i" --threads=2 --batch=256 --messages=1000000 \
        --namesrvAddr=127.0.0.1:25876 --json >/dev/null 2>&1
    sleep 1 # a backlog: the producer's last writes are flushed before the drain starts
    "$BIN" bench consume --topic="T4$i" --threads=4 --pullBatch=256 --messages=1000000 \
        --namesrvAddr=127.0.0.1:25876 --json 2>&1 | tail -1 | python3 -c "import json,sys
j=json.loads(sys.stdin.read())
print('drain', j['tps'], j['mbps'], j['p50_us'], j['p99_us'], j['failed'])"
done
kill "$p"
wait "$p" 2>/dev/null
rm -rf "$d"
