// Interop (ali-ons 3.12.0): consumption modes and retries.
//
// Broadcasting: ali-ons selects it with the option `isBroadcast: true` (messageModel
// BROADCASTING); such a consumer takes every queue, keeps its offsets locally
// (LocalMemoryOffsetStore) and does not subscribe to %RETRY%<group>.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { onsHarness, ons, until, sleep } from './ons.mjs';

const h = onsHarness();

before(async () => {
    await h.start();
});

after(async () => {
    await h.stop();
    setImmediate(() => process.exit(0));
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
