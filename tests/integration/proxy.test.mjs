// `apogee proxy` in front of two brokers: a NameServer, two `apogee broker`s (broker-a,
// broker-b, no gRPC port of their own) and `apogee proxy`, driven with the npm
// rocketmq-client-nodejs Producer and SimpleConsumer. Sends spread over both brokers
// (checked per broker with GET_MAX_OFFSET), FIFO message groups stay on one queue, a
// SimpleConsumer receives every message once and acks it, change-invisible-duration and
// redelivery after the invisible time work through the proxy, ForwardMessageToDeadLetterQueue
// puts a message into %DLQ%<group> of its broker and acks it, the brokers list a 5.x consumer
// behind the proxy (its heartbeats forwarded) until it shuts down, a 4.x ali-ons consumer reads
// what went through the proxy from the brokers directly, and an ack whose handle names a
// broker that went away gets an error that says so.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { Producer, SimpleConsumer } from 'rocketmq-client-nodejs';
import { freePort, startApogee, waitForPort } from '../lib/proc.mjs';
import { RemotingClient, waitForRoute } from '../lib/remoting.mjs';
import { pullAll } from '../lib/records.mjs';

// The nodejs client leaves its Telemetry stream without an error handler: when a server
// goes away, grpc-js raises that stream's UNAVAILABLE as an uncaught error. Only that one
// is ignored (as in tests/interop/grpc_simple_consumer.test.mjs).
process.on('uncaughtException', (e) => {
    if (e && e.code === 14 && (/telemetry/i.test(String(e.stack)) || /server shutting down/.test(e.message))) return;
    throw e;
});
const require = createRequire(import.meta.url);
const ons = require('ali-ons');
const pb = require('rocketmq-client-nodejs/proto/apache/rocketmq/v2/service_pb.js');
const def = require('rocketmq-client-nodejs/proto/apache/rocketmq/v2/definition_pb.js');
const quiet = { info() {}, warn() {}, error() {}, debug() {}, trace() {} };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const QUEUES = 4;
let ns, proxy, grpcPort;
const brokers = {}; // name -> { srv, rc }
const clients = [];

async function startBroker(name) {
    const srv = await startApogee('broker', [`--namesrvAddr=127.0.0.1:${ns.port}`,
        '--brokerClusterName=ProxyCluster', `--brokerName=${name}`, '--brokerIP1=127.0.0.1',
        '--allowLoopbackAdvertise=true', '--transactionTimeOut=1000', '--transactionCheckInterval=1000'],
    { anyExit: true });
    brokers[name] = { srv, rc: await RemotingClient.connect(srv.port) };
}
// The topic on every running broker, then until the NameServer's route names them all.
async function topic(name) {
    for (const b of Object.values(brokers)) {
        const r = await b.rc.request(17, { topic: name, readQueueNums: String(QUEUES),
            writeQueueNums: String(QUEUES), perm: '6' });
        assert.equal(r.code, 0, r.remark);
    }
    const c = await RemotingClient.connect(ns.port);
    try {
        for (let i = 0; i < 200; i++) {
            const r = await c.request(105, { topic: name });
            if (r.code === 0 && JSON.parse(r.body.toString()).queueDatas.length === Object.keys(brokers).length) return;
            await sleep(50);
        }
        assert.fail(`route of ${name} does not name every broker`);
    } finally {
        c.close();
    }
}
// Messages of topic stored on broker `name` (sum of the queues' max offsets).
async function stored(name, t) {
    let n = 0;
    for (let q = 0; q < QUEUES; q++) {
        const r = await brokers[name].rc.request(30, { topic: t, queueId: String(q) });
        assert.equal(r.code, 0, r.remark);
        n += Number(r.ext.offset);
    }
    return n;
}
async function producer(extra = {}) {
    const p = new Producer({ endpoints: `127.0.0.1:${grpcPort}`, logger: quiet, requestTimeout: 5000, ...extra });
    await p.startup();
    clients.push(p);
    return p;
}
async function consumer(group, t, awaitDuration = 1000) {
    const c = new SimpleConsumer({ endpoints: `127.0.0.1:${grpcPort}`, consumerGroup: group,
        logger: quiet, subscriptions: new Map([[t, '*']]), awaitDuration, requestTimeout: 5000 });
    await c.startup();
    clients.push(c);
    return c;
}
// Receives until n messages came or `rounds` receive calls in a row returned nothing.
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

before(async () => {
    ns = await startApogee('namesrv');
    await startBroker('broker-a');
    await startBroker('broker-b');
    await waitForRoute(ns.port);
    grpcPort = await freePort();
    proxy = await startApogee('proxy', [`--namesrvAddr=127.0.0.1:${ns.port}`],
        { port: grpcPort, portArg: 'grpcServerPort' });
    await waitForPort(grpcPort);
});
after(async () => {
    let code = 0;
    try {
        for (const c of clients) await c.shutdown().catch(() => {});
        await proxy?.stop();
        for (const b of Object.values(brokers)) {
            b.rc.close();
            await b.srv.stop();
        }
        await ns?.stop();
    } catch (e) {
        // A server that does not exit 0 on SIGTERM (a crash on shutdown) fails the file.
        console.error(e);
        code = 1;
    } finally {
        // The client's Telemetry streams raise UNAVAILABLE once the proxy stops, outside any
        // test; the runner counts each test's verdict from the report, so the file exits 0
        // unless a server stop failed (as tests/interop/grpc_simple_consumer.test.mjs).
        setImmediate(() => process.exit(code));
    }
});

test('the proxy holds no store and names itself as every queue\'s endpoint', async () => {
    await proxy.waitOutput(/gRPC proxy on 127\.0\.0\.1:\d+ \(routes name 127\.0\.0\.1:\d+\)/);
    assert.doesNotMatch(proxy.output(), /storePathRootDir|store/i, 'no store');
    await topic('ProxyRoute');
    const p = await producer();
    const r = await p.send({ topic: 'ProxyRoute', body: Buffer.from('r') });
    assert.ok(r.messageId);
    // The route the client got names both brokers, each behind the proxy's own address.
    const route = await p.getRouteData('ProxyRoute');
    const names = new Set(route.messageQueues.map((q) => q.broker.name));
    assert.deepEqual([...names].sort(), ['broker-a', 'broker-b']);
    for (const q of route.messageQueues)
        assert.equal(q.broker.endpoints.facade, `127.0.0.1:${grpcPort}`);
});

test('normal and FIFO sends land on both brokers; a SimpleConsumer receives each once and acks', async () => {
    const T = 'ProxyMixed';
    await topic(T);
    const p = await producer();
    const N = 40;
    const sent = [];
    for (let i = 0; i < N; i++) {
        const body = `n${i}`;
        const r = await p.send({ topic: T, body: Buffer.from(body), tag: 'TagN' });
        assert.ok(r.messageId);
        sent.push(body);
    }
    // FIFO: two message groups, each on one queue of one broker, in order.
    for (let i = 0; i < 10; i++) {
        for (const g of ['G1', 'G2']) {
            const body = `${g}-${i}`;
            await p.send({ topic: T, body: Buffer.from(body), messageGroup: g });
            sent.push(body);
        }
    }
    const a = await stored('broker-a', T), b = await stored('broker-b', T);
    assert.equal(a + b, sent.length);
    assert.ok(a >= N / 4 && b >= N / 4, `sends spread over both brokers (a=${a}, b=${b})`);

    const c = await consumer('CG_PROXY_MIXED', T);
    const got = await receiveN(c, sent.length);
    const bodies = got.map((m) => m.body.toString());
    assert.deepEqual([...bodies].sort(), [...sent].sort(), 'every message once');
    for (const g of ['G1', 'G2']) {
        const ms = got.filter((m) => m.messageGroup === g);
        assert.equal(ms.length, 10, `group ${g} is delivered with its message group`);
        assert.equal(new Set(ms.map((m) => `${m.receiptHandle.split(' ')[5]}/${m.queueId}`)).size, 1,
            `group ${g} is on one queue of one broker`);
        // Delivered in send order (queue offset order within the queue).
        const seq = ms.sort((x, y) => Number(x.offset) - Number(y.offset)).map((m) => m.body.toString());
        assert.deepEqual(seq, [...Array(10).keys()].map((i) => `${g}-${i}`));
    }
    const handleBrokers = new Set(got.map((m) => m.receiptHandle.split(' ')[5]));
    assert.deepEqual([...handleBrokers].sort(), ['broker-a', 'broker-b'], 'handles name their broker');
    for (const m of got) {
        assert.ok(!m.corrupted);
        assert.equal(m.deliveryAttempt, 1);
        await c.ack(m);
    }
    assert.deepEqual(await receiveN(c, 1, 30000, 2), [], 'nothing left after the acks');
});

test('redelivery after the invisible time, and change-invisible-duration, through the proxy', async () => {
    const T = 'ProxyInvisible';
    await topic(T);
    const p = await producer();
    await p.send({ topic: T, body: Buffer.from('x0') });
    await p.send({ topic: T, body: Buffer.from('x1') });
    const c = await consumer('CG_PROXY_INV', T);
    const first = await receiveN(c, 2, 2000);
    assert.deepEqual(first.map((m) => m.body.toString()).sort(), ['x0', 'x1']);
    // x0: not acked, comes back after its 2 s; x1: kept away 8 s more.
    const x1 = first.find((m) => m.body.toString() === 'x1');
    const old = x1.receiptHandle;
    await c.changeInvisibleDuration(x1, 8000);
    assert.notEqual(x1.receiptHandle, old, 'a new handle');
    await sleep(2500);
    const again = await receiveN(c, 1, 30000);
    assert.deepEqual(again.map((m) => m.body.toString()), ['x0']);
    assert.equal(again[0].deliveryAttempt, 2);
    await c.ack(again[0]);
    await c.ack(x1); // with the renewed handle
    assert.deepEqual(await receiveN(c, 1, 30000, 2), [], 'x1 stays acknowledged');
});

test('a 4.x ali-ons consumer reads from both brokers what went through the proxy', async () => {
    const T = 'ProxyToOns';
    await topic(T);
    const p = await producer();
    const sent = [];
    for (let i = 0; i < 20; i++) {
        await p.send({ topic: T, body: Buffer.from(`o${i}`), tag: 'TagO', keys: [`k${i}`] });
        sent.push(`o${i}`);
    }
    assert.ok((await stored('broker-a', T)) > 0 && (await stored('broker-b', T)) > 0);
    const c = new ons.Consumer({ nameSrv: `127.0.0.1:${ns.port}`, httpclient: {}, logger: quiet,
        consumerGroup: 'CG_PROXY_ONS', consumeFromWhere: 'CONSUME_FROM_FIRST_OFFSET',
        pollNameServerInteval: 1000, rebalanceInterval: 1000 });
    c.on('error', () => {});
    const got = new Map();
    c.subscribe(T, 'TagO', async (msg) => { got.set(msg.body.toString(), msg); });
    try {
        for (let i = 0; i < 300 && got.size < sent.length; i++) await sleep(50);
        assert.deepEqual([...got.keys()].sort(), [...sent].sort());
        assert.equal(got.get('o3').tags, 'TagO');
        assert.equal(got.get('o3').keys, 'k3');
    } finally {
        await c.close();
    }
});

test('transactions through the proxy: commit delivers, rollback does not, an orphan is checked back', async () => {
    const T = 'ProxyTxn';
    await topic(T);
    const COMMIT = 1;
    const p1 = await producer({ topics: [T], checker: { async check() { return null; } } });
    const t1 = p1.beginTransaction();
    const r1 = await p1.send({ topic: T, body: Buffer.from('committed') }, t1);
    assert.match(r1.transactionId, / broker-[ab]$/, 'the transaction id names its broker');
    await t1.commit();
    const t2 = p1.beginTransaction();
    await p1.send({ topic: T, body: Buffer.from('rolled back') }, t2);
    await t2.rollback();
    const t3 = p1.beginTransaction();
    await p1.send({ topic: T, tag: 'orphan', body: Buffer.from('orphan') }, t3);
    await p1.shutdown();
    clients.splice(clients.indexOf(p1), 1);
    // A producer started later gets the broker's check-back over Telemetry and commits.
    const checked = [];
    const p2 = await producer({ topics: [T], checker: { async check(v) {
        checked.push(v.body.toString());
        return COMMIT;
    } } });
    const c = await consumer('CG_PROXY_TXN', T);
    const got = new Set();
    for (let i = 0; i < 40 && !(got.has('committed') && got.has('orphan')); i++) {
        for (const m of await c.receive(16, 30000)) {
            got.add(m.body.toString());
            await c.ack(m);
        }
    }
    assert.ok(checked.includes('orphan'), `the orphan was checked (checks: ${checked})`);
    assert.deepEqual([...got].sort(), ['committed', 'orphan']);
    await p2.shutdown();
    clients.splice(clients.indexOf(p2), 1);
});

test('ForwardMessageToDeadLetterQueue through the proxy: the message lands in %DLQ%<group> of its broker', async () => {
    const T = 'ProxyDlq', G = 'CG_PROXY_DLQ';
    await topic(T);
    const p = await producer();
    for (let i = 0; i < 8; i++) await p.send({ topic: T, body: Buffer.from(`d${i}`), keys: [`dk${i}`] });
    const c = await consumer(G, T);
    const got = await receiveN(c, 8, 2000);
    assert.equal(got.length, 8);
    const res = (n) => new def.Resource().setName(n);
    const dead = {};
    for (const m of got.filter((x) => ['d1', 'd6'].includes(x.body.toString()))) {
        const rq = new pb.ForwardMessageToDeadLetterQueueRequest().setGroup(res(G)).setTopic(res(T))
            .setReceiptHandle(m.receiptHandle).setMessageId(m.messageId)
            .setDeliveryAttempt(m.deliveryAttempt).setMaxDeliveryAttempts(16);
        const r = await c.forwardMessageToDeadLetterQueueViaRpc(m.endpoints, rq, 5000);
        assert.equal(r.getStatus().getCode(), 20000, r.getStatus().getMessage());
        dead[m.body.toString()] = m;
    }
    for (const m of got) if (!dead[m.body.toString()]) await c.ack(m);
    // Each one is in %DLQ%<group> of the broker its handle named, with its original id.
    for (const [body, m] of Object.entries(dead)) {
        const broker = m.receiptHandle.split(' ')[5];
        const recs = await pullAll(brokers[broker].rc, `%DLQ%${G}`, 0);
        const rec = recs.find((x) => x.body === body);
        assert.ok(rec, `${body} in %DLQ%${G} of ${broker} (found ${recs.map((x) => x.body)})`);
        assert.equal(rec.props.UNIQ_KEY, m.messageId);
        assert.equal(rec.props.RETRY_TOPIC, T);
    }
    // Acked at the pop as well: nothing comes back after the 2 s invisible time.
    await sleep(2500);
    assert.deepEqual((await receiveN(c, 1, 30000, 2)).map((m) => m.body.toString()), [],
        'not redelivered');
});

test('a 5.x consumer behind the proxy is listed by its brokers while it runs, and not after', async () => {
    const T = 'ProxyConn', G = 'CG_PROXY_CONN';
    await topic(T);
    // GET_CONSUMER_CONNECTION_LIST (203) of the group at a broker: the client ids listed.
    const listed = async (name) => {
        const r = await brokers[name].rc.request(203, { consumerGroup: G });
        if (r.code !== 0) return { ids: [], r };
        const body = JSON.parse(r.body.toString());
        return { ids: body.connectionSet.map((x) => x.clientId), body };
    };
    const c = await consumer(G, T);
    const id = c.clientId;
    assert.ok(id);
    for (const name of ['broker-a', 'broker-b']) {
        let got;
        for (let i = 0; i < 300; i++) {
            got = await listed(name);
            if (got.ids.includes(id)) break;
            await sleep(50);
        }
        assert.deepEqual(got.ids, [id], `${name} lists the client`);
        assert.equal(got.body.consumeType, 'CONSUME_POP');
        assert.equal(got.body.subscriptionTable[T]?.subString, '*');
    }
    await c.shutdown();
    clients.splice(clients.indexOf(c), 1);
    for (const name of ['broker-a', 'broker-b']) {
        let got;
        for (let i = 0; i < 100; i++) {
            got = await listed(name);
            if (!got.ids.includes(id)) break;
            await sleep(50);
        }
        assert.deepEqual(got.ids, [], `${name} no longer lists it`);
    }
});

test('an ack whose handle names a broker that went away fails with a message naming it', async () => {
    const T = 'ProxyGone';
    await topic(T);
    const p = await producer();
    for (let i = 0; i < 16; i++) await p.send({ topic: T, body: Buffer.from(`g${i}`) });
    const c = await consumer('CG_PROXY_GONE', T);
    const got = await receiveN(c, 16);
    assert.equal(got.length, 16);
    const onB = got.find((m) => m.receiptHandle.split(' ')[5] === 'broker-b');
    assert.ok(onB, 'a message from broker-b');
    await brokers['broker-b'].srv.stop();
    brokers['broker-b'].rc.close();
    delete brokers['broker-b'];
    await assert.rejects(c.ack(onB), (e) => {
        assert.match(e.message, /broker broker-b \(127\.0\.0\.1:\d+\) named by the receipt handle cannot be reached/);
        return true;
    });
    // The other broker's messages still ack.
    await c.ack(got.find((m) => m.receiptHandle.split(' ')[5] === 'broker-a'));
});

test('the proxy stops cleanly (exit 0) with a long poll in flight', async () => {
    const T = 'ProxyStop';
    await topic(T);
    const c = await consumer('CG_PROXY_STOP', T, 10000);
    const pending = c.receive(16, 30000).catch((e) => e);
    await sleep(500); // the pop is parked at broker-a
    const r = await proxy.stop(); // throws unless the exit code is 0
    assert.equal(r.code, 0);
    await pending;
});
