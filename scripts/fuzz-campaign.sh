#!/usr/bin/env bash
# A fuzzing campaign: runs libFuzzer harnesses from tests/fuzz until each has
# used a given amount of CPU time, then minimizes what it found back into the
# committed corpus (tests/fuzz/corpus/<name>). CI runs only a short smoke of
# every harness (scripts/test.sh); this script is the long run whose results
# docs/testing.md records.
#
# Usage: scripts/fuzz-campaign.sh [-s CPU_SECONDS] [-j PARALLEL] [harness...]
#   -s  CPU seconds per harness (default 3600); measured from the fuzzer's
#       own utime+stime, so a loaded machine stretches the wall time instead
#       of shortening the campaign
#   -j  harnesses run at the same time (default 1)
#   harness names as in tests/fuzz/fuzz_<name>.c (default: all)
# Runs at nice 19. Findings (crash-*, leak-*, timeout-*, oom-*) are kept in
# fuzz-findings/<name>/ and make the script exit 1. One summary line per
# harness: cpu seconds, executions, coverage, corpus files before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

cpu_limit=3600
parallel=1
while getopts "s:j:" opt; do
    case $opt in
    s) cpu_limit=$OPTARG ;;
    j) parallel=$OPTARG ;;
    *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
if [ $# -gt 0 ]; then
    names=("$@")
else
    names=()
    for f in tests/fuzz/fuzz_*.c; do
        n=$(basename "$f" .c)
        names+=("${n#fuzz_}")
    done
fi

CC=clang CFLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer" \
    nice -n 19 scripts/build.sh build-fuzz -DAPOGEE_FUZZ=ON -DAPOGEE_TESTS=OFF

hz=$(getconf CLK_TCK)
cpu_seconds() { # utime + stime of one process, in whole seconds
    awk -v hz="$hz" '{ sub(/^.*\) /, ""); print int(($12 + $13) / hz) }' "/proc/$1/stat" 2>/dev/null ||
        echo 0
}

campaign() {
    local name=$1 bin="$root/build-fuzz/fuzz_$1" corpus="$root/tests/fuzz/corpus/$1"
    local work found log pid used=0 before after
    work=$(mktemp -d)
    found="$root/fuzz-findings/$name"
    mkdir -p "$found" "$corpus"
    log="$found/fuzz.log"
    before=$(find "$corpus" -type f | wc -l)
    cp -r "$corpus"/. "$work"/ 2>/dev/null || true
    (cd "$found" && exec nice -n 19 "$bin" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$found/" "$work" >"$log" 2>&1) &
    pid=$!
    # the subshell execs, so $pid is the fuzzer itself
    while kill -0 "$pid" 2>/dev/null; do
        used=$(cpu_seconds "$pid")
        [ "$used" -ge "$cpu_limit" ] && kill -INT "$pid" 2>/dev/null
        sleep 5
    done
    wait "$pid" || true
    # Minimize: keep the smallest set of inputs with the coverage of old + new.
    local min
    min=$(mktemp -d)
    nice -n 19 "$bin" -merge=1 "$min" "$corpus" "$work" >>"$log" 2>&1 || true
    # Named seeds (hand-made frames the unit tests also read) stay; the
    # inputs libFuzzer named by their SHA-1 are replaced by the merged set.
    if [ -n "$(ls -A "$min")" ]; then
        mkdir -p "$corpus"
        find "$corpus" -maxdepth 1 -type f -regextype posix-extended -regex '.*/[0-9a-f]{40}' -delete
        cp "$min"/* "$corpus"/
    fi
    after=$(find "$corpus" -type f | wc -l)
    local execs cov ft
    execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -n 1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+')
    ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+')
    local findings
    findings=$(find "$found" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
        -o -name 'oom-*' \) | wc -l)
    printf '%-16s cpu=%ss execs=%s cov=%s ft=%s corpus=%s->%s findings=%s\n' "$name" "$used" \
        "${execs:-?}" "${cov:-?}" "${ft:-?}" "$before" "$after" "$findings" | tee -a "$root/fuzz-findings/summary"
    rm -rf "$work" "$min"
    [ "$findings" = 0 ]
}

mkdir -p fuzz-findings
status=0
running=0
for n in "${names[@]}"; do
    [ -x "build-fuzz/fuzz_$n" ] || {
        echo "no harness build-fuzz/fuzz_$n" >&2
        exit 2
    }
    campaign "$n" &
    running=$((running + 1))
    if [ "$running" -ge "$parallel" ]; then
        wait -n || status=1
        running=$((running - 1))
    fi
done
while [ "$running" -gt 0 ]; do
    wait -n || status=1
    running=$((running - 1))
done
exit $status
