#!/usr/bin/env bash
# What TLS costs a producer: 1 KiB sync sends, plaintext and TLS alternated on one broker.
#
# Usage: [PORT=29511 NS_PORT=29476] bench/tls_produce.sh [APOGEE_BIN] [RUNS] [THREADS]
#   (defaults: build/apogee, 3, 4)
# Makes a CA and a server certificate for 127.0.0.1 with the openssl command in a temporary
# directory, starts `apogee standalone` with tls.server.mode=permissive (so one broker serves
# both kinds of client) on ports PORT/NS_PORT with a fresh storePathRootDir, then runs RUNS
# times, alternating,
#   apogee bench produce --topic=TLS1K --threads=THREADS --size=1024 --duration=5 --json [--tls ...]
# and prints per run: msgs/s, and the CPU time (user+system) of the broker and of the bench
# process per message in microseconds (CPU per message moves less than wall-clock rates on a
# loaded VM). Everything it made is removed at the end.
set -euo pipefail
bin=${1:-build/apogee}
runs=${2:-3}
threads=${3:-4}
port=${PORT:-29511}
ns_port=${NS_PORT:-29476}
tmp=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
(
    cd "$tmp"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 -subj /CN=bench-ca
    openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >ext.cnf
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
        -days 1 -extfile ext.cnf
) >/dev/null 2>&1
"$bin" standalone --grpcServerPort=0 --httpListenPort=0 --storePathRootDir="$tmp/data" --bindAddress=127.0.0.1 --listenPort="$port" \
    --namesrvListenPort="$ns_port" --tls.server.mode=permissive --tls.server.certPath="$tmp/server.pem" \
    --tls.server.keyPath="$tmp/server.key" >"$tmp/broker.log" 2>&1 &
pid=$!
sleep 2
if ! kill -0 "$pid" 2>/dev/null; then
    cat "$tmp/broker.log" >&2
    exit 1
fi
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; } # clock ticks
hz=$(getconf CLK_TCK)
for ((i = 1; i <= runs; i++)); do
    for mode in plain tls; do
        extra=()
        [ "$mode" = tls ] && extra=(--tls "--tls.client.trustCertPath=$tmp/ca.pem")
        c0=$(cpu)
        out=$(/usr/bin/time -f 'BENCHCPU %U %S' "$bin" bench produce --namesrvAddr="127.0.0.1:$ns_port" \
            --topic=TLS1K --threads="$threads" --size=1024 --duration=5 --json "${extra[@]}" 2>&1)
        c1=$(cpu)
        json=$(grep '^{' <<<"$out" | tail -1)
        sent=$(sed -E 's/.*"sent":([0-9]+).*/\1/' <<<"$json")
        tps=$(sed -E 's/.*"tps":([0-9]+).*/\1/' <<<"$json")
        read -r _ bu bs < <(grep BENCHCPU <<<"$out")
        awk -v m="$mode" -v tps="$tps" -v sent="$sent" -v b=$((c1 - c0)) -v hz="$hz" -v bu="$bu" -v bs="$bs" \
            'BEGIN { printf "%-5s %7d msgs/s  broker %.2f us/msg  bench %.2f us/msg\n", m, tps, b / hz * 1e6 / sent, (bu + bs) * 1e6 / sent }'
    done
done
