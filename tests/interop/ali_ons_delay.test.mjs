// Interop (ali-ons 3.12.0): delay levels and retry timing.
//
// A producer sets Message#delayTimeLevel (the DELAY property); the consumer must not see
// the message before that level's delay has passed, and must see it with its msgId, tag,
// keys and user properties. A consumer whose handler throws hands the message back with
// CONSUMER_SEND_MSG_BACK (delayLevel 0): the broker holds the copy at level
// 3 + reconsumeTimes before it reaches %RETRY%<group>, and moves it to %DLQ%<group> after
// maxReconsumeTimes. The broker runs with messageDelayLevel "1s 2s 3s 4s 5s" so the suite
// stays fast (RocketMQ's default starts "1s 5s 10s 30s").
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { HandlerRetry, onsHarness, ons, until, sleep } from './ons.mjs';
import { decodeRecords } from '../lib/records.mjs';

const DELAY_MS = [1000, 2000, 3000, 4000, 5000];
const h = onsHarness();

before(async () => {
    await h.start(['--messageDelayLevel=1s 2s 3s 4s 5s']);
});

after(async () => {
    try {
        await h.stop();
    } finally {
        // ali-ons keeps timers alive; exit with the runner's verdict.
        setImmediate(() => process.exit());
    }
});

test('a message with delayTimeLevel 2 arrives no earlier than 2 s after the send, whole', async () => {
    const topic = 'DelayLevelTopic';
    await h.createTopic(topic, 4);
    const p = await h.newProducer('PG_DELAY', { instanceName: 'p-delay' });
    const got = new Map(); // body -> { at, msg }
    h.newConsumer('CG_DELAY', 'delay-1').subscribe(topic, '*', async (msg) => {
        got.set(msg.body.toString(), { at: Date.now(), msg });
    });
    await sleep(1500); // rebalanced
    const sent = {};
    for (const [body, level] of [['now', 0], ['level2', 2], ['level1', 1]]) {
        const m = new ons.Message(topic, 'TD', Buffer.from(body));
        m.keys = [`k-${body}`];
        m.properties.color = 'blue';
        if (level) m.delayTimeLevel = level;
        const t = Date.now();
        const r = await p.send(m);
        assert.equal(r.sendStatus, 'SEND_OK');
        sent[body] = { t, level, msgId: r.msgId };
    }
    await until(() => got.size === 3, 10000, 'the three messages');
    assert.ok(got.get('now').at - sent.now.t < 1000, 'the undelayed message is not held');
    for (const body of ['level1', 'level2']) {
        const { t, level, msgId } = sent[body];
        const { at, msg } = got.get(body);
        const waited = at - t;
        assert.ok(waited >= DELAY_MS[level - 1], `${body} arrived after ${waited} ms`);
        assert.ok(waited < DELAY_MS[level - 1] + 1500, `${body} arrived after ${waited} ms`);
        // ali-ons names messages by offset msgId; the id RocketMQ clients use is the
        // UNIQ_KEY the broker gave the held record (read back by its offset msgId).
        const held = await h.admin.request(33, { offset: String(BigInt(`0x${msgId.slice(-16)}`)) });
        assert.equal(held.code, 0, held.remark);
        const [rec] = decodeRecords(held.body);
        assert.equal(rec.topic, 'SCHEDULE_TOPIC_XXXX');
        assert.equal(rec.queueId, level - 1);
        assert.ok(rec.props.UNIQ_KEY);
        assert.equal(msg.properties.UNIQ_KEY, rec.props.UNIQ_KEY, 'the delivered message keeps its id');
        assert.equal(msg.tags, 'TD');
        assert.equal(msg.keys, `k-${body}`);
        assert.equal(msg.properties.color, 'blue');
        assert.equal(msg.topic, topic);
        assert.equal(msg.properties.REAL_TOPIC, topic);
    }
    await sleep(500);
    assert.equal(got.size, 3);
});

test('a failed message is retried after level 3 + reconsumeTimes, then goes to the DLQ', async () => {
    const topic = 'DelayRetryTopic';
    const group = 'CG_DELAY_RETRY';
    await h.createTopic(topic, 2);
    const p = await h.newProducer('PG_DELAY_RETRY', { instanceName: 'p-delay-retry' });
    const seen = new Map(); // body -> [{ at, reconsumeTimes }]
    const c = h.newConsumer(group, 'delay-retry-1', { maxReconsumeTimes: 2 });
    c.subscribe(topic, '*', async (msg) => {
        const body = msg.body.toString();
        if (!seen.has(body)) seen.set(body, []);
        seen.get(body).push({ at: Date.now(), reconsumeTimes: msg.reconsumeTimes });
        if (body === 'fail-once' && seen.get(body).length === 1) throw new HandlerRetry('fail once');
        if (body === 'fail-always') throw new HandlerRetry('fail always');
    });
    await sleep(1500);
    for (const body of ['fail-once', 'fail-always']) {
        const r = await p.send(new ons.Message(topic, 'R', Buffer.from(body)));
        assert.equal(r.sendStatus, 'SEND_OK');
    }
    await until(() => seen.get('fail-once')?.length === 2 && seen.get('fail-always')?.length === 3,
        30000, 'the retries');
    const once = seen.get('fail-once');
    const gap = once[1].at - once[0].at;
    assert.ok(gap >= DELAY_MS[2], `first retry after ${gap} ms, level 3 is ${DELAY_MS[2]} ms`);
    assert.ok(gap < DELAY_MS[2] + 2000, `first retry after ${gap} ms`);
    const always = seen.get('fail-always');
    assert.deepEqual(always.map((s) => s.reconsumeTimes), [0, 1, 2]);
    const gap2 = always[2].at - always[1].at;
    assert.ok(gap2 >= DELAY_MS[3], `second retry after ${gap2} ms, level 4 is ${DELAY_MS[3]} ms`);
    // maxReconsumeTimes 2: the third failure goes to %DLQ%<group> at once.
    await until(async () => {
        const r = await h.admin.request(30, { topic: `%DLQ%${group}`, queueId: '0' });
        return r.code === 0 && r.ext.offset === '1';
    }, 3000, 'the DLQ copy');
    await sleep(1000);
    assert.equal(seen.get('fail-once').length, 2);
    assert.equal(seen.get('fail-always').length, 3);
    await c.close();
});
