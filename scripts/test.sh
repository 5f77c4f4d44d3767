#!/usr/bin/env bash
# README command 2: install what is missing, build, and run every test:
#   1. format check (clang-format, .clang-format at the root)
#   2. unit tests (cmocka, via ctest)
#   3. integration and interop tests (node --test; real processes on 127.0.0.1)
#   4. the unit tests again under ASan + UBSan
#   5. a short libFuzzer smoke run of every harness in tests/fuzz
# APOGEE_TEST_LONG=1 runs the long variants (more crash cycles, longer fuzzing).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

step() { printf '\n=== %s\n' "$*"; }

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

step "build"
scripts/build.sh build

step "unit tests"
(cd build && ctest --output-on-failure -j2)

step "integration and interop tests"
export APOGEE_BIN="$root/build/apogee"
mapfile -t jstests < <(ls tests/integration/*.test.mjs tests/interop/*.test.mjs 2>/dev/null || true)
if [ ${#jstests[@]} -gt 0 ]; then
    node --test --test-concurrency=1 "${jstests[@]}"
fi

step "unit tests under ASan + UBSan"
scripts/build.sh build-asan -DAPOGEE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j2)

step "fuzz smoke"
fuzz_secs=${APOGEE_FUZZ_SECONDS:-15}
[ "${APOGEE_TEST_LONG:-0}" = 1 ] && fuzz_secs=120
if ls tests/fuzz/fuzz_*.c >/dev/null 2>&1; then
    CC=clang CFLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer" \
        scripts/build.sh build-fuzz -DAPOGEE_FUZZ=ON -DAPOGEE_TESTS=OFF
    for f in tests/fuzz/fuzz_*.c; do
        name=$(basename "$f" .c)
        corpus="tests/fuzz/corpus/${name#fuzz_}"
        work=$(mktemp -d)
        [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/ 2>/dev/null || true
        echo "fuzzing $name for ${fuzz_secs}s"
        ./build-fuzz/"$name" -max_total_time="$fuzz_secs" -print_final_stats=0 "$work" 2>&1 | tail -n 3
        rm -rf "$work"
    done
fi

step "all tests passed"
