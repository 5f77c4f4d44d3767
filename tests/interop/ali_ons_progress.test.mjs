// Interop (ali-ons 3.12.0): consumer progress as `mqadmin consumerProgress` and
// `mqadmin topicStatus` read it. A group consumes with ali-ons; GET_CONSUME_STATS (208)
// then shows, per queue, the queue's max offset (brokerOffset), the committed offset
// (consumerOffset, lag 0) and the store time of the last consumed message; after more
// sends with the consumer closed the lag is exactly those sends. GET_TOPIC_STATS_INFO (202)
// shows each queue's min and max offset and last store time. Both bodies use fastjson's
// MessageQueue-object map keys, which tests/lib/fastjson.mjs reads.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { parseFastjson } from '../lib/fastjson.mjs';
import { onsHarness, ons, until } from './ons.mjs';

const h = onsHarness();
const TOPIC = 'T_PROGRESS';
const GROUP = 'CG_PROGRESS';
const QUEUES = 4;

before(async () => {
    await h.start();
});

after(async () => {
    try {
        await h.stop();
    } finally {
        setImmediate(() => process.exit());
    }
});

async function consumeStats(group, topic) {
    const ext = { consumerGroup: group };
    if (topic) ext.topic = topic;
    const r = await h.admin.request(208, ext);
    assert.equal(r.code, 0, r.remark);
    const text = r.body.toString('utf8');
    const v = parseFastjson(text);
    const rows = (Array.isArray(v.offsetTable) ? v.offsetTable : []).map(([mq, w]) => ({ ...mq, ...w }));
    rows.sort((a, b) => a.topic.localeCompare(b.topic) || a.queueId - b.queueId);
    return { text, tps: v.consumeTps, rows };
}

const lag = (rows) => rows.reduce((s, r) => s + r.brokerOffset - r.consumerOffset, 0);

async function sendN(p, from, to) {
    for (let i = from; i < to; i++) {
        const r = await p.send(new ons.Message(TOPIC, 'T', Buffer.from(`m${i}`)));
        assert.equal(r.sendStatus, 'SEND_OK');
    }
}

test('GET_CONSUME_STATS: lag 0 after consuming, lag = new sends after', async () => {
    await h.createTopic(TOPIC, QUEUES);
    const t0 = Date.now();
    const p = await h.newProducer('PG_PROGRESS', { heartbeatBrokerInterval: 500 });
    await sendN(p, 0, 20);

    // Before anyone consumed: no offsets, so nothing to show for the group.
    let s = await consumeStats(GROUP, null);
    assert.deepEqual(s.rows, []);

    const got = new Set();
    const c = h.newConsumer(GROUP, 'progress1', { persistConsumerOffsetInterval: 300 });
    c.subscribe(TOPIC, '*', async (msg) => { got.add(msg.body.toString()); });
    await until(() => got.size === 20, 20000, () => `20 messages (got ${got.size})`);
    await until(async () => {
        s = await consumeStats(GROUP, TOPIC);
        return s.rows.length === QUEUES && lag(s.rows) === 0;
    }, 10000, () => `lag 0 (${JSON.stringify(s.rows)})`);

    // The body is fastjson's form: consumeTps first, MessageQueue objects as keys.
    assert.match(s.text, /^\{"consumeTps":[0-9.]+,"offsetTable":\{\{"brokerName":"[^"]+","queueId":\d+,"topic":"T_PROGRESS"\}:\{"brokerOffset":/);
    assert.ok(s.tps > 0, `consumeTps ${s.tps} after 20 messages`);
    let total = 0;
    for (const r of s.rows) {
        const max = await h.admin.request(30, { topic: TOPIC, queueId: String(r.queueId) });
        assert.equal(r.brokerOffset, Number(max.ext.offset), `queue ${r.queueId} broker offset`);
        assert.equal(r.consumerOffset, r.brokerOffset);
        total += r.brokerOffset;
        if (r.brokerOffset > 0)
            assert.ok(r.lastTimestamp >= t0 - 1000 && r.lastTimestamp <= Date.now(),
                `queue ${r.queueId} lastTimestamp ${r.lastTimestamp}`);
        else
            assert.equal(r.lastTimestamp, 0);
    }
    assert.equal(total, 20);

    // Without a topic the group's topics are listed: the consumer subscribed to its
    // retry topic too, and that is all.
    const all = await consumeStats(GROUP, null);
    assert.deepEqual([...new Set(all.rows.map((r) => r.topic))].filter((t) => t === TOPIC), [TOPIC]);
    assert.ok(all.rows.every((r) => r.topic === TOPIC || r.topic === `%RETRY%${GROUP}`));

    // The connection lists show the live ali-ons clients, as heartbeated.
    let r = await h.admin.request(203, { consumerGroup: GROUP });
    assert.equal(r.code, 0, r.remark);
    const cc = JSON.parse(r.body.toString());
    assert.deepEqual(cc.connectionSet.map((x) => x.clientId), [c.clientId]);
    assert.match(cc.connectionSet[0].clientAddr, /^127\.0\.0\.1:\d+$/);
    assert.equal(typeof cc.connectionSet[0].language, 'string');
    assert.equal(typeof cc.connectionSet[0].version, 'number');
    assert.equal(cc.messageModel, 'CLUSTERING');
    assert.equal(cc.consumeType, 'CONSUME_PASSIVELY');
    assert.equal(cc.consumeFromWhere, 'CONSUME_FROM_FIRST_OFFSET');
    assert.equal(cc.subscriptionTable[TOPIC].subString, '*');
    assert.equal(cc.subscriptionTable[TOPIC].topic, TOPIC);
    // ali-ons heartbeats a producer only to brokers it knows a route to: after its
    // first send, at the next heartbeat.
    await until(async () => (r = await h.admin.request(204, { producerGroup: 'PG_PROGRESS' })).code === 0,
        5000, () => `the producer's heartbeat (${r.remark})`);
    assert.deepEqual(JSON.parse(r.body.toString()).connectionSet.map((x) => x.clientId),
        [p.clientId]);

    await c.close();
    // Gone after it unregistered: CONSUMER_NOT_ONLINE, as RocketMQ answers.
    assert.equal((await h.admin.request(203, { consumerGroup: GROUP })).code, 206);
    assert.notEqual((await h.admin.request(204, { producerGroup: 'PG_NOBODY' })).code, 0);
    await sendN(p, 20, 28);
    s = await consumeStats(GROUP, TOPIC);
    assert.equal(lag(s.rows), 8);
    assert.equal(s.rows.reduce((n, r) => n + r.brokerOffset, 0), 28);
});

test('GET_TOPIC_STATS_INFO: min, max and last store time per queue', async () => {
    const r = await h.admin.request(202, { topic: TOPIC });
    assert.equal(r.code, 0, r.remark);
    const text = r.body.toString('utf8');
    assert.match(text, /^\{"offsetTable":\{\{"brokerName":"[^"]+","queueId":0,"topic":"T_PROGRESS"\}:\{"lastUpdateTimestamp":\d+,"maxOffset":\d+,"minOffset":\d+\}/);
    const rows = parseFastjson(text).offsetTable.map(([mq, w]) => ({ ...mq, ...w }));
    assert.equal(rows.length, QUEUES);
    assert.equal(rows.reduce((n, x) => n + x.maxOffset, 0), 28);
    for (const x of rows) {
        assert.equal(x.minOffset, 0);
        assert.ok(x.maxOffset === 0 ? x.lastUpdateTimestamp === 0 : x.lastUpdateTimestamp > 0);
    }
    const missing = await h.admin.request(202, { topic: 'NO_SUCH_TOPIC' });
    assert.equal(missing.code, 17);
    const noGroup = await h.admin.request(208, {});
    assert.notEqual(noGroup.code, 0);
});
