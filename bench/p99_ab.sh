#!/usr/bin/env bash
# Send-latency A/B of two broker command lines: alternates a fresh
# `apogee standalone` of each (temp data dir), runs the async 20k msgs/s row
# of docs/perf.md against it and prints tps, p50 and p99 per run.
#
# Usage: bench/p99_ab.sh PAIRS "A: binary [flags]" "B: binary [flags]"
#   e.g. bench/p99_ab.sh 6 "build/apogee --messageIndexEnable=true" \
#            "build/apogee --messageIndexEnable=false"
# The client is build/apogee's bench (APOGEE_CLIENT to change it); ports
# 25911/25876 unless APOGEE_AB_PORT / APOGEE_AB_NS_PORT say otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${1:?pairs}
cmd_a=${2:?A command}
cmd_b=${3:?B command}
client=${APOGEE_CLIENT:-build/apogee}
port=${APOGEE_AB_PORT:-25911}
ns=${APOGEE_AB_NS_PORT:-25876}
run() { # label, command line
    local label=$1 d pid bin
    read -r -a argv <<<"$2"
    bin=${argv[0]}
    d=$(mktemp -d)
    "$bin" standalone "${argv[@]:1}" --storePathRootDir="$d" --listenPort="$port" \
        --namesrvListenPort="$ns" >"$d/log" 2>&1 &
    pid=$!
    sleep 0.5
    "$client" bench produce --topic=T1 --threads=2 --mode=async --rate=20000 --size=128 \
        --duration=5 --namesrvAddr=127.0.0.1:"$ns" --json >"$d/out" 2>&1 || true
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    tail -n 1 "$d/out" | node -e 'let s="";process.stdin.on("data",(c)=>s+=c).on("end",()=>{
        const j=JSON.parse(s); console.log(process.argv[1], "tps", j.tps, "p50", j.p50_us, "p99", j.p99_us,
        "failed", j.failed);})' "$label"
    rm -rf "$d"
}
for _ in $(seq 1 "$pairs"); do
    run A "$cmd_a"
    run B "$cmd_b"
done
