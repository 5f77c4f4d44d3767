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
interop_t() { echo "APOGEE_BIN=$scratch/build/apogee node --test ${2:-}tests/interop/$1.test.mjs"; }
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
    "schedule-no-delay|src/broker/schedule/schedule.c|s/int64_t due = rec.mr_store_ts + sc->sc_delay_ms\[lv\];/int64_t due = rec.mr_store_ts;/|$(node_t broker_schedule)"
    "timer-sec-as-100ms|src/broker/timer/timer.c|s/now + x \* 1000)/now + x * 100)/|$(node_t broker_timer)"
    "txn-rollback-commits|src/broker/txn/txn_end.c|s/bool commit = verdict == APG_SYSFLAG_TX_COMMIT;/bool commit = verdict != 0;/|$(node_t broker_txn)"
    "txn-check-max-plus-1|src/broker/txn/txn.c|s/if (times >= tx->tx_check_max) {/if (times > tx->tx_check_max) {/|$(node_t broker_txn)"
    "pop-change-ignored|src/broker/pop/pop.c|s/{offset, stamp, ns, now + invisible_ms, invisible_ms}/{offset, stamp, ns, now, invisible_ms}/|$(node_t broker_pop)"
    "pop-ack-no-commit|src/broker/pop/pop.c|s/if (!rc \&\& r.r_op == 'A')/if (!rc \&\& r.r_op == 'X')/|$(node_t broker_pop)"
    "lock-steal|src/broker/broker_lock.c|s/lapsed(lk, le, now_ms))) {/now_ms >= 0)) {/|$(ctest_t test_broker_lock)"
    "sendback-dlq-late|src/broker/broker_sendback.c|s/rec.mr_reconsume_times >= max_times/rec.mr_reconsume_times > max_times/|$(node_t broker_schedule)"
    "send-retry-dlq-early|src/broker/broker_send.c|s/if (h->sh_reconsume_times <= max)/if (h->sh_reconsume_times < max)/|$(node_t broker_retry)"
    "acl-no-signature|src/acl/acl_check.c|s/^    if (d)\$/    if (false \&\& d)/|$(ctest_t test_acl)"
    "sql-ge-as-gt|src/protocol/filter/sql92_eval.c|s/: sn->sn_op == OP_GE ? cmp >= 0/: sn->sn_op == OP_GE ? cmp > 0/|$(ctest_t test_sql92)"
    "index-chain-cut|src/store/index.c|s/^            v = pv;\$/            v = 0;/|$(ctest_t test_store_index)"
    "pull-longpoll-no-wake|src/broker/broker_pull.c|s/^    recheck(bl, false);\$/    (void)bl;/|$(node_t broker_pipeline "--test-name-pattern='parked pull' ")"
    "grpc-attempt-plus-1|src/proxy/grpc/consume.c|s/sp.delivery_attempt = pm->pm_attempts;/sp.delivery_attempt = pm->pm_attempts + 1;/|$(interop_t grpc_simple_consumer)"
    "busy-sync-backlog-off|src/broker/broker_put.c|s/+ extra >= b->br_sync_pending_max) {/+ extra >= b->br_sync_pending_max * 1000) {/|$(ctest_t test_broker_sync_flush)"
    "busy-page-cache-off|src/broker/broker_put.c|s/> b->br_busy_pc_ms) {/> b->br_busy_pc_ms * 1000) {/|$(node_t overload "--test-name-pattern='PC_SYNCHRONIZED' ")"
    "client-busy-not-recognized|src/client/producer.c|s/if (resp->code == APG_RESP_SYSTEM_BUSY)/if (resp->code == -12345)/|$(node_t overload "--test-name-pattern='backs off' ")"
    "frame-deadline-off|src/net/net.c|s/now - c->c_frame_start >= l->l_frame_timeout_ms) {/now - c->c_frame_start >= l->l_frame_timeout_ms * 1000) {/|$(node_t slow_peers "--test-name-pattern='frame deadline' ")"
    "retention-forcibly-default|src/store/retention.c|s/st->st_opts.so_clean_forcibly \&\& (ratio/(ratio/|$(ctest_t test_store)"
    "namesrv-no-expiry|src/namesrv/route.c|s/return ea->now - lv->lv_last_ms > t;/return false;/|$(ctest_t test_route)"
    "http-search-end-exclusive|src/http/admin_api.c|s/r.mr_store_ts <= end) {/r.mr_store_ts < end) {/|$(node_t http_search)"
    "disk-full-ratio-off|src/store/retention.c|s/bool full = r > st->st_opts.so_disk_warning_ratio /bool full = r > 100 /|$(ctest_t test_store)"
    "recover-no-crc|src/store/recover.c|s/st->st_opts.so_check_crc_on_recover, note_ts/false, note_ts/|$(ctest_t test_store_fixtures)"
    "timer-cancel-ignored|src/broker/timer/timer.c|s/^    if (!tm->tm_nkeys)\$/    if (tm->tm_nkeys >= 0)/|$(node_t broker_timer)"
    "acl-range-open|src/acl/acl_addr.c|s/ip\[12 + i\] > a->aa_hi\[i\])/ip[12 + i] > 255)/|$(ctest_t test_acl)"
    "pop-no-backoff|src/broker/pop/pop.c|s/MAX_BACKOFF_S : s) \* 1000;/MAX_BACKOFF_S : s) * 0;/|$(node_t broker_pop)"
    "http-consume-tag-ignored|src/http/mq_http.c|s/\.pr_tags = \&f,/.pr_tags = NULL,/|$(interop_t http_sdk)"
    "grpc-tag-hash-zero|src/proxy/grpc/produce.c|s/in->mi_tags_code = sp->tag \&\& sp->tag\[0\] ? apg_java_hash(sp->tag, strlen(sp->tag)) : 0;/in->mi_tags_code = 0;/|$(interop_t grpc_producer)"
    "notify-ignores-sync|src/broker/broker_put.c|/^apg_err_t apg_broker_put_notify/,/^}/s/if (b->br_sync_flush) {/if (false) {/|$(interop_t grpc_producer "--test-name-pattern=SYNC_FLUSH ")"
    "alloc-average-overlap|src/client/route.c|s/: index \* avg + mod;/: index * avg;/|$(ctest_t test_client_msg)"
    "msgid-offset-shift|src/protocol/msgid.c|s/\*phys_offset = (int64_t)apg_be64(raw + n + 4);/*phys_offset = (int64_t)apg_be64(raw + n + 3);/|$(ctest_t test_codec)"
    "client-retry-same-broker|src/client/producer.c|s/apg_croute_pick_rr(rt, \&t->ct_rr, ps->ps_last_broker)/apg_croute_pick_rr(rt, \&t->ct_rr, \"\")/|$(node_t client_failover "--test-name-pattern='another broker' ")"
    "consumer-never-expires|src/broker/broker_client.c|s/int64_t older = now_ms - b->br_channel_expire_ms;/int64_t older = now_ms - b->br_channel_expire_ms * 1000;/|$(node_t broker_lock)"
    "http-wait-ignored|src/http/mq_http.c|s/int wait = q->q_wait < 0 ? 0 : q->q_wait;/int wait = 0;/|$(interop_t http_sdk_sync)"
    "reset-unforced-moves-forward|src/broker/broker_admin_reset.c|s/at < now ? at : now;/true ? at : now;/|$(node_t http_admin "--test-name-pattern='reset with preview' ")"
    "pop-fifo-not-held|src/broker/pop/pop.c|s/if (rq->pr_fifo \&\& apg_pop_state_busy(q))/if (false \&\& apg_pop_state_busy(q))/|$(node_t broker_pop)"
    "txn-check-immediately|src/broker/txn/txn.c|s/now - rec->mr_store_ts < tx->tx_timeout_ms)/now - rec->mr_store_ts < 0)/|$(node_t broker_txn "--test-name-pattern='SIGTERM stop' ")"
    "namesrv-unregister-ignored|src/namesrv/processor.c|s/    apg_route_unregister(ns->ns_rt, cluster, name, addr,/    (void)ns->ns_rt, (void)cluster, (void)name, (void)addr, (void)(/|$(node_t namesrv)"
    "index-no-uniq-key|src/store/index.c|s/} else if (nl == 8 \&\& memcmp(p, \"UNIQ_KEY\", 8) == 0) {/} else if (nl == 9 \&\& memcmp(p, \"UNIQ_KEY\", 8) == 0) {/|$(node_t query_message)"
    "sql-filter-off-broker|src/broker/broker_filter.c|s/    return apg_sql92_match(q, props, len);/    return (void)q, (void)props, (void)len, true;/|$(node_t sql_filter)"
    "http-txn-end-inverted|src/http/mq_http.c|s/if (end_half(mh, hs, hl, commit, /if (end_half(mh, hs, hl, !commit, /|$(interop_t http_sdk "--test-name-pattern='transactional halves' ")"
    "ha-filler-not-swallowed|src/store/replica.c|s/if (s \&\& pos == s->sg_base \&\& at >= s->sg_base - fsz) {/if (false) {/|$(ctest_t test_ha)"
    "ha-offsets-not-copied|src/broker/broker_ha.c|s/^    sync_offsets(b, addr);\$/    (void)sync_offsets;/|$(node_t ha "--test-name-pattern='^ASYNC_MASTER' ")"
    "ha-offset-check-off|src/ha/ha_client.c|s/^    if (f->hf_offset != expect) {\$/    if (false \&\& f->hf_offset != expect) {/|$(node_t ha "--test-name-pattern='wrong offset' ")"
    "ha-slave-takes-sends|src/broker/broker.c|s/if (b->br_slave \&\& refused_by_slave(b, c, req))/if (false \&\& refused_by_slave(b, c, req))/|$(node_t ha "--test-name-pattern='^ASYNC_MASTER' ")"
    "ha-empty-slave-no-adopt|src/ha/ha_client.c|s/^    if (f->hf_offset > expect \&\& f->hf_size > 0/    if (false \&\& f->hf_offset > expect \&\& f->hf_size > 0/|$(node_t ha "--test-name-pattern='wrong offset' ")"
    "sync-master-no-wait|src/store/commitlog.c|s/bool repl = st->st_opts.so_sync_replica \&\& ack_cb;/bool repl = false;/|$(node_t ha "--test-name-pattern='^SYNC_MASTER' ")"
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
