#!/usr/bin/env bash
# Wall time of each `apogee admin` command against a local `apogee standalone`, the whole
# process from exec to exit (start, connect, requests, output). Each command runs N times
# (default 20); prints median, p90 and max in ms, measured with date +%s%N around the run.
# Stops at the first command that exits non-zero.
#   bench/admin_latency.sh [build] [N]
set -u
BIN=${1:-build}/apogee
N=${2:-20}
NS=26977
PORT=27012
d=$(mktemp -d /tmp/apogee-admin-latency.XXXXXX)
"$BIN" standalone --grpcServerPort=0 --httpListenPort=0 --storePathRootDir="$d" --listenPort=$PORT --namesrvListenPort=$NS >>"$d/log" 2>&1 &
p=$!
trap 'kill $p 2>/dev/null; wait $p 2>/dev/null; rm -rf "$d"' EXIT
sleep 1
export NAMESRV_ADDR=127.0.0.1:$NS
A() { "$BIN" admin "$@"; }
A updateTopic -t LatT -c DefaultCluster -r 4 -w 4 >/dev/null
A updateSubGroup -g LatG -c DefaultCluster >/dev/null
sent=$(A sendMessage -t LatT -p body -k LatKey --json)
msgid=$(echo "$sent" | python3 -c 'import json,sys; print(json.load(sys.stdin)["msgId"])')
offid=$(echo "$sent" | python3 -c 'import json,sys; print(json.load(sys.stdin)["offsetMsgId"])')
qid=$(echo "$sent" | python3 -c 'import json,sys; print(json.load(sys.stdin)["queueId"])')
for q in 0 1 2 3; do # offsets for LatG (the reset commands need some)
    A resetOffsetByTime -g LatG -t LatT -s 0 -b broker-a -q $q -o 0 >/dev/null
done
sleep 1
cmds=(
    "clusterList"
    "brokerStatus -b 127.0.0.1:$PORT"
    "topicList"
    "topicRoute -t LatT"
    "topicStatus -t LatT"
    "topicClusterList -t LatT"
    "updateTopic -t LatT -c DefaultCluster -r 4 -w 4"
    "updateTopicPerm -t LatT -c DefaultCluster -p 6"
    "updateSubGroup -g LatG -c DefaultCluster"
    "consumerProgress -g LatG"
    "consumerProgress"
    "queryMsgById -i $offid"
    "queryMsgByKey -t LatT -k LatKey"
    "queryMsgByUniqueKey -i $msgid -t LatT"
    "queryMsgByOffset -t LatT -b broker-a -i $qid -o 0"
    "printMsg -t LatT"
    "sendMessage -t LatT -p x"
    "consumeMessage -t LatT -c 1"
    "resetOffsetByTime -g LatG -t LatT -s 0 --dry-run"
    "resetOffsetByTime -g LatG -t LatT -s 0"
    "skipAccumulatedMessage -g LatG -t LatT"
    "dlq list"
    "dlq show -g LatG"
    "doctor -t LatT -g LatG"
)
printf '%-52s %8s %8s %8s\n' command median p90 max
for c in "${cmds[@]}"; do
    ts=()
    for ((i = 0; i < N; i++)); do
        s=$(date +%s%N)
        # shellcheck disable=SC2086
        A $c >/dev/null 2>"$d/err" || { echo "failed: apogee admin $c: $(cat "$d/err")"; exit 1; }
        e=$(date +%s%N)
        ts+=($(((e - s) / 1000)))
    done
    sorted=$(printf '%s\n' "${ts[@]}" | sort -n)
    med=$(echo "$sorted" | sed -n "$((N / 2 + 1))p")
    p90=$(echo "$sorted" | sed -n "$((N * 9 / 10 + 1))p")
    max=$(echo "$sorted" | tail -1)
    printf '%-52s %8.1f %8.1f %8.1f\n' "$c" "$(echo "$med/1000" | bc -l)" "$(echo "$p90/1000" | bc -l)" \
        "$(echo "$max/1000" | bc -l)"
done
