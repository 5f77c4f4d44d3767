// Interop (ali-ons 3.12.0): timer messages.
//
// A producer sets Message#setStartDeliverTime(ms) (Aliyun's __STARTDELIVERTIME property,
// an absolute wall time in ms) or the RocketMQ 5.x property TIMER_DELIVER_MS; the consumer
// must not see the message before that time, and must see it with its id, tag, keys and
// user properties. A time in the past is delivered at once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { onsHarness, ons, until, sleep } from './ons.mjs';

const h = onsHarness();

before(async () => {
    await h.start([]);
});

after(async () => {
    try {
        await h.stop();
    } finally {
        // ali-ons keeps timers alive; exit with the runner's verdict.
        setImmediate(() => process.exit());
    }
});

test('setStartDeliverTime and TIMER_DELIVER_MS: delivered no earlier than due, whole', async () => {
    const topic = 'TimerOnsTopic';
    await h.createTopic(topic, 4);
    const p = await h.newProducer('PG_TIMER', { instanceName: 'p-timer' });
    const got = new Map(); // body -> { at, msg }
    h.newConsumer('CG_TIMER', 'timer-1').subscribe(topic, '*', async (msg) => {
        got.set(msg.body.toString(), { at: Date.now(), msg });
    });
    await sleep(1500); // rebalanced
    const t0 = Date.now();
    const sent = {};
    for (const [body, due, how] of [
        ['past', t0 - 10000, 'start'],
        ['start1200', t0 + 1200, 'start'],
        ['start2500', t0 + 2500, 'start'],
        ['timer1700', t0 + 1700, 'timer'],
    ]) {
        const m = new ons.Message(topic, 'TT', Buffer.from(body));
        m.keys = [`k-${body}`];
        m.properties.color = 'green';
        if (how === 'start') m.setStartDeliverTime(due);
        else m.properties.TIMER_DELIVER_MS = String(due);
        const r = await p.send(m);
        assert.equal(r.sendStatus, 'SEND_OK');
        sent[body] = { due };
    }
    await until(() => got.size === 4, 10000, 'the four messages');
    assert.ok(got.get('past').at - t0 < 1000, 'a past deliver time is not held');
    for (const body of ['start1200', 'start2500', 'timer1700']) {
        const { due } = sent[body];
        const { at, msg } = got.get(body);
        assert.ok(at >= due, `${body} arrived ${due - at} ms early`);
        assert.ok(at < due + 1500, `${body} arrived ${at - due} ms late`);
        // The stored copy is not early either (the consumer's clock is the broker's here).
        assert.ok(Number(msg.storeTimestamp) >= due, `${body} stored ${due - Number(msg.storeTimestamp)} ms early`);
        assert.equal(msg.tags, 'TT');
        assert.equal(msg.keys, `k-${body}`);
        assert.equal(msg.properties.color, 'green');
        assert.equal(msg.properties.REAL_TOPIC, topic);
        assert.equal(msg.properties.TIMER_OUT_MS, String(due));
        assert.ok(msg.properties.UNIQ_KEY);
    }
    await sleep(500);
    assert.equal(got.size, 4, 'each once');
});

test('a deliver time past timerMaxDelaySec is refused with MESSAGE_ILLEGAL', async () => {
    const topic = 'TimerOnsFar';
    await h.createTopic(topic, 4);
    const p = await h.newProducer('PG_TIMER_FAR', { instanceName: 'p-timer-far' });
    const m = new ons.Message(topic, 'TT', Buffer.from('far'));
    m.setStartDeliverTime(Date.now() + 4 * 24 * 3600 * 1000);
    await assert.rejects(p.send(m), /timerMaxDelaySec/);
});
