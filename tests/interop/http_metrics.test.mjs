// GET /metrics against `apogee standalone` while ali-ons clients send and consume: the
// exposition parsed by a strict Prometheus text-format (0.0.4) parser written here, and the
// values followed as traffic flows (messages in, out, lag rising and falling back to 0,
// rpc latency counts, connections).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { onsHarness, ons, until, sleep } from './ons.mjs';
import { freePort, waitForPort } from '../lib/proc.mjs';
import { parseProm } from '../lib/prom.mjs';

const { Message } = ons;
const h = onsHarness();
let httpPort = 0;

before(async () => {
    httpPort = await freePort();
    await h.start([`--httpListenPort=${httpPort}`]);
    await waitForPort(httpPort, 10000, h.srv.proc); // opens just after the broker port
});

after(async () => {
    try {
        await h.stop();
    } finally {
        setImmediate(() => process.exit()); // ali-ons keeps timers alive
    }
});

// ---- helpers --------------------------------------------------------------------------------

function get(path, agent) {
    return new Promise((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port: httpPort, path, agent }, (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (d) => (body += d));
            res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
        });
        req.on('error', reject);
    });
}

async function scrape() {
    const r = await get('/metrics');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
    return parseProm(r.body);
}

function value(fams, name, want = {}) {
    const f = fams.get(name) ?? fams.get(name.replace(/_(bucket|sum|count)$/, ''));
    assert.ok(f, `no family ${name}`);
    const s = f.samples.filter((x) => x.name === name && Object.entries(want).every(([k, v]) => x.labels[k] === v));
    return s.length ? s.reduce((a, x) => a + x.value, 0) : undefined;
}

// ---- tests ------------------------------------------------------------------------------------

test('the exposition parses, carries RocketMQ 5 names and labels, and the parser rejects bad input', async () => {
    const fams = await scrape();
    const want = {
        rocketmq_messages_in_total: 'counter', rocketmq_messages_out_total: 'counter',
        rocketmq_throughput_in_total: 'counter', rocketmq_throughput_out_total: 'counter',
        rocketmq_consumer_lag_messages: 'gauge', rocketmq_consumer_lag_latency: 'gauge',
        rocketmq_consumer_inflight_messages: 'gauge', rocketmq_consumer_ready_messages: 'gauge',
        rocketmq_send_to_dlq_messages_total: 'counter', rocketmq_rpc_latency: 'histogram',
        rocketmq_storage_size: 'gauge', rocketmq_storage_flush_behind_bytes: 'gauge',
        rocketmq_storage_dispatch_behind_bytes: 'gauge', rocketmq_storage_message_reserve_time: 'gauge',
        rocketmq_producer_connections: 'gauge', rocketmq_consumer_connections: 'gauge',
        rocketmq_half_messages: 'gauge', rocketmq_commit_messages_total: 'counter',
        rocketmq_rollback_messages_total: 'counter', rocketmq_timer_enqueue_total: 'counter',
        rocketmq_timer_dequeue_total: 'counter',
    };
    for (const [n, t] of Object.entries(want)) {
        assert.equal(fams.get(n)?.type, t, `${n} is a ${t}`);
        assert.ok(fams.get(n).help, `${n} has HELP`);
    }
    const perm = fams.get('rocketmq_broker_permission').samples[0];
    assert.deepEqual(perm.labels, { cluster: 'DefaultCluster', node_type: 'broker', node_id: 'broker-a' });
    assert.equal(perm.value, 6);
    // The parser is strict enough to fail.
    assert.throws(() => parseProm('a{x="1} 1\n'));
    assert.throws(() => parseProm('# TYPE a counter\na 1\n# TYPE b gauge\nb 1\na 2\n'));
    assert.throws(() => parseProm('# TYPE h histogram\nh_bucket{le="1"} 3\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 2\n'));
    assert.throws(() => parseProm('# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n'));
    assert.throws(() => parseProm('a 1\na 2\n'));
});

test('values follow ali-ons traffic: messages in and out, lag up and back to 0, rpc latency, connections', async () => {
    const topic = 'MetricsT';
    const group = 'CG_METRICS';
    await h.createTopic(topic, 4);
    const before = await scrape();
    const sendsBefore = value(before, 'rocketmq_rpc_latency_count', { request_code: '310' }) ?? 0;
    const p = await h.newProducer('PG_METRICS', { heartbeatBrokerInterval: 500 });
    const N = 200;
    for (let i = 0; i < N; i++)
        assert.equal((await p.send(new Message(topic, 'T', Buffer.from(`m${i}`)))).sendStatus, 'SEND_OK');
    let fams = await scrape();
    assert.equal(value(fams, 'rocketmq_messages_in_total', { topic }), N);
    assert.ok(value(fams, 'rocketmq_rpc_latency_count', { request_code: '310', protocol_type: 'remoting' }) >= sendsBefore + N);
    assert.ok(value(fams, 'rocketmq_throughput_in_total') > N * 10);
    await until(async () => value(await scrape(), 'rocketmq_producer_connections') >= 1, 10000,
        'the producer to heartbeat');

    // The group's first commit makes its row; then a handler that holds messages keeps the
    // group from committing past them, so the lag shows.
    let gate = null;
    const hold = new Promise((r) => (gate = r));
    let holding = false;
    let got = 0;
    const c = h.newConsumer(group, 'inst-metrics', { persistConsumerOffsetInterval: 500 });
    c.subscribe(topic, '*', async () => {
        got++;
        if (holding) await hold;
    });
    await until(async () => {
        fams = await scrape();
        return value(fams, 'rocketmq_consumer_lag_messages', { topic, consumer_group: group }) === 0 &&
            value(fams, 'rocketmq_consumer_connections') >= 1;
    }, 30000, 'the group to consume the first messages and commit');
    holding = true;
    for (let i = 0; i < N; i++)
        assert.equal((await p.send(new Message(topic, 'T', Buffer.from(`n${i}`)))).sendStatus, 'SEND_OK');
    await until(async () => {
        fams = await scrape();
        return value(fams, 'rocketmq_consumer_lag_messages', { topic, consumer_group: group }) > 0;
    }, 30000, 'the group to show lag');
    await sleep(300);
    fams = await scrape();
    assert.ok(value(fams, 'rocketmq_consumer_lag_latency', { topic, consumer_group: group }) > 0, 'lag latency while held');
    assert.equal(value(fams, 'rocketmq_consumer_ready_messages', { topic, consumer_group: group }),
        value(fams, 'rocketmq_consumer_lag_messages', { topic, consumer_group: group }));
    gate();
    await until(() => got >= 2 * N, 30000, () => `all ${2 * N} messages (got ${got})`);
    await until(async () => {
        fams = await scrape();
        return value(fams, 'rocketmq_consumer_lag_messages', { topic, consumer_group: group }) === 0;
    }, 30000, 'the lag to fall to 0');
    assert.equal(value(fams, 'rocketmq_consumer_lag_latency', { topic, consumer_group: group }), 0);
    assert.ok(value(fams, 'rocketmq_messages_out_total', { topic, consumer_group: group }) >= 2 * N);
    assert.equal(value(fams, 'rocketmq_messages_in_total', { topic }), 2 * N);
    assert.ok(value(fams, 'rocketmq_throughput_out_total', { topic, consumer_group: group }) > N * 10);
    assert.ok(value(fams, 'rocketmq_rpc_latency_count', { request_code: '11' }) > 0, 'pulls are timed');
    assert.ok(value(fams, 'rocketmq_storage_size', { storage_type: 'local' }) > 0);
    assert.ok(value(fams, 'rocketmq_storage_message_reserve_time') >= 0);
});

test('keep-alive: many scrapes on one connection, HEAD has no body', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set();
    for (let i = 0; i < 20; i++) {
        const r = await new Promise((resolve, reject) => {
            const req = http.get({ host: '127.0.0.1', port: httpPort, path: '/metrics', agent }, (res) => {
                sockets.add(res.socket);
                res.resume();
                res.on('end', () => resolve(res));
            });
            req.on('error', reject);
        });
        assert.equal(r.statusCode, 200);
    }
    assert.equal(sockets.size, 1, 'one connection served every scrape');
    const head = await new Promise((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: httpPort, path: '/metrics', method: 'HEAD', agent }, (res) => {
            let n = 0;
            res.on('data', (d) => (n += d.length));
            res.on('end', () => resolve({ res, n }));
        });
        req.on('error', reject);
        req.end();
    });
    assert.equal(head.res.statusCode, 200);
    assert.ok(Number(head.res.headers['content-length']) > 1000);
    assert.equal(head.n, 0);
    agent.destroy();
    assert.equal((await get('/nope')).status, 404);
});

test('GET /api/topics and /api/cluster answer what the admin requests answer', async () => {
    const topics = await get('/api/topics');
    assert.equal(topics.status, 200);
    assert.equal(topics.headers['content-type'], 'application/json');
    const t = JSON.parse(topics.body);
    assert.equal(t.topicConfigTable.MetricsT.readQueueNums, 4);
    // The same encoder as GET_ALL_TOPIC_CONFIG (21) on the remoting port.
    const viaRemoting = JSON.parse((await h.admin.request(21, {})).body.toString());
    assert.deepEqual(Object.keys(t.topicConfigTable).sort(), Object.keys(viaRemoting.topicConfigTable).sort());
    assert.deepEqual(t.topicConfigTable.MetricsT, viaRemoting.topicConfigTable.MetricsT);
    const cluster = await get('/api/cluster');
    assert.equal(cluster.status, 200);
    const c = JSON.parse(cluster.body);
    assert.equal(c.clusterName, 'DefaultCluster');
    assert.equal(c.brokerName, 'broker-a');
    assert.equal(c.brokerId, 0);
    assert.equal(c.brokerAddr, `127.0.0.1:${h.port}`);
    // The same table GET_BROKER_RUNTIME_INFO (28) answers.
    const rt = JSON.parse((await h.admin.request(28, {})).body.toString());
    assert.deepEqual(Object.keys(c.runtime.table).sort(), Object.keys(rt.table).sort());
    assert.equal(c.runtime.table.brokerVersionDesc, rt.table.brokerVersionDesc);
    assert.equal((await get('/api/nope')).status, 404);
});
