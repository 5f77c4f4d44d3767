#!/usr/bin/env bash
# Mutation check: does the suite notice a one-line bug?
#
#   scripts/mutate.sh [NAME...]     (no NAME: every mutant below)
#
# Copies the committed tree (git archive HEAD) to a scratch directory, builds
# it once, then for each mutant: restores the pristine file, applies one sed
# expression to it (the mutant must change the file, or it is reported as
# "not applied"), rebuilds incrementally, and runs the tests meant to catch
# it (each test command is first run once on the unmutated build and must
# pass). A mutant is "killed" when those tests fail, "survived" when they pass.
# The working tree is never touched. Prints one line per mutant and a score;
# exits 1 if any mutant survived or did not apply.
set -euo pipefail
cd "$(dirname "$0")/.."

scratch=$(mktemp -d "${TMPDIR:-/tmp}/apogee-mutate-XXXXXX")
trap 'rm -rf "$scratch"' EXIT
git archive HEAD | tar -x -C "$scratch"
if [ -d tests/node_modules ]; then
    cp -r tests/node_modules "$scratch/tests/"
fi

echo "building a scratch copy in $scratch"
(cd "$scratch" && scripts/build.sh build >"$scratch/build.log" 2>&1) || {
    tail -n 30 "$scratch/build.log"
    exit 1
}

# name | file | sed expression | test command (run in the scratch tree)
node_t() { echo "APOGEE_BIN=$scratch/build/apogee node --test ${2:-}tests/integration/$1.test.mjs"; }
ctest_t() { echo "ctest --test-dir build -R '^$1\$'"; }
mutants=(
    "pull-no-tag-filter|src/broker/broker_pull.c|s/^    if (max_msgs > b->br_max_pull_msgs)\$/    f.te_all = true;\n&/|$(node_t broker_filter)"
    "pull-nomatch-stuck|src/broker/broker_pull.c|s/APG_RESP_PULL_RETRY_IMMEDIATELY, sname, r.gr_next_begin_offset,/APG_RESP_PULL_RETRY_IMMEDIATELY, sname, offset,/|$(node_t broker_filter)"
    "store-nomatch-stuck|src/store/read.c|s/^        r->gr_next_begin_offset = lo;/        r->gr_next_begin_offset = r->gr_count ? lo : offset;/|$(node_t broker_filter)"
    "sync-flush-fail-acked|src/broker/broker_put.c|s/^        if (a->sa_rc == APG_OK) {\$/        if (a->sa_rc != APG_ETIMEDOUT) {/|$(ctest_t test_broker_sync_flush)"
    "header-len-plus-4|src/protocol/remoting.c|s/if (hdr_len > len - 8)/if (hdr_len > len - 4)/|$(ctest_t test_remoting)"
    "header-len-minus-1|src/protocol/remoting.c|s/if (hdr_len > len - 8)/if (hdr_len > len - 7)/|$(ctest_t test_remoting)"
    "abort-at-shutdown|src/main.c|s/^    return rc;\$/    abort();/|$(node_t broker_filter)"
    "msync-async|src/store/mapped_file.c|s/MS_SYNC)/MS_ASYNC)/|$(ctest_t test_store)"
    "push-no-periodic-commit|src/client/push/consumer.c|s/if (now >= c->pc_next_commit) {/if (false \\&\\& now >= c->pc_next_commit) {/|$(node_t client_examples "--test-name-pattern='reach the broker while it runs' ")"
)

want=" $* "
# Every test command must pass on the unmutated tree, or a "killed" means nothing.
declare -A seen=()
for m in "${mutants[@]}"; do
    IFS='|' read -r name _ _ cmd <<<"$m"
    [ $# -gt 0 ] && [[ $want != *" $name "* ]] && continue
    [ -n "${seen[$cmd]:-}" ] && continue
    seen[$cmd]=1
    if ! (cd "$scratch" && timeout 600 bash -c "$cmd" >"$scratch/baseline.log" 2>&1); then
        echo "baseline fails without any mutant: $cmd"
        tail -n 30 "$scratch/baseline.log"
        exit 1
    fi
done

killed=0
survived=0
broken=0
for m in "${mutants[@]}"; do
    IFS='|' read -r name file expr cmd <<<"$m"
    [ $# -gt 0 ] && [[ $want != *" $name "* ]] && continue
    git show "HEAD:$file" >"$scratch/$file"
    sed -i "$expr" "$scratch/$file"
    if cmp -s "$scratch/$file" <(git show "HEAD:$file"); then
        printf '%-24s not applied (%s no longer matches)\n' "$name" "$file"
        broken=$((broken + 1))
        continue
    fi
    if ! (cd "$scratch" && cmake --build build -j2 >"$scratch/mutant.log" 2>&1); then
        printf '%-24s killed (does not build)\n' "$name"
        killed=$((killed + 1))
    elif (cd "$scratch" && timeout 600 bash -c "$cmd" >"$scratch/mutant.log" 2>&1); then
        printf '%-24s SURVIVED  %s\n' "$name" "$cmd"
        survived=$((survived + 1))
    else
        printf '%-24s killed\n' "$name"
        killed=$((killed + 1))
    fi
    git show "HEAD:$file" >"$scratch/$file"
done
total=$((killed + survived + broken))
echo "mutants: $killed killed, $survived survived, $broken not applied (of $total)"
[ "$survived" = 0 ] && [ "$broken" = 0 ]
