// Every message kind a RocketMQ 5 producer sends over gRPC (npm rocketmq-client-nodejs
// Producer on apogee standalone's grpcServerPort), read back by 4.x clients:
//  - FIFO: each message group lands in one queue (the broker hashes the group), in send order,
//    with the group stored as __SHARDINGKEY;
//  - delay: a delivery timestamp 2.5 s ahead keeps the message out of its topic until then;
//  - transactions: a commit is delivered, a rollback never is, and an orphaned half (its
//    producer gone without an answer) is checked back over the Telemetry stream of a producer
//    started later, whose checker commits it (EndTransaction from a server check);
//  - an ali-ons push consumer reads the normal, committed and recovered messages.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Producer } from 'rocketmq-client-nodejs';
import { freePort } from '../lib/proc.mjs';
import { pullAll } from '../lib/records.mjs';
import { onsHarness, until } from './ons.mjs';

const COMMIT = 1;
const quiet = { info() {}, warn() {}, error() {}, debug() {}, trace() {} };
const h = onsHarness();
let grpcPort;

before(async () => {
    grpcPort = await freePort();
    await h.start([`--grpcServerPort=${grpcPort}`, '--transactionTimeOut=1000',
        '--transactionCheckInterval=1000']);
});
after(async () => {
    try {
        await h.stop();
    } finally {
        // grpc-js keeps channel handles alive after the clients' shutdown.
        setImmediate(() => process.exit());
    }
});

async function producer(topics, extra = {}) {
    const p = new Producer({ endpoints: `127.0.0.1:${grpcPort}`, topics, logger: quiet,
        requestTimeout: 5000, ...extra });
    await p.startup();
    return p;
}

async function pullTopic(topic, queues) {
    const got = [];
    for (let q = 0; q < queues; q++) got.push(...(await pullAll(h.admin, topic, q)));
    return got;
}

test('FIFO: each message group stays in one queue, in send order; groups spread', async () => {
    const topic = 'GrpcFifo';
    await h.createTopic(topic, 8);
    const p = await producer([topic]);
    const groups = ['order-1', 'order-2', 'order-3', 'order-4'];
    try {
        for (let i = 0; i < 40; i++) {
            const g = groups[i % groups.length];
            await p.send({ topic, messageGroup: g, body: Buffer.from(`${g}:${i}`) });
        }
    } finally {
        await p.shutdown();
    }
    const got = await pullTopic(topic, 8);
    assert.equal(got.length, 40);
    const queues = new Set();
    for (const g of groups) {
        const mine = got.filter((m) => m.props.__SHARDINGKEY === g);
        assert.equal(mine.length, 10, `group ${g}`);
        assert.equal(new Set(mine.map((m) => m.queueId)).size, 1, `group ${g} in one queue`);
        queues.add(mine[0].queueId);
        const seq = mine.sort((a, b) => a.queueOffset - b.queueOffset)
            .map((m) => Number(m.body.split(':')[1]));
        assert.deepEqual(seq, [...seq].sort((a, b) => a - b), `group ${g} in send order`);
    }
    assert.ok(queues.size > 1, 'groups spread over the queues');
});

test('delay: a message with a delivery timestamp appears in its topic at that time', async () => {
    const topic = 'GrpcDelay';
    await h.createTopic(topic, 1);
    const p = await producer([topic]);
    const due = Date.now() + 2500;
    try {
        await p.send({ topic, deliveryTimestamp: new Date(due), body: Buffer.from('later') });
    } finally {
        await p.shutdown();
    }
    assert.equal((await pullTopic(topic, 1)).length, 0, 'not visible before its time');
    let got = [];
    await until(async () => (got = await pullTopic(topic, 1)).length === 1, 15000,
        () => 'the delayed message to arrive');
    assert.ok(Date.now() >= due - 50, 'not delivered early');
    assert.equal(got[0].body, 'later');
    assert.equal(Number(got[0].props.TIMER_DELIVER_MS), due);
});

test('transactions: commit delivers, rollback does not, an orphan is recovered by a new producer; ali-ons reads them', async () => {
    const topic = 'GrpcTxn';
    await h.createTopic(topic, 2);
    const received = new Map();
    const c = h.newConsumer('CG_GRPC_TXN', 'grpc-txn');
    c.subscribe(topic, '*', async (msg) => { received.set(msg.body.toString(), msg); });

    // A normal message, a commit and a rollback.
    const unknownChecks = [];
    const p1 = await producer([topic], { checker: { async check(v) {
        unknownChecks.push(v.body.toString());
        return null; // no answer: the server asks again later
    } } });
    await p1.send({ topic, tag: 'plain', body: Buffer.from('normal') });
    const t1 = p1.beginTransaction();
    const r1 = await p1.send({ topic, tag: 'tx', keys: ['k-commit'], body: Buffer.from('committed') }, t1);
    assert.ok(r1.transactionId, 'a transaction id in the receipt');
    await t1.commit();
    const t2 = p1.beginTransaction();
    await p1.send({ topic, body: Buffer.from('rolled back') }, t2);
    await t2.rollback();
    // An orphan: sent, never ended; its producer goes away.
    const t3 = p1.beginTransaction();
    await p1.send({ topic, tag: 'orphan', properties: new Map([['why', 'crash']]),
        body: Buffer.from('orphan') }, t3);
    await p1.shutdown();

    await until(() => received.has('normal') && received.has('committed'), 30000,
        () => `normal and committed to arrive (have ${[...received.keys()]})`);
    assert.equal(received.get('committed').tags, 'tx');
    assert.equal(received.get('committed').keys, 'k-commit');

    // A producer started later declares the topic; the check-back reaches it over Telemetry.
    const checked = [];
    const p2 = await producer([topic], { checker: { async check(v) {
        checked.push({ body: v.body.toString(), tag: v.tag, why: v.properties?.get?.('why') });
        return COMMIT;
    } } });
    try {
        await until(() => received.has('orphan'), 30000,
            () => `the orphan to be recovered (checks: ${JSON.stringify(checked)})`);
    } finally {
        await p2.shutdown();
    }
    assert.ok(checked.some((x) => x.body === 'orphan' && x.tag === 'orphan' && x.why === 'crash'),
        JSON.stringify(checked));
    assert.equal(received.get('orphan').tags, 'orphan');
    assert.ok(!received.has('rolled back'), 'a rolled-back message is never delivered');
    assert.equal(received.size, 3);
});
