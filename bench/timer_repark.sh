#!/usr/bin/env bash
# The timer store's parking rate alone, without the send path: N timer messages (default
# 1,000,000) spread over timerMaxDelaySec (72 h) are sent and parked, the broker is
# killed (-9), the timer files and config/timerProgress.json are removed, and the broker
# is started again: its timer thread re-parks the whole timer queue from offset 0. Prints
# the time from the start until every entry is in a timer file (16 bytes each), the file
# count and their disk use, and the broker's CPU time over that span.
#   bench/timer_repark.sh [build] [N]   (ports: TIMER_SPREAD_NS, TIMER_SPREAD_PORT)
set -u
BIN=${1:-build}/apogee
N=${2:-1000000}
[ -x "$BIN" ] || { echo "no $BIN; run scripts/build.sh first" >&2; exit 1; }
NS=${TIMER_SPREAD_NS:-27876}
PORT=${TIMER_SPREAD_PORT:-27911}
d=$(mktemp -d /tmp/apogee-timer-repark.XXXXXX)
start() {
    "$BIN" standalone --grpcServerPort=0 --httpListenPort=0 --storePathRootDir="$d" --listenPort=$PORT --namesrvListenPort=$NS >>"$d/log" 2>&1 &
    p=$!
}
start
trap 'kill $p 2>/dev/null; wait $p 2>/dev/null; rm -rf "$d"' EXIT
sleep 0.5
now_ms() { date +%s%3N; }
bytes() { find "$d/timer" -type f -not -name '*.del' -printf '%s\n' 2>/dev/null | awk '{s+=$1} END{print s+0}'; }
T0=$(($(now_ms) + 600000))
nice -n 5 "$BIN" bench produce --namesrvAddr=127.0.0.1:$NS --json --topic=TimerRepark --threads=8 \
    --mode=sync --messages="$N" --duration=3600 --deliverAt=$T0 --deliverSpread=258000000 \
    2>&1 | tail -1 >"$d/send.json"
sent=$(python3 -c "import json;print(json.load(open('$d/send.json'))['sent'])")
until [ "$(bytes)" -ge $((sent * 16)) ]; do sleep 0.5; done
kill -9 $p
wait $p 2>/dev/null
rm -rf "$d/timer" "$d"/config/timerProgress.json* # its .bak too
t0=$(now_ms)
start
until [ "$(bytes)" -ge $((sent * 16)) ]; do sleep 0.1; done
t1=$(now_ms)
cpu=$(awk '{printf "%.1f", ($14 + $15) / 100}' /proc/$p/stat)
files=$(find "$d/timer" -type f -not -name '*.del' | wc -l)
kb=$(du -sk "$d/timer" | cut -f1)
echo "re-parked $sent timers in $((t1 - t0)) ms from the start ($((sent * 1000 / (t1 - t0 + 1))) timers/s), broker CPU ${cpu} s; $files files, $((kb / 1024)) MB on disk"
