#!/usr/bin/env bash
# The gRPC throughput bars, two brokers side by side: SendMessage (128 B, one connection,
# 64 streams) and ReceiveMessage + AckMessage (8 SimpleConsumers reading 1,000,000 messages).
#
# Usage: [PORT_A=294 PORT_B=295] bench/grpc_ab.sh BIN_A BIN_B [ROUNDS] [GEN]
#   BIN_A, BIN_B: the two apogee binaries to compare (e.g. main's and the branch's);
#   GEN: the apogee whose `bench` generates the load (default BIN_B); ROUNDS default 3.
# Starts `apogee standalone --grpcServerPort` for each binary (ports <PORT_x>11 remoting,
# <PORT_x>76 NameServer, <PORT_x>80 HTTP, <PORT_x>81 gRPC; fresh temporary stores,
# ASYNC_FLUSH) with BenchTopic of 8 queues, then per round, alternating the brokers:
#   GEN bench produce --protocol=grpc --grpcAddr=127.0.0.1:<PORT_x>81 --topic=BenchTopic
#       --duration=10 --json
# then restarts both empty, fills each with exactly 1,000,000 messages (--messages), and per
# round, alternating, reads all of them with a new group:
#   GEN bench consume --protocol=grpc --grpcAddr=... --topic=BenchTopic --group=PB<round>
#       --consumers=8 --messages=1000000 --duration=120 --json
# Each line: the generator's JSON summary, then the broker's and the generator's CPU time
# (user + system) per message in microseconds. Everything it made is removed at the end.
set -euo pipefail
bin_a=$1
bin_b=$2
rounds=${3:-3}
gen=${4:-$bin_b}
pa=${PORT_A:-294}
pb=${PORT_B:-295}
tmp=$(mktemp -d)
pids=()
stop() { # pids...: SIGTERM, then wait until they are gone
    for p in "$@"; do kill "$p" 2>/dev/null || true; done
    for p in "$@"; do
        while kill -0 "$p" 2>/dev/null; do sleep 0.1; done
    done
}
cleanup() {
    stop "${pids[@]}"
    rm -rf "$tmp"
}
trap cleanup EXIT

start() { # bin dir portbase -> pid on stdout
    rm -rf "$2"
    mkdir -p "$2"
    "$1" standalone --storePathRootDir="$2" --bindAddress=127.0.0.1 --listenPort="${3}11" \
        --namesrvListenPort="${3}76" --httpListenPort="${3}80" --grpcServerPort="${3}81" \
        >"$2/log" 2>&1 &
    local pid=$!
    for _ in $(seq 100); do
        (echo >"/dev/tcp/127.0.0.1/${3}81") 2>/dev/null && break
        sleep 0.1
    done
    "$1" admin updateTopic -b "127.0.0.1:${3}11" -t BenchTopic -r 8 -w 8 >/dev/null
    echo "$pid"
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() { # label pid args...: the summary and CPU per message
    local label=$1 pid=$2
    shift 2
    local t0 t1 out gen_s n
    t0=$(cpu_ticks "$pid")
    out=$({ /usr/bin/time -f 'GENCPU %U %S' nice -n 5 "$gen" bench "$@" --json; } 2>&1 || true)
    t1=$(cpu_ticks "$pid")
    gen_s=$(sed -n 's/^GENCPU \([0-9.]*\) \([0-9.]*\)$/\1 \2/p' <<<"$out" | awk '{print $1 + $2}')
    n=$(grep -o '"\(sent\|acked\)":[0-9]*' <<<"$out" | tail -n 1 | cut -d: -f2)
    echo "$label $(grep '^{' <<<"$out" | tail -n 1)"
    awk -v b="$((t1 - t0))" -v g="$gen_s" -v n="${n:-0}" 'BEGIN {
        if (n > 0) printf "  broker %.2f us/msg, generator %.2f us/msg\n", b * 1e4 / n, g * 1e6 / n }'
}

ga=$(start "$bin_a" "$tmp/a" "$pa")
gb=$(start "$bin_b" "$tmp/b" "$pb")
pids=("$ga" "$gb")
for r in $(seq "$rounds"); do
    echo "produce round $r, load $(cut -d' ' -f1-3 /proc/loadavg)"
    run "A" "$ga" produce --protocol=grpc --grpcAddr="127.0.0.1:${pa}81" --topic=BenchTopic --duration=10
    run "B" "$gb" produce --protocol=grpc --grpcAddr="127.0.0.1:${pb}81" --topic=BenchTopic --duration=10
done
stop "$ga" "$gb"
ga=$(start "$bin_a" "$tmp/a" "$pa")
gb=$(start "$bin_b" "$tmp/b" "$pb")
pids=("$ga" "$gb")
run "fill A" "$ga" produce --protocol=grpc --grpcAddr="127.0.0.1:${pa}81" --topic=BenchTopic --messages=1000000 --duration=120
run "fill B" "$gb" produce --protocol=grpc --grpcAddr="127.0.0.1:${pb}81" --topic=BenchTopic --messages=1000000 --duration=120
for r in $(seq "$rounds"); do
    echo "consume round $r, load $(cut -d' ' -f1-3 /proc/loadavg)"
    for x in A B; do
        if [ $x = A ]; then pid=$ga port=$pa; else pid=$gb port=$pb; fi
        run "$x" "$pid" consume --protocol=grpc --grpcAddr="127.0.0.1:${port}81" --topic=BenchTopic \
            --group="PB$r" --consumers=8 --messages=1000000 --duration=120
    done
done
