#!/usr/bin/env bash
# Timers that fall due while the broker is down: N timer messages due 15 s ahead, the
# broker stopped (SIGTERM, or SIGKILL) once they are sent, started again 2 s after they
# fell due; prints when the first and last copies were stored, in ms after the start.
#   bench/timer_backlog.sh [build] [N] [TERM|KILL]
set -u
BIN=${1:-build}/apogee
N=${2:-100000}
SIG=${3:-TERM}
NS=26877
PORT=26912
d=$(mktemp -d /tmp/apogee-timer-backlog.XXXXXX)
start() {
    "$BIN" standalone --grpcServerPort=0 --httpListenPort=0 --storePathRootDir="$d" --listenPort=$PORT --namesrvListenPort=$NS >>"$d/log" 2>&1 &
    p=$!
    sleep 0.5
}
trap 'kill $p 2>/dev/null; wait $p 2>/dev/null; rm -rf "$d"' EXIT
start
at=$(($(date +%s%3N) + 15000))
"$BIN" bench produce --namesrvAddr=127.0.0.1:$NS --topic=TimerBacklog --threads=4 --mode=async \
    --messages="$N" --deliverAt=$at --json >/dev/null 2>&1
kill -"$SIG" $p
wait $p 2>/dev/null
sleep $(((at - $(date +%s%3N)) / 1000 + 2))
t0=$(date +%s%3N)
start
until node bench/timer_lateness.mjs $PORT TimerBacklog 8 >"$d/late.json" &&
    python3 -c "import json,sys; sys.exit(json.load(open('$d/late.json'))['count'] < $N)"; do
    sleep 0.5
done
python3 -c "import json; j=json.load(open('$d/late.json'))
print(f\"SIG$SIG: {j['count']} copies (+{j['plain']} plain: the bench's warm-up send), early {j['early']}, \"
      f\"first {j['first'] - $t0} ms, last {j['last'] - $t0} ms after the start\")"
