// Pop consumption over remoting (POP_MESSAGE 200050, ACK_MESSAGE 200051,
// CHANGE_MESSAGE_INVISIBLETIME 200053, NOTIFICATION 200054), driven with raw frames the
// way a RocketMQ 5 client sends them: receipt handles (extraInfo) are built from the pop
// answer's popTime / invisibleTime / reviveQid / startOffsetInfo as the Java client
// builds its POP_CK property.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, startApogee } from '../lib/proc.mjs';
import { RemotingClient } from '../lib/remoting.mjs';
import { decodeRecords } from '../lib/records.mjs';

const POP = 200050, ACK = 200051, CHANGE = 200053, NOTIFY = 200054;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function sendHdr(topic, queueId, tags = '') {
    return {
        a: 'PG_POP', b: topic, c: 'TBW102', d: '4', e: String(queueId), f: '0',
        g: String(Date.now()), h: '0', i: tags ? `TAGS\u0001${tags}\u0002` : '', k: 'false',
    };
}

let srv;
let br;
let nsPort;
async function boot(dir) {
    srv = await startApogee('standalone', [], {
        extraPorts: { namesrvListenPort: nsPort }, dir, keepDir: true, anyExit: true,
    });
    br = await RemotingClient.connect(srv.port);
}
before(async () => {
    nsPort = await freePort();
    await boot();
});
after(async () => {
    br?.close();
    await srv?.stop();
    if (srv) (await import('node:fs')).rmSync(srv.dir, { recursive: true, force: true });
});

async function topic(name, queues = 1) {
    const r = await br.request(17, { topic: name, readQueueNums: String(queues), writeQueueNums: String(queues), perm: '6' });
    assert.equal(r.code, 0, r.remark);
}
async function group(name, extra = {}) {
    const r = await br.request(200, {}, Buffer.from(JSON.stringify({ groupName: name, consumeEnable: true, ...extra })));
    assert.equal(r.code, 0, r.remark);
}
async function send(t, body, queueId = 0, tags = '') {
    const r = await br.request(310, sendHdr(t, queueId, tags), Buffer.from(body));
    assert.equal(r.code, 0, r.remark);
}
async function pop(g, t, { queueId = -1, max = 32, invisible = 60000, poll = 0, order = false, exp = '*' } = {}) {
    const r = await br.request(POP, {
        consumerGroup: g, topic: t, queueId: String(queueId), maxMsgNums: String(max),
        invisibleTime: String(invisible), pollTime: String(poll), bornTime: String(Date.now()),
        initMode: '0', expType: 'TAG', exp, order: String(order),
    }, null, { timeoutMs: poll + 5000 });
    if (r.code !== 0) return { code: r.code, msgs: [], ext: r.ext };
    const start = Object.fromEntries(r.ext.startOffsetInfo.split(';').map((s) => {
        const [, q, o] = s.split(' ');
        return [q, o];
    }));
    const msgs = decodeRecords(r.body).map((m) => ({
        ...m,
        handle: `${start[m.queueId]} ${r.ext.popTime} ${r.ext.invisibleTime} ${r.ext.reviveQid} 0 broker-a ${m.queueId} ${m.queueOffset}`,
    }));
    return { code: 0, msgs, ext: r.ext };
}
async function ack(g, m) {
    return br.request(ACK, { consumerGroup: g, topic: m.topic, queueId: String(m.queueId), extraInfo: m.handle, offset: String(m.queueOffset) });
}
async function change(g, m, invisible) {
    return br.request(CHANGE, {
        consumerGroup: g, topic: m.topic, queueId: String(m.queueId), extraInfo: m.handle,
        offset: String(m.queueOffset), invisibleTime: String(invisible),
    });
}
function withHandle(m, r) {
    const f = m.handle.split(' ');
    f[1] = r.ext.popTime;
    f[2] = r.ext.invisibleTime;
    return { ...m, handle: f.join(' ') };
}

test('pop hands each message once while invisible; ack removes it for good', async () => {
    await topic('PopA', 2);
    for (let i = 0; i < 10; i++) await send('PopA', `a${i}`, i % 2);
    const first = await pop('CG_A', 'PopA', { max: 32 });
    assert.equal(first.code, 0);
    assert.equal(first.msgs.length, 10);
    assert.deepEqual(first.msgs.map((m) => m.body).sort(), [...Array(10).keys()].map((i) => `a${i}`).sort());
    assert.ok(first.msgs.every((m) => m.reconsumeTimes === 0));
    // Nothing more while they are invisible (no long polling: POLLING_TIMEOUT at once).
    const again = await pop('CG_A', 'PopA');
    assert.equal(again.code, 210);
    for (const m of first.msgs) assert.equal((await ack('CG_A', m)).code, 0);
    // Another group reads the same messages: groups are independent.
    const other = await pop('CG_A2', 'PopA');
    assert.equal(other.msgs.length, 10);
    // A push/pull consumer of a third group sees every message too.
    const pulled = await br.request(11, {
        consumerGroup: 'CG_PULL', topic: 'PopA', queueId: '0', queueOffset: '0', maxMsgNums: '32',
        sysFlag: '0', commitOffset: '0', suspendTimeoutMillis: '0', subscription: '*', subVersion: '0', expressionType: 'TAG',
    });
    assert.equal(decodeRecords(pulled.body).length, 5);
    // The acked group's consumer offsets moved past what it acknowledged.
    const q = await br.request(14, { consumerGroup: 'CG_A', topic: 'PopA', queueId: '0' });
    assert.equal(q.code, 0);
    assert.equal(Number(q.ext.offset), 5);
});

test('an unacknowledged message comes back after its invisible time, attempts counted', async () => {
    await topic('PopB');
    await send('PopB', 'b0');
    const t0 = Date.now();
    const first = await pop('CG_B', 'PopB', { invisible: 1000 });
    assert.equal(first.msgs.length, 1);
    // Long polling: parked until the revive makes it due again (within ~0.1 s of the deadline).
    const second = await pop('CG_B', 'PopB', { invisible: 1000, poll: 5000 });
    const waited = Date.now() - t0;
    assert.equal(second.msgs.length, 1);
    assert.equal(second.msgs[0].body, 'b0');
    assert.equal(second.msgs[0].reconsumeTimes, 1);
    assert.ok(waited >= 950 && waited < 2000, `redelivered after ${waited} ms`);
    // The old handle no longer acknowledges anything; the new one does.
    assert.equal((await ack('CG_B', first.msgs[0])).code, 0);
    assert.equal((await ack('CG_B', second.msgs[0])).code, 0);
    await sleep(1300);
    assert.equal((await pop('CG_B', 'PopB')).code, 210);
});

test('redeliveries back off: none after the first lapse, 1 s after the second', async () => {
    await topic('PopBO');
    await send('PopBO', 'bo');
    const first = await pop('CG_BO', 'PopBO', { invisible: 1000 });
    assert.equal(first.msgs.length, 1);
    const second = await pop('CG_BO', 'PopBO', { invisible: 1000, poll: 5000 });
    assert.equal(second.msgs.length, 1);
    assert.equal(second.msgs[0].reconsumeTimes, 1);
    // Its invisible time ends 1 s after this pop; then it waits 2^(2-1) - 1 = 1 s more.
    const t1 = Date.now();
    const third = await pop('CG_BO', 'PopBO', { invisible: 1000, poll: 8000 });
    const waited = Date.now() - t1;
    assert.equal(third.msgs.length, 1);
    assert.equal(third.msgs[0].reconsumeTimes, 2);
    assert.ok(waited >= 1900 && waited < 3500, `third delivery ${waited} ms after the second`);
    assert.equal((await ack('CG_BO', third.msgs[0])).code, 0);
});

test('change invisible time extends a delivery and gives a new handle', async () => {
    await topic('PopC');
    await send('PopC', 'c0');
    const first = await pop('CG_C', 'PopC', { invisible: 1000 });
    const m = first.msgs[0];
    const r = await change('CG_C', m, 4000);
    assert.equal(r.code, 0, r.remark);
    assert.ok(Number(r.ext.popTime) > Number(first.ext.popTime));
    assert.equal(r.ext.invisibleTime, '4000');
    await sleep(1500);
    assert.equal((await pop('CG_C', 'PopC')).code, 210, 'still invisible after the first deadline');
    // The old handle is stale: a change with it is refused.
    assert.equal((await change('CG_C', m, 1000)).code, 208);
    assert.equal((await ack('CG_C', withHandle(m, r))).code, 0);
    await sleep(3000);
    assert.equal((await pop('CG_C', 'PopC')).code, 210, 'acknowledged with the new handle');
});

test('after retryMaxTimes + 1 deliveries the message goes to %DLQ%<group>', async () => {
    await topic('PopD');
    await group('CG_D', { retryMaxTimes: 1 });
    await send('PopD', 'd0');
    const one = await pop('CG_D', 'PopD', { invisible: 1000 });
    assert.equal(one.msgs.length, 1);
    const two = await pop('CG_D', 'PopD', { invisible: 1000, poll: 5000 });
    assert.equal(two.msgs.length, 1);
    assert.equal(two.msgs[0].reconsumeTimes, 1);
    // Not handed a third time: moved to the DLQ once the second delivery expires.
    const three = await pop('CG_D', 'PopD', { invisible: 1000, poll: 3000 });
    assert.equal(three.code, 210);
    const d = await br.request(11, {
        consumerGroup: 'CG_DLQ_READ', topic: '%DLQ%CG_D', queueId: '0', queueOffset: '0', maxMsgNums: '32',
        sysFlag: '0', commitOffset: '0', suspendTimeoutMillis: '0', subscription: '*', subVersion: '0', expressionType: 'TAG',
    });
    assert.equal(d.code, 0, d.remark);
    const recs = decodeRecords(d.body);
    assert.equal(recs.length, 1);
    assert.equal(recs[0].body, 'd0');
    assert.equal(recs[0].props.RETRY_TOPIC, 'PopD');
});

test('FIFO pop holds a queue while any of its messages is in flight', async () => {
    await topic('PopF');
    for (let i = 0; i < 4; i++) await send('PopF', `f${i}`);
    const a = await pop('CG_F', 'PopF', { max: 2, order: true, invisible: 1000 });
    assert.deepEqual(a.msgs.map((m) => m.body), ['f0', 'f1']);
    assert.equal((await pop('CG_F', 'PopF', { max: 2, order: true })).code, 210, 'queue held');
    // Ack one of two: still held.
    assert.equal((await ack('CG_F', a.msgs[0])).code, 0);
    assert.equal((await pop('CG_F', 'PopF', { max: 2, order: true })).code, 210, 'queue held');
    // The other one expires and comes back first, in order, before f2.
    const b = await pop('CG_F', 'PopF', { max: 2, order: true, poll: 4000 });
    assert.deepEqual(b.msgs.map((m) => m.body), ['f1', 'f2']);
    assert.equal(b.msgs[0].reconsumeTimes, 1);
});

test('tag filter, long polling on arrival and NOTIFICATION', async () => {
    await topic('PopT');
    await send('PopT', 'red', 0, 'red');
    await send('PopT', 'blue', 0, 'blue');
    const r = await pop('CG_T', 'PopT', { exp: 'blue' });
    assert.deepEqual(r.msgs.map((m) => m.body), ['blue']);
    const n0 = await br.request(NOTIFY, { consumerGroup: 'CG_T', topic: 'PopT', queueId: '-1', pollTime: '0', bornTime: String(Date.now()) });
    assert.equal(n0.ext.hasMsg, 'false');
    const t0 = Date.now();
    const parked = pop('CG_T', 'PopT', { exp: 'blue', poll: 8000 });
    await sleep(300);
    await send('PopT', 'blue2', 0, 'blue');
    const got = await parked;
    assert.deepEqual(got.msgs.map((m) => m.body), ['blue2']);
    assert.ok(Date.now() - t0 < 3000);
    await send('PopT', 'blue3', 0, 'blue');
    const n1 = await br.request(NOTIFY, { consumerGroup: 'CG_T', topic: 'PopT', queueId: '-1', pollTime: '1000', bornTime: String(Date.now()) });
    assert.equal(n1.ext.hasMsg, 'true');
});

test('in-flight state survives kill -9 and a clean restart', async () => {
    await topic('PopR');
    for (let i = 0; i < 3; i++) await send('PopR', `r${i}`);
    const a = await pop('CG_R', 'PopR', { max: 2, invisible: 60000 });
    assert.deepEqual(a.msgs.map((m) => m.body), ['r0', 'r1']);
    assert.equal((await ack('CG_R', a.msgs[0])).code, 0);
    const dir = srv.dir;
    br.close();
    await srv.stop('SIGKILL');
    await boot(dir);
    // r1 is still invisible, r0 acknowledged: only r2 is handed.
    let b = await pop('CG_R', 'PopR', { invisible: 1000 });
    assert.deepEqual(b.msgs.map((m) => m.body), ['r2']);
    // The handle from before the crash still acknowledges r1.
    assert.equal((await ack('CG_R', a.msgs[1])).code, 0);
    br.close();
    await srv.stop();
    await boot(dir);
    // r2 was not acknowledged: it comes back once its second expires, r1 never.
    b = await pop('CG_R', 'PopR', { invisible: 60000, poll: 4000 });
    assert.deepEqual(b.msgs.map((m) => m.body), ['r2']);
    assert.equal(b.msgs[0].reconsumeTimes, 1);
});

test('redeliveries of every queue come before new messages, each queue listed once', async () => {
    await topic('PopQ', 2);
    for (let i = 0; i < 40; i++) await send('PopQ', `q${i}`, i % 2);
    // Two from queue 1, left unacknowledged.
    const a = await pop('CG_Q', 'PopQ', { queueId: 1, max: 2, invisible: 1000 });
    assert.deepEqual(a.msgs.map((m) => m.body), ['q1', 'q3']);
    await sleep(1300);
    // Queue 0 has 20 new messages, queue 1 two due again and 18 new: a pop of 8 hands the
    // two due ones whichever queue it starts with.
    for (let round = 0; round < 2; round++) {
        const b = await pop('CG_Q', 'PopQ', { max: 8, invisible: 1000 });
        assert.equal(b.msgs.length, 8);
        const again = b.msgs.filter((m) => m.reconsumeTimes > 0).map((m) => m.body).sort();
        assert.deepEqual(again, round === 0 ? ['q1', 'q3'] : []);
        const ids = b.ext.msgOffsetInfo.split(';').map((s) => s.split(' ')[1]);
        assert.equal(new Set(ids).size, ids.length, `each queue once: ${b.ext.msgOffsetInfo}`);
        for (const part of b.ext.msgOffsetInfo.split(';')) {
            const offs = part.split(' ')[2].split(',').map(Number);
            assert.deepEqual(offs, [...offs].sort((x, y) => x - y));
        }
        if (round === 0) for (const m of b.msgs) assert.equal((await ack('CG_Q', m)).code, 0);
    }
});

test('SQL92 pop needs enablePropertyFilter and keeps only matching messages', async () => {
    await topic('PopS');
    const hdr = (a) => ({ ...sendHdr('PopS', 0), i: `a\u0001${a}\u0002` });
    for (const a of [1, 2, 3, 2]) {
        const r = await br.request(310, hdr(a), Buffer.from(`s${a}`));
        assert.equal(r.code, 0, r.remark);
    }
    const req = (exp) => br.request(POP, {
        consumerGroup: 'CG_S', topic: 'PopS', queueId: '-1', maxMsgNums: '32', invisibleTime: '60000',
        pollTime: '0', bornTime: String(Date.now()), initMode: '0', expType: 'SQL92', exp,
    });
    let r = await req('a = 2');
    assert.equal(r.code, 1);
    assert.match(r.remark, /enablePropertyFilter=true/);
    assert.equal((await br.request(25, {}, Buffer.from('enablePropertyFilter=true\n'))).code, 0);
    r = await req('a = 2');
    assert.equal(r.code, 0, r.remark);
    assert.deepEqual(decodeRecords(r.body).map((m) => m.body), ['s2', 's2']);
    assert.equal((await req('a = 2')).code, 210, 'the others were skipped, not left behind');
    assert.equal((await req('a = = 2')).code, 23); // SUBSCRIPTION_PARSE_FAILED
});
