// RocketMQ 5 SimpleConsumer (npm rocketmq-client-nodejs) on the gRPC port, against the
// broker's pop module: receive + ack, change invisible duration, redelivery after the
// invisible time, the DLQ after the group's retryMaxTimes + 1 deliveries, two consumers
// of one group sharing a topic without duplicates, and deliveries in flight across a
// kill -9 of the broker. Messages are sent with raw remoting SEND_MESSAGE_V2. Deliveries
// count in /metrics rocketmq_messages_out_total as remoting pulls and pops do.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import { SimpleConsumer } from 'rocketmq-client-nodejs';
import { freePort, startApogee, waitForPort } from '../lib/proc.mjs';
import { RemotingClient } from '../lib/remoting.mjs';
import { decodeRecords } from '../lib/records.mjs';

// The nodejs client 1.x leaves its Telemetry stream without an error handler (and open
// after shutdown): when the broker goes away (the kill -9 below, the stop at the end),
// grpc-js raises that stream's UNAVAILABLE as an uncaught error. Only that one is ignored.
process.on('uncaughtException', (e) => {
    if (e && e.code === 14 && (/telemetry/i.test(String(e.stack)) || /server shutting down/.test(e.message))) return;
    throw e;
});
const quiet = { info() {}, warn() {}, error() {}, debug() {}, trace() {} };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let srv;
let br;
let grpcPort;
let nsPort;
let httpPort;
let port;
const consumers = [];

async function boot(dir) {
    srv = await startApogee('standalone', [`--grpcServerPort=${grpcPort}`, `--httpListenPort=${httpPort}`], {
        port, dir, keepDir: true, anyExit: true, extraPorts: { namesrvListenPort: nsPort },
    });
    port = srv.port;
    await waitForPort(grpcPort);
    br = await RemotingClient.connect(srv.port);
}
before(async () => {
    grpcPort = await freePort();
    nsPort = await freePort();
    httpPort = await freePort();
    await boot();
});
after(async () => {
    try {
        for (const c of consumers) await c.shutdown().catch(() => {});
        br?.close();
        await srv?.stop();
        if (srv) fs.rmSync(srv.dir, { recursive: true, force: true });
    } finally {
        // Exit 0: the client's channels raise errors of their own after shutdown, outside
        // any test (each test's verdict is already reported); see the handler above.
        setImmediate(() => process.exit(0));
    }
});

async function topic(name, queues = 2) {
    const r = await br.request(17, { topic: name, readQueueNums: String(queues), writeQueueNums: String(queues), perm: '6' });
    assert.equal(r.code, 0, r.remark);
}
async function send(t, body, queueId = -1) {
    const r = await br.request(310, {
        a: 'PG', b: t, c: 'TBW102', d: '4', e: String(queueId), f: '0', g: String(Date.now()), h: '0',
        i: '', k: 'false',
    }, Buffer.from(body));
    assert.equal(r.code, 0, r.remark);
}
async function consumer(group, t, awaitDuration = 1500) {
    const c = new SimpleConsumer({
        endpoints: `127.0.0.1:${grpcPort}`, consumerGroup: group, logger: quiet,
        subscriptions: new Map([[t, '*']]), awaitDuration,
    });
    await c.startup();
    consumers.push(c);
    return c;
}
// The value of a /metrics sample whose labels include every one of labels; 0 when absent.
async function metric(name, labels) {
    const text = await new Promise((resolve, reject) => {
        http.get({ host: '127.0.0.1', port: httpPort, path: '/metrics' }, (res) => {
            let b = '';
            res.on('data', (d) => (b += d));
            res.on('end', () => resolve(b));
        }).on('error', reject);
    });
    for (const line of text.split('\n')) {
        if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
        if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)))
            return Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    return 0;
}
// Receives until n messages came or rounds receive calls returned nothing in a row.
async function receiveN(c, n, invisible = 30000, rounds = 6) {
    const got = [];
    for (let empty = 0; got.length < n && empty < rounds;) {
        const ms = await c.receive(16, invisible);
        if (ms.length === 0) empty++;
        else empty = 0;
        got.push(...ms);
    }
    return got;
}

test('receive and ack: every message once, with digest, handle and attempt', async () => {
    await topic('SimpleA');
    for (let i = 0; i < 10; i++) await send('SimpleA', `a${i}`);
    const c = await consumer('CG_SIMPLE_A', 'SimpleA');
    const out0 = await metric('rocketmq_messages_out_total', { topic: 'SimpleA', consumer_group: 'CG_SIMPLE_A' });
    const got = await receiveN(c, 10);
    assert.deepEqual(got.map((m) => m.body.toString()).sort(), [...Array(10).keys()].map((i) => `a${i}`).sort());
    assert.equal(await metric('rocketmq_messages_out_total', { topic: 'SimpleA', consumer_group: 'CG_SIMPLE_A' }),
        out0 + 10, 'deliveries count as messages out');
    for (const m of got) {
        assert.ok(!m.corrupted, 'the body digest matches (the client sets corrupted only on a mismatch)');
        assert.ok(m.receiptHandle.split(' ').length >= 8);
        assert.equal(m.deliveryAttempt, 1);
        assert.equal(m.topic, 'SimpleA');
        await c.ack(m);
    }
    assert.deepEqual(await receiveN(c, 1, 30000, 2), [], 'acknowledged: nothing comes back');
});

test('a message not acknowledged comes back after its invisible duration', async () => {
    await topic('SimpleB');
    await send('SimpleB', 'b0');
    const c = await consumer('CG_SIMPLE_B', 'SimpleB', 3000);
    const [m] = await receiveN(c, 1, 1000);
    assert.equal(m.body.toString(), 'b0');
    const t0 = Date.now();
    const [again] = await receiveN(c, 1, 1000);
    assert.equal(again.messageId, m.messageId);
    assert.equal(again.deliveryAttempt, 2);
    assert.ok(Date.now() - t0 < 3000);
    await assert.rejects(c.ack(m), /receipt handle/i, 'the first handle is stale');
    await c.ack(again);
});

test('changeInvisibleDuration keeps a message away longer and renews its handle', async () => {
    await topic('SimpleC');
    await send('SimpleC', 'c0');
    const c = await consumer('CG_SIMPLE_C', 'SimpleC');
    const [m] = await receiveN(c, 1, 1500);
    const old = m.receiptHandle;
    await c.changeInvisibleDuration(m, 6000);
    assert.notEqual(m.receiptHandle, old);
    await sleep(2000);
    assert.deepEqual(await receiveN(c, 1, 1500, 1), [], 'still invisible');
    await c.ack(m);
});

test('after retryMaxTimes + 1 deliveries the message goes to %DLQ%<group>', async () => {
    await topic('SimpleD');
    const g = await br.request(200, {}, Buffer.from(JSON.stringify({ groupName: 'CG_SIMPLE_D', consumeEnable: true, retryMaxTimes: 1 })));
    assert.equal(g.code, 0);
    await send('SimpleD', 'd0');
    const c = await consumer('CG_SIMPLE_D', 'SimpleD', 3000);
    assert.equal((await receiveN(c, 1, 1000))[0].deliveryAttempt, 1);
    assert.equal((await receiveN(c, 1, 1000))[0].deliveryAttempt, 2);
    assert.deepEqual(await receiveN(c, 1, 1000, 1), [], 'not delivered a third time');
    const d = await br.request(11, {
        consumerGroup: 'CG_DLQ_READER', topic: '%DLQ%CG_SIMPLE_D', queueId: '0', queueOffset: '0',
        maxMsgNums: '32', sysFlag: '0', commitOffset: '0', suspendTimeoutMillis: '0',
        subscription: '*', subVersion: '0', expressionType: 'TAG',
    });
    assert.equal(d.code, 0, d.remark);
    assert.deepEqual(decodeRecords(d.body).map((x) => x.body), ['d0']);
});

test('two SimpleConsumers of one group share the messages without duplicates', async () => {
    await topic('SimpleE', 4);
    const N = 200;
    for (let i = 0; i < N; i++) await send('SimpleE', `e${i}`);
    const a = await consumer('CG_SIMPLE_E', 'SimpleE');
    const b = await consumer('CG_SIMPLE_E', 'SimpleE');
    const seen = new Map();
    let dups = 0;
    const run = async (c, name) => {
        for (let empty = 0; empty < 4 && seen.size < N;) {
            const ms = await c.receive(16, 30000);
            empty = ms.length ? 0 : empty + 1;
            for (const m of ms) {
                if (seen.has(m.messageId)) dups++;
                seen.set(m.messageId, name);
                await c.ack(m);
            }
        }
    };
    await Promise.all([run(a, 'a'), run(b, 'b')]);
    assert.equal(dups, 0);
    assert.equal(seen.size, N);
    const byA = [...seen.values()].filter((v) => v === 'a').length;
    assert.ok(byA > 0 && byA < N, `both consumers took some (a: ${byA} of ${N})`);
});

test('deliveries in flight stay invisible across kill -9; their handles still acknowledge', async () => {
    await topic('SimpleR', 1);
    for (let i = 0; i < 3; i++) await send('SimpleR', `r${i}`);
    const c = await consumer('CG_SIMPLE_R', 'SimpleR');
    const got = await receiveN(c, 3, 60000);
    assert.equal(got.length, 3);
    await c.ack(got[0]);
    const dir = srv.dir;
    br.close();
    await srv.stop('SIGKILL');
    await boot(dir);
    await topic('SimpleR', 1); // no change: the topic was journaled
    const c2 = await consumer('CG_SIMPLE_R', 'SimpleR');
    assert.deepEqual(await receiveN(c2, 1, 60000, 2), [], 'r1, r2 still invisible, r0 acknowledged');
    await c2.ack(got[1]);
    await c2.ack(got[2]);
    await send('SimpleR', 'r3');
    assert.deepEqual((await receiveN(c2, 1)).map((m) => m.body.toString()), ['r3']);
});
