#!/bin/bash
# Orderly push-consumer throughput: a backlog of N messages (128 B) on a topic of Q
# queues, drained by examples/push_consumer --orderly (consumeOrderly=true, clustering:
# queue locks on the broker, one batch per queue in flight, consumeThreadMin=4,
# consumeMessageBatchMaxSize=1, listener does nothing) against a fresh
# `apogee standalone` (own temp store, loopback ports 25911/25876). One line per run:
#   orderly queues=Q msgs/s=R span_ms=T received=N
# The rate is over the span from the first to the last delivered message.
# Usage: scripts/bench-orderly.sh [BUILD_DIR] (default build); N=200000 QUEUES="1 8" RUNS=3;
# ORDERLY=0 drains with a concurrent consumer instead, for comparison.
set -u
B=${1:-build}
BIN=$B/apogee
EX=$B/examples/push_consumer
[ -x "$BIN" ] && [ -x "$EX" ] || { echo "no $BIN or $EX; run scripts/build.sh first" >&2; exit 1; }
N=${N:-200000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NS=127.0.0.1:25876
MODE=--orderly
LABEL=orderly
[ "${ORDERLY:-1}" = 0 ] && MODE= && LABEL=concurrent

one() { # queues
    local q=$1 d p
    d=$(mktemp -d /tmp/apogee-bench.XXXXXX)
    "$BIN" standalone --httpListenPort=0 --storePathRootDir="$d" --listenPort=25911 --namesrvListenPort=25876 --grpcServerPort=0 >"$d/log" 2>&1 &
    p=$!
    sleep 0.5
    node --input-type=module -e "
import { RemotingClient } from '$ROOT/tests/lib/remoting.mjs';
const c = await RemotingClient.connect(25911);
const r = await c.request(17, { topic: 'OrdBench', defaultTopic: 'TBW102', readQueueNums: '$q',
    writeQueueNums: '$q', perm: '6', topicFilterType: 'SINGLE_TAG', topicSysFlag: '0', order: 'false' });
if (r.code !== 0) { console.error(r.remark); process.exit(1); }
c.close();" && sleep 0.5 &&
        "$BIN" bench produce --topic=OrdBench --threads=2 --batch=256 --size=128 --messages="$N" \
            --namesrvAddr=$NS >"$d/produce" 2>&1 &&
        "$EX" -n $NS -t OrdBench -g OrdBenchG --first $MODE --threads 4 --quiet \
            --expect "$N" --seconds 300 >"$d/consume" 2>&1
    kill "$p" 2>/dev/null
    wait "$p" 2>/dev/null
    awk -v q="$q" -v lbl="$LABEL" '/^RATE/ {r=$2; t=$3} /^DONE/ {split($2, a, "="); n=a[2]}
        END {print lbl, "queues=" q, "msgs/s=" r, "span_ms=" t, "received=" n}' "$d/consume"
    rm -rf "$d"
}

for q in ${QUEUES:-1 8}; do
    for _ in $(seq "${RUNS:-3}"); do one "$q"; done
done
