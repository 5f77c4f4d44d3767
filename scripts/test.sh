#!/usr/bin/env bash
# README command 2: install what is missing, build, and run every test:
#   1. format check (clang-format, .clang-format at the root) and the include
#      layer check (scripts/check-layers.sh)
#   2. unit tests (cmocka, via ctest)
#   3. integration and interop tests (node --test; real processes on 127.0.0.1)
#      and the short fault-injection suite (scripts/faults.sh)
#   4. the unit tests again under ASan + UBSan
#   5. the threaded unit tests and two integration suites under ThreadSanitizer
#   6. a short libFuzzer smoke run of every harness in tests/fuzz
# A node test file that fails does not stop the run; the last line counts
# "tests: N passed, M failed, K skipped" and the script fails if any test
# failed or a node test skipped without a line in tests/skips.txt.
# APOGEE_TEST_LONG=1 runs the long variants (more crash cycles, longer fuzzing).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

step() { printf '\n=== %s\n' "$*"; }

# Totals over every runner, for the closing line.
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
passed=0
failed=0
count_ctest() { # ctest's "NN% tests passed, F tests failed out of N"
    local line n f
    line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$1" | tail -n 1)
    n=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")
    f=$(sed -E 's/.*passed, ([0-9]+) tests? failed.*/\1/' <<<"$line")
    passed=$((passed + ${n:-0} - ${f:-0}))
    failed=$((failed + ${f:-0}))
}
skipped=0
: >"$logs/unlisted"
# node --test prints "ok N - name # SKIP reason" (or "# TODO") for a skipped test
# or a skipped suite, at any depth; a skipped suite counts once, since its
# tests never run. Each must be listed in tests/skips.txt as
# "file | name | reason" (reason not empty), or the run fails.
count_node_skips() { # log file
    local name
    while IFS= read -r name; do
        skipped=$((skipped + 1))
        if ! grep -v '^#' tests/skips.txt 2>/dev/null | F="$2" N="$name" awk -F' [|] ' \
            '$1 == ENVIRON["F"] && $2 == ENVIRON["N"] && $3 ~ /[^ ]/ { ok = 1 } END { exit !ok }'; then
            echo "$2 | $name" >>"$logs/unlisted"
        fi
    done < <(sed -nE 's/^ *ok [0-9]+ - (.*) # (SKIP|TODO)( .*)?$/\1/p' "$1")
}
count_node() { # log file exit-status: node --test's "# pass N" / "# fail N"
    local p f
    p=$(grep -E '^# pass [0-9]+' "$1" | tail -n 1 | awk '{print $3}')
    f=$(grep -E '^# fail [0-9]+' "$1" | tail -n 1 | awk '{print $3}')
    # A failing before/after hook (a server that did not exit 0 after SIGTERM)
    # fails the file with "# fail 0": count the file as one failure.
    if [ "$3" != 0 ] && [ "${f:-0}" = 0 ]; then
        echo "$2: node exited with status $3 and no failed test: a hook or the file failed"
        f=1
    fi
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0}))
    count_node_skips "$1" "$2"
}
run_node() { # file [VAR=value...]: one node test file, counted; a failure does not stop the run
    local t=$1 rc=0
    shift
    env "$@" node --test "$t" | tee "$logs/node.log" || rc=${PIPESTATUS[0]}
    count_node "$logs/node.log" "$t" "$rc"
}

step "dependencies"
scripts/install-deps.sh
if [ -f tests/package-lock.json ]; then
    (cd tests && npm ci --no-audit --no-fund --loglevel=error)
fi

step "format check"
mapfile -t srcs < <(git ls-files -co --exclude-standard -- '*.c' '*.h' | grep -v '^tests/fixtures/' || true)
if [ ${#srcs[@]} -gt 0 ]; then
    clang-format --dry-run --Werror "${srcs[@]}"
fi
echo "format ok (${#srcs[@]} files)"

step "layer check"
# Includes point down the layer order and close no circle.
scripts/check-layers.sh

# Warnings fail every build this script makes (APOGEE_WERROR); a user's own
# build keeps them as warnings.
step "build"
scripts/build.sh build -DAPOGEE_WERROR=ON

step "unit tests"
(cd build && ctest --output-on-failure -j2) | tee "$logs/ctest.log"
count_ctest "$logs/ctest.log"

step "integration and interop tests"
export APOGEE_BIN="$root/build/apogee"
mapfile -t jstests < <(ls tests/integration/*.test.mjs tests/interop/*.test.mjs 2>/dev/null || true)
# One file at a time: the suites start real servers, and Debian 12's own
# Node 18 has no --test-concurrency.
for t in "${jstests[@]}"; do
    echo "--- $t"
    run_node "$t"
done

step "fault injection (short)"
# scripts/faults.sh prints ok/not ok lines and "# pass N" / "# fail N" like a
# node test file and is counted the same way; its loop-device scenarios skip
# where the run is not root (listed in tests/skips.txt).
rc=0
scripts/faults.sh | tee "$logs/faults.log" || rc=${PIPESTATUS[0]}
count_node "$logs/faults.log" scripts/faults.sh "$rc"

step "unit tests under ASan + UBSan"
scripts/build.sh build-asan -DAPOGEE_SANITIZE=ON -DAPOGEE_WERROR=ON -DCMAKE_BUILD_TYPE=Debug
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j2) | tee "$logs/asan.log"
count_ctest "$logs/asan.log"

step "broker under ASan + UBSan: integration subset"
# The same node suites against the sanitized binary: a memory error or
# undefined behaviour in the server aborts it, which fails the test.
for t in tests/integration/namesrv.test.mjs tests/integration/broker_pipeline.test.mjs \
    tests/integration/broker_retry.test.mjs tests/integration/broker_lock.test.mjs \
    tests/integration/tls.test.mjs tests/integration/broker_admin.test.mjs \
    tests/interop/ali_ons.test.mjs tests/integration/proxy.test.mjs \
    tests/integration/proxy_acl.test.mjs tests/integration/http_search.test.mjs \
    tests/integration/ha.test.mjs; do
    echo "--- $t (ASan)"
    run_node "$t" APOGEE_BIN="$root/build-asan/apogee" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
        UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
done

step "ThreadSanitizer: threaded unit tests and an integration subset"
# The unit tests whose code runs threads (client, net, store, broker) and two
# node suites against the TSan server and the TSan-built examples (the client
# library's I/O and push threads). halt_on_error stops the process at the
# first race, which fails the test it was in. Suppressions go in
# tests/tsan.supp, only for reports checked to be false positives in
# libuv/libc, one line of reason each; none is needed today.
scripts/build.sh build-tsan -DAPOGEE_TSAN=ON -DAPOGEE_WERROR=ON
tsan_opts="halt_on_error=1:second_deadlock_stack=1"
[ -f tests/tsan.supp ] && tsan_opts="$tsan_opts:suppressions=$root/tests/tsan.supp"
# One test at a time: TSan slows each one several-fold, and two in parallel on
# the two cores pushed test_net's 2 s graceful-stop window over its limit.
(cd build-tsan && TSAN_OPTIONS="$tsan_opts" ctest --output-on-failure -j1 \
    -R '^test_(client|net|store|broker)') | tee "$logs/tsan.log"
count_ctest "$logs/tsan.log"
mkdir -p "$logs/tsan"
for t in tests/integration/broker_pipeline.test.mjs tests/integration/client_examples.test.mjs \
    tests/integration/client_orderly.test.mjs tests/integration/proxy.test.mjs \
    tests/integration/proxy_acl.test.mjs; do
    echo "--- $t (TSan)"
    run_node "$t" APOGEE_BIN="$root/build-tsan/apogee" TSAN_OPTIONS="$tsan_opts:log_path=$logs/tsan/report"
done
# A race in a server's shutdown, after its test passed, fails nothing above;
# show it here so it is not lost.
if ls "$logs"/tsan/report.* >/dev/null 2>&1; then
    echo "ThreadSanitizer reports from processes that outlived their test:"
    cat "$logs"/tsan/report.*
fi

step "fuzz smoke"
fuzz_secs=${APOGEE_FUZZ_SECONDS:-15}
[ "${APOGEE_TEST_LONG:-0}" = 1 ] && fuzz_secs=120
if ls tests/fuzz/fuzz_*.c >/dev/null 2>&1; then
    CC=clang CFLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer" \
        scripts/build.sh build-fuzz -DAPOGEE_FUZZ=ON -DAPOGEE_TESTS=OFF -DAPOGEE_WERROR=ON
    fuzz_one() { # harness: runs it from a copy of its corpus; its output in $logs/<harness>.fuzz
        local corpus="tests/fuzz/corpus/${1#fuzz_}" work rc=0
        work=$(mktemp -d)
        [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/ 2>/dev/null || true
        ./build-fuzz/"$1" -max_total_time="$fuzz_secs" -print_final_stats=0 "$work" \
            >"$logs/$1.fuzz" 2>&1 || rc=$?
        rm -rf "$work"
        return $rc
    }
    mapfile -t harnesses < <(for f in tests/fuzz/fuzz_*.c; do basename "$f" .c; done)
    # Two harnesses at a time (one per core of the CI machine); each still
    # gets fuzz_secs. A finding (the harness exits non-zero) counts as a
    # failed test and its output is printed whole.
    for ((i = 0; i < ${#harnesses[@]}; i += 2)); do
        pids=()
        for name in "${harnesses[@]:i:2}"; do
            fuzz_one "$name" &
            pids+=("$!")
        done
        k=0
        for name in "${harnesses[@]:i:2}"; do
            rc=0
            wait "${pids[$k]}" || rc=$?
            k=$((k + 1))
            echo "fuzzing $name for ${fuzz_secs}s"
            if [ "$rc" = 0 ]; then
                tail -n 3 "$logs/$name.fuzz"
                passed=$((passed + 1))
            else
                cat "$logs/$name.fuzz"
                echo "$name: exit status $rc (a finding; the input is named above)"
                failed=$((failed + 1))
            fi
        done
    done
fi

step "result"
if [ -s "$logs/unlisted" ]; then
    echo "skipped tests not listed with a reason in tests/skips.txt (file | name | reason):"
    sort -u "$logs/unlisted"
fi
unlisted=$(sort -u "$logs/unlisted" | wc -l)
echo "tests: $passed passed, $failed failed, $skipped skipped ($unlisted not in tests/skips.txt)"
[ "$failed" = 0 ] && [ ! -s "$logs/unlisted" ]
