// Transactional messages, driven with raw remoting requests so each step can be checked on
// the broker itself:
// - a send with TRAN_MSG=true is held in RMQ_SYS_TRANS_HALF_TOPIC (REAL_TOPIC/REAL_QID set),
//   invisible in its topic;
// - END_TRANSACTION commit delivers it once (a repeated commit stores nothing more), with
//   its UNIQ_KEY, KEYS, TAGS and properties; rollback never delivers; each writes an op
//   record (tag "d", body: the half's queue offset) to RMQ_SYS_TRANS_OP_HALF_TOPIC;
// - a half left open is checked back (CHECK_TRANSACTION_STATE) on a live connection that
//   heartbeated as its producer group; answering commit delivers it once; unanswered, it
//   is discarded after transactionCheckMax checks (counter in GET_BROKER_RUNTIME_INFO);
// - after a clean stop and kill -9 an open half is checked back with a new producer of the
//   group, and committed halves are not delivered again;
// - under SYNC_FLUSH commits are acknowledged from the group commit without stalling the
//   loop (sends of another client on the same loop stay fast) and survive kill -9.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, startApogee } from '../lib/proc.mjs';
import { RemotingClient } from '../lib/remoting.mjs';
import { decodeRecords, propsString, pullAll } from '../lib/records.mjs';

const HALF = 'RMQ_SYS_TRANS_HALF_TOPIC';
const OP = 'RMQ_SYS_TRANS_OP_HALF_TOPIC';
const FAST = ['--transactionTimeOut=300', '--transactionCheckInterval=300'];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function sendHdr(topic, group, props, queueId = 0) {
    return {
        a: group, b: topic, c: 'TBW102', d: '4', e: String(queueId), f: '4',
        g: String(Date.now()), h: '0',
        i: propsString({ TRAN_MSG: 'true', PGROUP: group, ...props }), k: 'false',
    };
}

const readAll = (cl, topic, queueId, subscription) => pullAll(cl, topic, queueId, subscription);

async function until(pred, ms, what) {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
        if (await pred()) return;
        await sleep(20);
    }
    assert.fail(`timed out waiting for ${what}`);
}

function physOf(msgId) {
    return Number(BigInt(`0x${msgId.slice(-16)}`));
}

// END_TRANSACTION for a send's reply (commitOrRollback: 8 commit, 12 rollback, 0 unknown).
function endTx(cl, group, reply, verdict, extra = {}) {
    return cl.request(37, {
        producerGroup: group, tranStateTableOffset: reply.ext.queueOffset,
        commitLogOffset: String(physOf(reply.ext.msgId)), commitOrRollback: String(verdict),
        fromTransactionCheck: 'false', msgId: reply.ext.transactionId ?? '', transactionId: reply.ext.transactionId ?? '',
        ...extra,
    });
}

async function heartbeat(cl, group, clientID) {
    const body = JSON.stringify({ clientID, producerDataSet: [{ groupName: group }], consumerDataSet: [] });
    const r = await cl.request(34, {}, Buffer.from(body));
    assert.equal(r.code, 0, r.remark);
}

const info = async (cl) => JSON.parse((await cl.request(28, {})).body.toString()).table;

let srv;
let br;
before(async () => {
    const nsPort = await freePort();
    srv = await startApogee('standalone', [...FAST, '--transactionCheckMax=2'], { extraPorts: { namesrvListenPort: nsPort } });
    br = await RemotingClient.connect(srv.port);
});
after(async () => {
    br?.close();
    await srv?.stop();
});

test('a half message is invisible; commit delivers it once, rollback never', async () => {
    const topic = 'TxTopic';
    const group = 'PG_TX_A';
    const uniq = '0A0000010000000000000000000000E1';
    const a = await br.request(310, sendHdr(topic, group, { KEYS: 'ka', TAGS: 'TA', UNIQ_KEY: uniq, color: 'blue' }), Buffer.from('commit me'));
    assert.equal(a.code, 0, a.remark);
    assert.equal(a.ext.queueId, '0', 'the reply names the real queue');
    const b = await br.request(310, sendHdr(topic, group, { KEYS: 'kb' }), Buffer.from('roll me back'));
    assert.equal(b.code, 0, b.remark);
    assert.equal((await readAll(br, topic, 0)).length, 0, 'halves are not in the topic');
    const halves = await readAll(br, HALF, 0);
    const ha = halves.find((h) => h.props.UNIQ_KEY === uniq);
    assert.ok(ha, 'the half is in the half topic');
    assert.equal(ha.props.REAL_TOPIC, topic);
    assert.equal(ha.props.REAL_QID, '0');
    assert.equal(String(ha.queueOffset), a.ext.queueOffset, 'the reply names the half queue offset');

    // Refusals: wrong group, wrong queue offset, nothing at the offset.
    assert.notEqual((await endTx(br, 'PG_OTHER', a, 8)).code, 0);
    assert.notEqual((await endTx(br, group, a, 8, { tranStateTableOffset: '999' })).code, 0);
    assert.notEqual((await endTx(br, group, a, 8, { commitLogOffset: '1' })).code, 0);
    // Unknown: nothing happens.
    assert.equal((await endTx(br, group, a, 0)).code, 0);
    assert.equal((await readAll(br, topic, 0)).length, 0);

    let r = await endTx(br, group, a, 8);
    assert.equal(r.code, 0, r.remark);
    r = await endTx(br, group, b, 12);
    assert.equal(r.code, 0, r.remark);
    // A repeated verdict stores nothing more.
    assert.equal((await endTx(br, group, a, 8)).code, 0);
    assert.equal((await endTx(br, group, b, 8)).code, 0);

    const got = await readAll(br, topic, 0);
    assert.equal(got.length, 1, 'the committed message arrives once, the rolled back one never');
    const [d] = got;
    assert.equal(d.body, 'commit me');
    for (const k of ['UNIQ_KEY', 'KEYS', 'TAGS', 'color', 'TRAN_MSG', 'PGROUP'])
        assert.equal(d.props[k], ha.props[k], k);
    assert.equal((await readAll(br, topic, 0, 'TA')).length, 1, 'the tag hash is the tag\'s');
    const ops = await readAll(br, OP, 0);
    assert.deepEqual(ops.map((o) => o.body).sort(), [a.ext.queueOffset, b.ext.queueOffset].sort());
    for (const o of ops) assert.equal(o.props.TAGS, 'd');
    const t = await info(br);
    assert.equal(t.transactionCommitted, '1');
    assert.equal(t.transactionRolledBack, '1');
});

test('an open half is checked back on a live producer connection; its commit delivers once', async () => {
    const topic = 'TxCheck';
    const group = 'PG_TX_CHECK';
    const prod = await RemotingClient.connect(srv.port);
    const other = await RemotingClient.connect(srv.port);
    try {
        await heartbeat(other, 'PG_SOMEONE_ELSE', 'other@1');
        await heartbeat(prod, group, 'prod@1');
        const checks = [];
        const foreign = [];
        prod.onRequest = (cmd) => checks.push(cmd);
        other.onRequest = (cmd) => foreign.push(cmd);
        const uniq = '0A0000010000000000000000000000E2';
        const s = await prod.request(310, sendHdr(topic, group, { UNIQ_KEY: uniq, KEYS: 'kc' }), Buffer.from('checked'));
        assert.equal(s.code, 0, s.remark);
        await until(() => checks.length > 0, 5000, 'CHECK_TRANSACTION_STATE');
        const c = checks[0];
        assert.equal(c.code, 39);
        assert.ok(c.flag & 2, 'oneway');
        assert.equal(c.ext.msgId, uniq);
        assert.equal(c.ext.transactionId, uniq);
        const [m] = decodeRecords(c.body);
        assert.equal(m.topic, topic, 'the body names the real topic');
        assert.equal(m.body, 'checked');
        assert.equal(m.props.UNIQ_KEY, uniq);
        assert.equal(m.props.TRANSACTION_CHECK_TIMES, '1');
        assert.equal(String(m.physOffset), c.ext.commitLogOffset);
        assert.equal(String(m.queueOffset), c.ext.tranStateTableOffset);
        assert.equal(foreign.length, 0, 'no check goes to another group');
        assert.equal((await readAll(prod, topic, 0)).length, 0);
        // Answer as the Java client does: oneway, fromTransactionCheck.
        await prod.oneway(37, {
            producerGroup: group, tranStateTableOffset: c.ext.tranStateTableOffset,
            commitLogOffset: c.ext.commitLogOffset, commitOrRollback: '8', fromTransactionCheck: 'true',
            msgId: uniq, transactionId: uniq,
        });
        await until(async () => (await readAll(br, topic, 0)).length === 1, 3000, 'the commit');
        // The original's own late commit changes nothing, and no more checks come.
        assert.equal((await endTx(prod, group, s, 8)).code, 0);
        const n = checks.length;
        await sleep(1000);
        assert.equal(checks.length, n, 'no check after the commit');
        assert.equal((await readAll(br, topic, 0)).length, 1);
    } finally {
        prod.close();
        other.close();
    }
});

test('an unanswered half is discarded after transactionCheckMax checks', async () => {
    const topic = 'TxDiscard';
    const group = 'PG_TX_DISCARD';
    const prod = await RemotingClient.connect(srv.port);
    try {
        await heartbeat(prod, group, 'prod@2');
        const checks = [];
        prod.onRequest = (cmd) => checks.push(cmd);
        const before = Number((await info(br)).transactionDiscarded);
        const s = await prod.request(310, sendHdr(topic, group, { KEYS: 'kd' }), Buffer.from('lost'));
        assert.equal(s.code, 0, s.remark);
        await until(async () => Number((await info(br)).transactionDiscarded) === before + 1, 8000, 'the discard');
        assert.equal(checks.length, 2, 'checked transactionCheckMax (2) times');
        await srv.waitOutput(/checked 2 times \(transactionCheckMax\) without an answer; discarded/);
        // A commit after the discard still counts (the half record is there), once.
        assert.equal((await readAll(br, topic, 0)).length, 0);
    } finally {
        prod.close();
    }
});

for (const [signal, flush] of [['SIGTERM', 'ASYNC_FLUSH'], ['SIGKILL', 'ASYNC_FLUSH'], ['SIGKILL', 'SYNC_FLUSH']]) {
    test(`after a ${signal} stop (${flush}) an open half is checked back with a new producer; committed ones stay delivered once`, async () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-txn-'));
        const nsPort = await freePort();
        const port = await freePort();
        const opts = { dir, keepDir: true, port, extraPorts: { namesrvListenPort: nsPort } };
        // A long first timeout so nothing is checked before the stop.
        const args = ['--transactionTimeOut=3000', '--transactionCheckInterval=300', `--flushDiskType=${flush}`];
        let s = await startApogee('standalone', args, opts);
        let cl = await RemotingClient.connect(s.port);
        const topic = `TxRestart${signal}${flush}`;
        const group = `PG_TX_R_${signal}_${flush}`;
        try {
            await heartbeat(cl, group, 'old@1');
            // No half is checked back before transactionTimeOut has passed since it was stored.
            const early = [];
            cl.onRequest = (cmd) => {
                if (cmd.code === 39) early.push({ at: Date.now(), m: decodeRecords(cmd.body)[0] });
            };
            const sent = [];
            for (let i = 0; i < 6; i++) {
                const r = await cl.request(310, sendHdr(topic, group, { KEYS: `m${i}` }), Buffer.from(`m${i}`));
                assert.equal(r.code, 0, r.remark);
                sent.push(r);
            }
            // m0, m1 committed, m2 rolled back, m3..m5 open.
            for (const [i, v] of [[0, 8], [1, 8], [2, 12]])
                assert.equal((await endTx(cl, group, sent[i], v)).code, 0);
            assert.equal((await readAll(cl, topic, 0)).length, 2);
            await sleep(1500); // flushed (flushIntervalCommitLog) before a kill -9
            for (const e of early)
                assert.ok(e.at - e.m.storeTs >= 2900, `${e.m.body} checked ${e.at - e.m.storeTs} ms after it was stored`);
            cl.close();
            await s.stop(signal);
            s = await startApogee('standalone', args, opts);
            cl = await RemotingClient.connect(s.port);
            await heartbeat(cl, group, 'new@1');
            const checks = [];
            cl.onRequest = (cmd) => {
                if (cmd.code !== 39) return;
                checks.push(cmd);
                const [m] = decodeRecords(cmd.body);
                cl.oneway(37, {
                    producerGroup: group, tranStateTableOffset: cmd.ext.tranStateTableOffset,
                    commitLogOffset: cmd.ext.commitLogOffset,
                    commitOrRollback: m.body === 'm5' ? '12' : '8', fromTransactionCheck: 'true',
                    msgId: cmd.ext.msgId, transactionId: cmd.ext.transactionId,
                });
            };
            await until(async () => (await readAll(cl, topic, 0)).length === 4, 10000, 'the checked-back commits');
            await sleep(1500);
            const bodies = (await readAll(cl, topic, 0)).map((m) => m.body).sort();
            assert.deepEqual(bodies, ['m0', 'm1', 'm3', 'm4']);
            const asked = new Set(checks.map((c) => decodeRecords(c.body)[0].body));
            assert.deepEqual([...asked].sort(), ['m3', 'm4', 'm5'], 'only the open halves are checked');
        } finally {
            cl.close();
            await s.stop();
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
}

// Under SYNC_FLUSH an END_TRANSACTION commit is answered from the group commit's
// acknowledgement, as a sync send is: the loop thread does not wait for the disk. One
// event loop serves every connection here, so a commit that waited for the fdatasync on
// the loop would hold up the plain sends of another client behind every queued commit.
test('SYNC_FLUSH: concurrent commits do not stall sends of another client; acknowledged commits survive kill -9', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-txn-sync-'));
    const nsPort = await freePort();
    const port = await freePort();
    const opts = { dir, keepDir: true, port, extraPorts: { namesrvListenPort: nsPort } };
    const args = ['--flushDiskType=SYNC_FLUSH', '--serverSelectorThreads=1', '--transactionTimeOut=60000'];
    let s = await startApogee('standalone', args, opts);
    const topic = 'TxSyncFlush';
    const plainTopic = 'TxSyncPlain';
    const group = 'PG_TX_SYNC';
    const producers = await Promise.all(Array.from({ length: 6 }, () => RemotingClient.connect(s.port)));
    const other = await RemotingClient.connect(s.port);
    const acked = new Set();
    let stop = false;
    let seq = 0;
    // Each producer keeps 24 transactions going: half send, then commit.
    const txLoop = async (cl) => {
        while (!stop) {
            const wave = await Promise.all(Array.from({ length: 24 }, async () => {
                const body = `tx${seq++}`;
                const r = await cl.request(310, sendHdr(topic, group, { KEYS: body }), Buffer.from(body));
                assert.equal(r.code, 0, r.remark);
                return [body, r];
            }));
            await Promise.all(wave.map(async ([body, r]) => {
                const e = await endTx(cl, group, r, 8);
                if (e.code === 0) acked.add(body);
            }));
        }
    };
    const lat = [];
    const sendLoop = async () => {
        for (let i = 0; !stop; i++) {
            const hdr = { ...sendHdr(plainTopic, 'PG_PLAIN', {}), i: propsString({ KEYS: `p${i}` }) };
            const t0 = process.hrtime.bigint();
            const r = await other.request(310, hdr, Buffer.from(`p${i}`));
            lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
            assert.equal(r.code, 0, r.remark);
            await sleep(5);
        }
    };
    try {
        // Warm up (topic creation), then measure under load.
        await endTx(producers[0], group, await producers[0].request(310, sendHdr(topic, group, {}), Buffer.from('w')), 8);
        await other.request(310, sendHdr(plainTopic, 'PG_PLAIN', {}), Buffer.from('w'));
        const running = [...producers.map(txLoop), sendLoop()];
        await sleep(3000);
        const committedBefore = acked.size;
        stop = true;
        await Promise.all(running);
        lat.sort((a, b) => a - b);
        const p50 = lat[Math.floor(lat.length / 2)];
        assert.ok(committedBefore >= 300, `commits made progress (${committedBefore} in 3 s)`);
        assert.ok(lat.length >= 20, `the other client's sends made progress (${lat.length})`);
        assert.ok(p50 < 60, `sends of another client keep a low latency while commits flow (p50 ${p50.toFixed(1)} ms, ${committedBefore} commits)`);

        // A last wave of commits, killed in flight: what was acknowledged must be readable.
        stop = false;
        const last = producers.map(txLoop).map((p) => p.catch(() => {}));
        await sleep(300);
        stop = true;
        await s.stop('SIGKILL');
        await Promise.all(last);
        for (const cl of producers) cl.close();
        other.close();
        s = await startApogee('standalone', args, opts);
        const cl = await RemotingClient.connect(s.port);
        try {
            const bodies = new Set((await readAll(cl, topic, 0)).map((m) => m.body));
            const missing = [...acked].filter((b) => !bodies.has(b));
            assert.deepEqual(missing, [], `every acknowledged commit (${acked.size}) is readable after kill -9`);
        } finally {
            cl.close();
        }
    } finally {
        for (const cl of producers) cl.close();
        other.close();
        await s.stop();
        fs.rmSync(dir, { recursive: true, force: true });
    }
});
