// RocketMQ 5 producer on the gRPC port: the npm rocketmq-client-nodejs Producer (QueryRoute,
// Heartbeat, SendMessage over grpc-js) sends 100 normal messages with tag, keys and a user
// property to apogee standalone's grpcServerPort, and raw remoting PULL_MESSAGE reads all 100
// back from every queue with body, TAGS, KEYS, UNIQ_KEY (the 5.x message id) and the property.
// A topic that does not exist is refused with TOPIC_NOT_FOUND. A Producer given its topics
// up front waits for the server's answer to its Settings on the Telemetry stream before its
// start completes. A 4.x ali-ons producer given the gRPC port as its NameServer fails its
// first send at once with the port's remark (a remoting SYSTEM_ERROR naming listenPort).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { Producer } from 'rocketmq-client-nodejs';
import { freePort, runBench, startApogee, waitForPort } from '../lib/proc.mjs';
import { RemotingClient } from '../lib/remoting.mjs';
import { pullAll } from '../lib/records.mjs';

const TOPIC = 'GrpcProducerTopic';
const QUEUES = 4;
const N = 100;
let srv;
let br;
let grpcPort;

const quiet = { info() {}, warn() {}, error() {}, debug() {}, trace() {} };

before(async () => {
    grpcPort = await freePort();
    srv = await startApogee('standalone', [`--grpcServerPort=${grpcPort}`],
        { extraPorts: { namesrvListenPort: await freePort() } });
    await waitForPort(grpcPort);
    br = await RemotingClient.connect(srv.port);
    const r = await br.request(17, { topic: TOPIC, readQueueNums: String(QUEUES),
        writeQueueNums: String(QUEUES), perm: '6' });
    assert.equal(r.code, 0);
});
after(async () => {
    try {
        br?.close();
        await srv?.stop();
    } finally {
        // The client keeps grpc-js channel handles alive after shutdown; exit with the
        // runner's verdict, as the ali-ons suites do.
        setImmediate(() => process.exit());
    }
});

test('a Producer created with a topic list starts (Telemetry settings answered) and sends', async () => {
    const topic = 'GrpcSettingsTopic';
    assert.equal((await br.request(17, { topic, readQueueNums: '2', writeQueueNums: '2',
        perm: '6' })).code, 0);
    const producer = new Producer({ endpoints: `127.0.0.1:${grpcPort}`, topics: [topic],
        logger: quiet, requestTimeout: 3000 });
    const t0 = Date.now();
    await producer.startup();
    try {
        assert.ok(Date.now() - t0 < 3000, 'start did not wait for a timeout');
        // The server's settings were applied: the body limit is maxMessageSize.
        assert.equal(producer.publishingSettings.maxBodySizeBytes, 4194304);
        const receipt = await producer.send({ topic, body: Buffer.from('after settings') });
        assert.ok(receipt.messageId);
    } finally {
        await producer.shutdown();
    }
});

test('rocketmq-client-nodejs Producer sends 100 messages that a remoting pull reads back', async () => {
    const producer = new Producer({ endpoints: `127.0.0.1:${grpcPort}`, logger: quiet });
    await producer.startup();
    const ids = new Map();
    try {
        for (let i = 0; i < N; i++) {
            const receipt = await producer.send({
                topic: TOPIC,
                tag: `tag${i % 3}`,
                keys: [`key-${i}`, `k${i}`],
                properties: new Map([['seq', String(i)]]),
                body: Buffer.from(`grpc body ${i}`),
            });
            assert.ok(receipt.messageId, 'a message id in the receipt');
            ids.set(receipt.messageId, i);
        }
    } finally {
        await producer.shutdown();
    }
    assert.equal(ids.size, N);

    const got = [];
    for (let q = 0; q < QUEUES; q++) got.push(...(await pullAll(br, TOPIC, q)));
    assert.equal(got.length, N);
    const seen = new Set();
    for (const m of got) {
        const i = Number(m.props.seq);
        assert.equal(m.body, `grpc body ${i}`);
        assert.equal(m.props.TAGS, `tag${i % 3}`);
        assert.equal(m.props.KEYS, `key-${i} k${i}`);
        assert.equal(ids.get(m.props.UNIQ_KEY), i, 'UNIQ_KEY is the 5.x message id');
        seen.add(i);
    }
    assert.equal(seen.size, N);
    // Spread over the queues by the broker's round robin.
    assert.ok(new Set(got.map((m) => m.queueId)).size > 1);
    // The consume queue holds each message's tag hash, so a 4.x pull by tag is filtered by
    // the broker: a subscription to tag1 gets exactly the messages sent with tag1.
    const tagged = [];
    for (let q = 0; q < QUEUES; q++) tagged.push(...(await pullAll(br, TOPIC, q, 'tag1')));
    assert.deepEqual(tagged.map((m) => Number(m.props.seq)).sort((a, b) => a - b),
        [...Array(N).keys()].filter((i) => i % 3 === 1));
});

test('a topic that does not exist is refused', async () => {
    const producer = new Producer({ endpoints: `127.0.0.1:${grpcPort}`, logger: quiet });
    await producer.startup();
    try {
        await assert.rejects(producer.send({ topic: 'NoSuchGrpcTopic', body: Buffer.from('x') }),
            /TOPIC_NOT_FOUND|not exist|40402/i);
    } finally {
        await producer.shutdown();
    }
});

test('SYNC_FLUSH: 64 concurrent sends and a transaction commit are answered after the group commit', async () => {
    // Every commit-log flush is held FLUSH_MS first (a slow disk): no answer may come sooner.
    const FLUSH_MS = 600;
    const port = await freePort();
    const sync = await startApogee('standalone', [`--grpcServerPort=${port}`,
        '--flushDiskType=SYNC_FLUSH'], { extraPorts: { namesrvListenPort: await freePort() },
        env: { APOGEE_STORE_FAULTS: '1', APOGEE_STORE_FAULT_FLUSH_DELAY_MS: String(FLUSH_MS) } });
    let cl;
    try {
        await waitForPort(port);
        cl = await RemotingClient.connect(sync.port);
        const topic = 'GrpcSyncTopic';
        assert.equal((await cl.request(17, { topic, readQueueNums: '2', writeQueueNums: '2',
            perm: '6' })).code, 0);
        const p = new Producer({ endpoints: `127.0.0.1:${port}`, topics: [topic], logger: quiet,
            checker: { async check() { return 1; } } });
        await p.startup();
        try {
            const timed = async (f) => { const t = Date.now(); const r = await f(); return [r, Date.now() - t]; };
            const rs = await Promise.all(Array.from({ length: 64 }, (_, i) =>
                timed(() => p.send({ topic, body: Buffer.from(`sync ${i}`) }))));
            assert.equal(new Set(rs.map(([r]) => r.messageId)).size, 64);
            const fastest = Math.min(...rs.map(([, ms]) => ms));
            assert.ok(fastest >= FLUSH_MS - 100, `a send was answered ${fastest} ms after it was made`);
            const tx = p.beginTransaction();
            await p.send({ topic, body: Buffer.from('sync tx') }, tx);
            const [, commitMs] = await timed(() => tx.commit());
            assert.ok(commitMs >= FLUSH_MS - 100, `the commit was answered after ${commitMs} ms`);
        } finally {
            await p.shutdown();
        }
        const got = [];
        for (let q = 0; q < 2; q++) got.push(...(await pullAll(cl, topic, q)));
        assert.equal(got.length, 65);
        assert.ok(got.some((m) => m.body === 'sync tx'));
    } finally {
        cl?.close();
        await sync.stop();
    }
});

test('apogee bench produce --protocol=grpc: 64 streams on one connection, every call answered OK', async () => {
    const r = await runBench(['produce', '--protocol=grpc', `--grpcAddr=127.0.0.1:${grpcPort}`,
        `--topic=${TOPIC}`, '--duration=1', '--json']);
    assert.equal(r.code, 0, r.out);
    assert.equal(r.json?.errors, 0, r.out);
    assert.ok(r.json.sent > 100, r.out);
});

test('an ali-ons (4.x remoting) producer pointed at the gRPC port fails fast with a remark naming listenPort', async () => {
    const ons = createRequire(import.meta.url)('ali-ons');
    const p = new ons.Producer({ nameSrv: `127.0.0.1:${grpcPort}`, httpclient: {}, producerGroup: 'PG_WRONG_PORT',
        logger: { info() {}, warn() {}, error() {}, debug() {} } });
    p.on('error', () => {});
    await p.ready();
    const t0 = Date.now();
    try {
        await assert.rejects(p.send(new ons.Message('GrpcWrongPort', 'T', Buffer.from('x'))),
            (e) => /gRPC port \(grpcServerPort\).*listenPort/.test(e.message));
        assert.ok(Date.now() - t0 < 2000, `failed after ${Date.now() - t0} ms`);
    } finally {
        await p.close();
    }
});
