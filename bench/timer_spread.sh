#!/usr/bin/env bash
# Timers spread over three days: N timer messages (default 1,000,000) whose deliver times
# are evenly spaced over timerMaxDelaySec (72 h) from T0 = start + LEAD s, sent out of
# time order (`apogee bench produce --deliverAt=T0 --deliverSpread=S`), then watched for
# WINDOW minutes from T0: every STEP minutes the broker's RSS, the timer files (count,
# bytes, disk blocks) and the delivered copies (count against the number due by then,
# early, lateness p50/p99/max via bench/timer_lateness.mjs).
#   bench/timer_spread.sh [build] [N] [WINDOW_MIN] [STEP_MIN] [LEAD_S]
# (ports: TIMER_SPREAD_NS, TIMER_SPREAD_PORT; files: both timer/slots and timer/buckets)
set -u
BIN=${1:-build}/apogee
N=${2:-1000000}
WINDOW=${3:-60}
STEP=${4:-5}
LEAD=${5:-150}
[ -x "$BIN" ] || { echo "no $BIN; run scripts/build.sh first" >&2; exit 1; }
NS=${TIMER_SPREAD_NS:-27876}
PORT=${TIMER_SPREAD_PORT:-27911}
TOPIC=TimerSpread
d=$(mktemp -d /tmp/apogee-timer-spread.XXXXXX)
"$BIN" standalone --grpcServerPort=0 --httpListenPort=0 --storePathRootDir="$d" --listenPort=$PORT --namesrvListenPort=$NS >"$d/log" 2>&1 &
p=$!
trap 'kill $p 2>/dev/null; wait $p 2>/dev/null; rm -rf "$d"' EXIT
sleep 0.5
now_ms() { date +%s%3N; }
rss() { awk '/^(VmRSS|RssAnon|RssFile):/ {printf "%s %d MB  ", $1, $2/1024}' /proc/$p/status; }
slots() {
    local files bytes kb
    files=$(find "$d/timer" -type f -not -name '*.del' | wc -l)
    bytes=$(find "$d/timer" -type f -not -name '*.del' -printf '%s\n' | awk '{s+=$1} END{print s+0}')
    kb=$(du -sk "$d/timer" | cut -f1)
    echo "timer files $files, $bytes bytes of entries, $((kb / 1024)) MB on disk"
}
bench() { nice -n 5 "$BIN" bench produce --namesrvAddr=127.0.0.1:$NS --json "$@" 2>&1 | tail -1; }
bench --topic=TimerWarm --threads=4 --mode=async --messages=20000 >/dev/null
echo "before: $(rss)"
t0=$(now_ms)
T0=$((t0 + LEAD * 1000))
S=$((259200000 - LEAD * 1000 - 60000)) # the last one 60 s inside timerMaxDelaySec
# Sync sends (8 threads): async ones outrun the broker's send queue and are refused
# SYSTEM_BUSY, which would leave holes in the evenly spaced times.
bench --topic=$TOPIC --threads=8 --mode=sync --messages="$N" --duration=3600 --deliverAt=$T0 \
    --deliverSpread=$S >"$d/send.json"
t1=$(now_ms)
sent=$(python3 -c "import json;print(json.load(open('$d/send.json'))['sent'])")
failed=$(python3 -c "import json;print(json.load(open('$d/send.json'))['failed'])")
[ "$failed" -eq 0 ] || echo "warning: $failed sends failed: 'due by then' overcounts"
until [ "$(find "$d/timer" -type f -not -name '*.del' -printf '%s\n' | awk '{s+=$1} END{print s+0}')" -ge $((sent * 16)) ]; do
    sleep 0.5
done
t2=$(now_ms)
echo "sent $sent ($failed failed) in $((t1 - t0)) ms, all parked $((t2 - t0)) ms after the first send"
echo "parked: $(rss)"
echo "parked: $(slots)"
echo "T0 = $T0, spread $S ms: one timer every $((S / N)) ms"
[ "$t2" -lt "$T0" ] || echo "warning: the first timers fell due before all were parked"
end=$((T0 + WINDOW * 60000))
while :; do
    now=$(now_ms)
    [ "$now" -lt "$end" ] || break
    if [ "$now" -lt "$T0" ]; then
        wait_ms=$((T0 + STEP * 60000 - now))
    else
        wait_ms=$((STEP * 60000 - (now - T0) % (STEP * 60000)))
    fi
    [ $((now + wait_ms)) -le "$end" ] || wait_ms=$((end - now))
    sleep $((wait_ms / 1000 + 1))
    a=$(now_ms)
    node bench/timer_lateness.mjs $PORT $TOPIC 8 >"$d/late.json"
    b=$(now_ms)
    python3 - "$d/late.json" "$T0" "$S" "$N" "$a" "$b" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); T0, S, N, a, b = map(int, sys.argv[2:])
due = lambda t: max(0, min(N, -(-((t - T0 + 1) * N) // S)))  # deliver times <= t
lo, hi = due(a - 1000), due(b)  # 1 s for a copy in flight at the start of the read
ok = lo <= j['count'] <= hi and j['early'] == 0
print(f"+{(a - T0) / 60000:.1f} min: delivered {j['count']} (due by then {due(a)}), early {j['early']}, "
      f"lateness p50 {j['p50']} p99 {j['p99']} max {j['max']} ms: {'ok' if ok else 'MISMATCH'}")
PY
    echo "    $(rss) $(slots)"
done
