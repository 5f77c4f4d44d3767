#!/usr/bin/env bash
# Timer store benchmark: PENDING timer messages parked (due in an hour), the broker's extra
# RSS for them, then a batch of DUE messages all due at the same millisecond: lateness
# (store time of the delivered copy - deliver time) p50/p99/max and the delivery rate.
#   scripts/bench-timer.sh [build] [PENDING] [DUE] [plain]
# "plain" sends the PENDING messages without a deliver time: the baseline RSS of storing
# that many ordinary messages (the commit log is read through a mapping, so its pages show
# in RssFile either way).
set -u
BIN=${1:-build}/apogee
PENDING=${2:-1000000}
DUE=${3:-10000}
PLAIN=${4:-}
[ -x "$BIN" ] || { echo "no $BIN; run scripts/build.sh first" >&2; exit 1; }
NS=26876
PORT=26911
d=$(mktemp -d /tmp/apogee-timer-bench.XXXXXX)
"$BIN" standalone --grpcServerPort=0 --httpListenPort=0 --storePathRootDir="$d" --listenPort=$PORT --namesrvListenPort=$NS >"$d/log" 2>&1 &
p=$!
trap 'kill $p 2>/dev/null; wait $p 2>/dev/null; rm -rf "$d"' EXIT
sleep 0.5
rss() { awk '/^(VmRSS|RssAnon|RssFile):/ {printf "%s %d MB  ", $1, $2/1024}' /proc/$p/status; echo; }
bench() { "$BIN" bench produce --namesrvAddr=127.0.0.1:$NS --json "$@" 2>&1 | tail -1; }
# Warm up: topic routes, client connections, store segments.
bench --topic=TimerWarm --threads=4 --mode=async --messages=20000 >/dev/null
echo "before: $(rss)"
if [ "$PENDING" -gt 0 ]; then
    t0=$(date +%s%3N)
    if [ "$PLAIN" = plain ]; then
        bench --topic=TimerPending --threads=4 --mode=async --messages="$PENDING" >"$d/pending.json"
    else
        bench --topic=TimerPending --threads=4 --mode=async --messages="$PENDING" \
            --deliverAfter=3600000 >"$d/pending.json"
        # Parked once every entry is in a timer file (16 bytes each).
        until [ "$(find "$d/timer" -type f -not -name "*.del" -printf "%s\n" 2>/dev/null | awk "{s+=\$1} END{print s+0}")" -ge $((PENDING * 16)) ]; do
            sleep 0.2
        done
    fi
    t1=$(date +%s%3N)
    echo "$PENDING ${PLAIN:-pending} stored in $((t1 - t0)) ms ($(find "$d/timer" -type f -not -name "*.del" | wc -l) timer files): $(rss)"
fi
at=$(($(date +%s%3N) + 8000))
bench --topic=TimerDue --threads=4 --mode=async --messages="$DUE" --deliverAt=$at >"$d/due.json"
now=$(date +%s%3N)
[ "$now" -lt "$at" ] || echo "warning: the due batch was still being sent at its deliver time"
sleep $(((at - now) / 1000 + 3))
until node bench/timer_lateness.mjs $PORT TimerDue 8 >"$d/late.json" &&
    python3 -c "import json,sys; sys.exit(json.load(open('$d/late.json'))['count'] < $DUE)"; do sleep 1; done
echo "after delivery: $(rss)"
python3 - "$d/late.json" "$at" "$DUE" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); at = int(sys.argv[2]); n = int(sys.argv[3])
span = max(j['last'] - at, 1)
print(f"due batch {j['count']}/{n} at one ms: early {j['early']}, lateness p50 {j['p50']} ms "
      f"p99 {j['p99']} ms max {j['max']} ms; delivered {n * 1000 // span}/s")
PY
