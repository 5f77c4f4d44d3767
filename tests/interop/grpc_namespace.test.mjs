// Namespaces across client generations on `apogee standalone`: a RocketMQ 5 client (npm
// rocketmq-client-nodejs, option namespace: x-mq-namespace header, resource_namespace on a
// producer's topics) and a 4.x ali-ons client (option namespace: it prefixes "NS%topic" and
// "NS%group" itself) with the same namespace see the same topic. The 5.x producer's messages
// are stored in the broker's topic "NS%T" (read back with a raw remoting pull) and reach an
// ali-ons consumer; ali-ons messages reach a SimpleConsumer, whose messages name the topic
// without the namespace.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Producer, SimpleConsumer } from 'rocketmq-client-nodejs';
import { freePort, waitForPort } from '../lib/proc.mjs';
import { pullAll } from '../lib/records.mjs';
import { onsHarness, ons, until } from './ons.mjs';

process.on('uncaughtException', (e) => {
    if (e && e.code === 14 && (/telemetry/i.test(String(e.stack)) || /server shutting down/.test(e.message))) return;
    throw e;
});
const quiet = { info() {}, warn() {}, error() {}, debug() {}, trace() {} };
const { Message } = ons;
const h = onsHarness();
const NS = 'NS_APG';
const TOPIC = 'T_NS';
const FULL = `${NS}%${TOPIC}`;
let grpcPort;
const clients = [];

before(async () => {
    grpcPort = await freePort();
    await h.start([`--grpcServerPort=${grpcPort}`]);
    await waitForPort(grpcPort);
    const r = await h.admin.request(17, { topic: FULL, readQueueNums: '2', writeQueueNums: '2',
        perm: '6' });
    assert.equal(r.code, 0, r.remark);
});
after(async () => {
    try {
        for (const c of clients) await c.shutdown().catch(() => {});
        await h.stop();
    } finally {
        setImmediate(() => process.exit(0));
    }
});

test('a 5.x producer with a namespace writes NS%topic; a 4.x consumer in that namespace reads it', async () => {
    const p = new Producer({ endpoints: `127.0.0.1:${grpcPort}`, namespace: NS, topics: [TOPIC],
        logger: quiet, requestTimeout: 3000 });
    await p.startup();
    clients.push(p);
    const sent = [];
    for (let i = 0; i < 5; i++) {
        await p.send({ topic: TOPIC, body: Buffer.from(`v5-${i}`) });
        sent.push(`v5-${i}`);
    }
    // Stored under the broker name the 4.x clients use.
    const recs = [];
    for (let q = 0; q < 2; q++) recs.push(...(await pullAll(h.admin, FULL, q)));
    assert.deepEqual(recs.map((r) => r.body.toString()).sort(), sent);
    const got = new Set();
    const c = h.newConsumer('CG_NS_V4', 'inst-ns', { namespace: NS });
    c.subscribe(TOPIC, '*', async (msg) => {
        got.add(msg.body.toString());
    });
    await until(() => got.size === sent.length, 30000, () => `${got.size}/${sent.length}`);
});

test('a 4.x producer in the namespace reaches a 5.x SimpleConsumer in the same namespace', async () => {
    const p = await h.newProducer('PG_NS_V4', { namespace: NS });
    const sent = [];
    for (let i = 0; i < 5; i++) {
        const r = await p.send(new Message(TOPIC, 'TagA', Buffer.from(`v4-${i}`)));
        assert.equal(r.sendStatus, 'SEND_OK');
        sent.push(`v4-${i}`);
    }
    const c = new SimpleConsumer({ endpoints: `127.0.0.1:${grpcPort}`, namespace: NS,
        consumerGroup: 'CG_NS_V5', logger: quiet, subscriptions: new Map([[TOPIC, '*']]),
        awaitDuration: 1000, requestTimeout: 3000 });
    await c.startup();
    clients.push(c);
    const got = new Set();
    for (let round = 0; round < 30 && !sent.every((s) => got.has(s)); round++) {
        for (const m of await c.receive(16, 30000)) {
            assert.equal(m.topic, TOPIC, 'the topic comes back without the namespace');
            got.add(m.body.toString());
            await c.ack(m);
        }
    }
    for (const s of sent) assert.ok(got.has(s), `${s} received`);
});
