// Interop (ali-ons 3.12.0): messages ordered by sharding key.
//
// ali-ons puts a message with `shardingKey` on queue md5(key) (first 4 bytes, big
// endian) modulo the number of writable queue ids, so every message of one key lands
// on one queue in send order. (ali-ons 3.12 has a slip here: a key whose index comes
// out as queue id 0 is treated as "no key" and sent round-robin, so the keys below are
// ones that map to queues 1..3.) Consumed by an ali-ons consumer (one message of a queue
// at a time) and by the C client's orderly push consumer, which holds the queue locks
// of its group on the broker (LOCK_BATCH_MQ) while it runs: each key arrives in send
// order, once, and another client of that group gets none of the locked queues.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { onsHarness, ons, until } from './ons.mjs';
import { skipExamples, start } from '../lib/examples.mjs';
import { jsonBody } from '../lib/remoting.mjs';

const h = onsHarness();
const topic = 'ShardTopic';
const KEYS = ['key0', 'key2', 'key3', 'key4', 'key5', 'key6']; // md5 index 2 2 1 3 2 1
const STEPS = 30;

before(async () => {
    await h.start();
    await h.createTopic(topic, 4);
    const p = await h.newProducer('PG_SHARD', { instanceName: 'p-shard' });
    // Interleaved keys, each send awaited: the send order of a key is its step order.
    for (let s = 0; s < STEPS; s++) {
        for (const key of KEYS) {
            const m = new ons.Message(topic, 'S', Buffer.from(`${key}:${s}`));
            m.shardingKey = key;
            const r = await p.send(m);
            assert.equal(r.sendStatus, 'SEND_OK');
        }
    }
});

after(async () => {
    try {
        await h.stop();
    } finally {
        // ali-ons keeps timers alive; exit with the runner's verdict.
        setImmediate(() => process.exit());
    }
});

async function lockFor(clientId, mqSet) {
    const r = await h.admin.request(41, {}, Buffer.from(JSON.stringify({ consumerGroup: 'CG_SHARD_C', clientId, mqSet })));
    assert.equal(r.code, 0, r.remark);
    return jsonBody(r).lockOKMQSet;
}

function checkOrder(byKey, queueOf) {
    assert.deepEqual(Object.keys(byKey).sort(), [...KEYS].sort());
    for (const [key, seq] of Object.entries(byKey)) {
        assert.deepEqual(seq, [...Array(STEPS).keys()], `${key}: ${seq.join(',')}`);
        // ali-ons's own rule: md5(key) modulo the queue count (queue ids 0..3).
        const want = crypto.createHash('md5').update(key).digest().readUInt32BE() % 4;
        assert.deepEqual([...queueOf[key]], [want], `${key} on queues ${[...queueOf[key]]}`);
    }
}

test('an ali-ons consumer gets every key on one queue, in send order', async () => {
    const byKey = {};
    const queueOf = {};
    let n = 0;
    const c = h.newConsumer('CG_SHARD_ONS', 'shard-ons');
    c.subscribe(topic, '*', async (msg) => {
        const [key, step] = msg.body.toString().split(':');
        (byKey[key] ??= []).push(Number(step));
        (queueOf[key] ??= new Set()).add(msg.queueId);
        n++;
    });
    await until(() => n >= KEYS.length * STEPS, 30000, 'every message');
    await c.close();
    checkOrder(byKey, queueOf);
});

test('the C client orderly consumer locks the queues and gets every key in send order',
    { skip: skipExamples }, async () => {
        const c = start('push_consumer', ['-n', `127.0.0.1:${h.nsPort}`, '-t', topic, '-g', 'CG_SHARD_C',
            '--first', '--orderly', '--threads', '4', '--seconds', '90']);
        let mqSet;
        try {
            // (the QUEUES line comes from a 100 ms poll and may trail the messages)
            await until(() => c.recv().length >= KEYS.length * STEPS && c.queues() === 4, 60000,
                'every message and the QUEUES line');
            // While it runs, its queues are locked for it: another client of the group gets none.
            const held = c.lines.filter((l) => l.startsWith('QUEUES ')).pop().split(' ')[2].split(',')
                .map((x) => x.split(':'));
            assert.equal(held.length, 4);
            mqSet = held.map(([brokerName, q]) => ({ topic, brokerName, queueId: Number(q) }));
            assert.deepEqual(await lockFor('intruder', mqSet), []);
        } finally {
            assert.equal(await c.stop(), 0, c.out);
        }
        // Its shutdown unlocked them: now the other client gets every one.
        assert.equal((await lockFor('intruder', mqSet)).length, 4);
        const byKey = {};
        const queueOf = {};
        for (const [, , , q, , , body] of c.recv()) {
            const [key, step] = body.split(':');
            (byKey[key] ??= []).push(Number(step));
            (queueOf[key] ??= new Set()).add(Number(q));
        }
        checkOrder(byKey, queueOf);
    });
