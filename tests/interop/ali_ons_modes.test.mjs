// Interop (ali-ons 3.12.0): consumption modes and retries.
//
// Broadcasting: ali-ons selects it with the option `isBroadcast: true` (messageModel
// BROADCASTING); such a consumer takes every queue, keeps its offsets locally
// (LocalMemoryOffsetStore) and does not subscribe to %RETRY%<group>.
//
// Retries: a clustering consumer whose handler throws hands the message back with
// CONSUMER_SEND_MSG_BACK (delayLevel 0, its maxReconsumeTimes); it subscribes to
// %RETRY%<group> itself and gets the copy again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { HandlerRetry, onsHarness, ons, until, sleep } from './ons.mjs';

const h = onsHarness();

before(async () => {
    // Retries wait at level 3 + reconsumeTimes: short levels keep the suite fast.
    await h.start(['--messageDelayLevel=1s 1s 1s 1s 1s 1s']);
});

after(async () => {
    try {
        await h.stop();
    } finally {
        // ali-ons keeps timers alive; exit with the runner's verdict.
        setImmediate(() => process.exit());
    }
});

test('one broadcasting consumer receives everything; two in one group each receive everything',
    async () => {
        const topic = 'BroadcastTopic';
        await h.createTopic(topic, 4);
        const p = await h.newProducer('PG_BCAST', { instanceName: 'p-bcast' });
        const N = 200;
        const solo = new Map();
        const pair = [new Map(), new Map()];
        const count = (m, b) => m.set(b, (m.get(b) ?? 0) + 1);
        h.newConsumer('CG_BCAST_SOLO', 'bcast-solo', { isBroadcast: true })
            .subscribe(topic, '*', async (msg) => { count(solo, msg.body.toString()); });
        for (const i of [0, 1])
            h.newConsumer('CG_BCAST_PAIR', `bcast-pair-${i}`, { isBroadcast: true })
                .subscribe(topic, '*', async (msg) => { count(pair[i], msg.body.toString()); });
        await sleep(1500); // every member has rebalanced: each one holds all 4 queues
        for (let i = 0; i < N; i++) {
            const r = await p.send(new ons.Message(topic, 'B', Buffer.from(`b${i}`)));
            assert.equal(r.sendStatus, 'SEND_OK');
        }
        const full = (m) => m.size === N;
        await until(() => full(solo) && pair.every(full), 20000, 'every consumer to get all');
        await sleep(500);
        for (const m of [solo, ...pair]) {
            assert.equal(m.size, N);
            for (let i = 0; i < N; i++) assert.equal(m.get(`b${i}`), 1, `b${i} once`);
        }
    });

test('a failed message comes back through %RETRY% (send-back), then goes to the DLQ', async () => {
    const topic = 'RetryTopic';
    const group = 'CG_RETRY';
    await h.createTopic(topic, 2);
    const p = await h.newProducer('PG_RETRY', { instanceName: 'p-retry' });
    const seen = new Map(); // body -> [{reconsumeTimes, topic, originMessageId, retryTopic}]
    const c = h.newConsumer(group, 'retry-1', { maxReconsumeTimes: 2 });
    c.subscribe(topic, '*', async (msg) => {
        const body = msg.body.toString();
        if (!seen.has(body)) seen.set(body, []);
        seen.get(body).push({
            reconsumeTimes: msg.reconsumeTimes, topic: msg.topic,
            origin: msg.originMessageId, key: msg.keys,
        });
        if (body === 'fail-once' && seen.get(body).length === 1) throw new HandlerRetry('fail once');
        if (body === 'fail-always') throw new HandlerRetry('fail always');
    });
    await sleep(1500);
    const ids = {};
    for (const body of ['ok', 'fail-once', 'fail-always']) {
        const m = new ons.Message(topic, 'R', Buffer.from(body));
        m.keys = [`k-${body}`];
        const r = await p.send(m);
        assert.equal(r.sendStatus, 'SEND_OK');
        ids[body] = r.msgId;
    }
    await until(() => seen.get('fail-once')?.length === 2 && seen.get('fail-always')?.length === 3,
        20000, 'the retries');
    await sleep(1000);
    assert.equal(seen.get('ok').length, 1);
    // The copy keeps the original topic (RETRY_TOPIC), key and first msgId
    // (ORIGIN_MESSAGE_ID); reconsumeTimes counts up. (If CONSUMER_SEND_MSG_BACK failed,
    // ali-ons would resend the copy itself; the DLQ below only exists through the broker.)
    const again = seen.get('fail-once');
    assert.equal(again.length, 2);
    assert.deepEqual(again.map((s) => s.reconsumeTimes), [0, 1]);
    assert.equal(again[1].topic, topic);
    assert.equal(again[1].origin, ids['fail-once']);
    assert.equal(again[1].key, 'k-fail-once');
    // maxReconsumeTimes 2: delivered with reconsumeTimes 0, 1, 2, then into %DLQ%CG_RETRY.
    assert.deepEqual(seen.get('fail-always').map((s) => s.reconsumeTimes), [0, 1, 2]);
    const all = JSON.parse((await h.admin.request(21, {})).body.toString()).topicConfigTable;
    const dlq = all[`%DLQ%${group}`];
    assert.ok(dlq, 'the DLQ topic was created');
    assert.equal(dlq.perm, 6, 'DLQ topics are readable and writable, as in RocketMQ 4.9 and 5.x');
    const max = await h.admin.request(30, { topic: `%DLQ%${group}`, queueId: '0' });
    assert.equal(max.code, 0, max.remark);
    assert.equal(max.ext.offset, '1');
    // ... and a consumer of the DLQ gets the dead message.
    const dead = [];
    const d = h.newConsumer('CG_DLQ_READER', 'dlq-1');
    d.subscribe(`%DLQ%${group}`, '*', async (msg) => { dead.push(msg.body.toString()); });
    await until(() => dead.length === 1, 20000, 'the DLQ consumer');
    assert.deepEqual(dead, ['fail-always']);
    await d.close();
    await c.close();
});

test('GET_BROKER_RUNTIME_INFO answers a KVTable admin tools can read', async () => {
    const r = await h.admin.request(28, {});
    assert.equal(r.code, 0, r.remark);
    const t = JSON.parse(r.body.toString()).table;
    for (const k of ['brokerVersionDesc', 'brokerVersion', 'msgPutTotalTodayNow',
        'msgGetTotalTodayNow', 'msgPutTotalTodayMorning', 'msgPutTotalYesterdayMorning',
        'commitLogMinOffset', 'commitLogMaxOffset', 'bootTimestamp', 'runtime', 'putTps',
        'getTransferredTps', 'commitLogDiskRatio', 'commitLogDirCapacity'])
        assert.equal(typeof t[k], 'string', `${k} present`);
    assert.match(t.brokerVersionDesc, /^V\d+_\d+_\d+$/);
    assert.ok(Number(t.brokerVersion) > 0);
    // The earlier tests stored 200 + 3 messages plus 3 retry/DLQ copies and delivered more.
    assert.ok(Number(t.msgPutTotalTodayNow) >= 206, t.msgPutTotalTodayNow);
    assert.ok(Number(t.msgGetTotalTodayNow) >= 600, t.msgGetTotalTodayNow);
    assert.ok(Number(t.commitLogMaxOffset) > Number(t.commitLogMinOffset));
    const boot = Number(t.bootTimestamp);
    assert.ok(boot > Date.now() - 120000 && boot <= Date.now(), t.bootTimestamp);
    assert.match(t.runtime, /^\[ 0 days, 0 hours, \d+ minutes, \d+ seconds \]$/);
    const tps = t.putTps.split(' ').map(Number);
    assert.equal(tps.length, 3);
    assert.ok(tps[2] > 0, `putTps ${t.putTps}`);
});
