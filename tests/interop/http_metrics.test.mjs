// GET /metrics against `apogee standalone` while ali-ons clients send and consume: the
// exposition parsed by a strict Prometheus text-format (0.0.4) parser written here, and the
// values followed as traffic flows (messages in, out, lag rising and falling back to 0,
// rpc latency counts, connections).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { onsHarness, ons, until, sleep } from './ons.mjs';
import { freePort, waitForPort } from '../lib/proc.mjs';

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

// ---- a Prometheus text format 0.0.4 parser -----------------------------------------------

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(s, line) {
    if (s === '+Inf') return Infinity;
    if (s === '-Inf') return -Infinity;
    if (s === 'NaN') return NaN;
    assert.match(s, /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/, `bad value in: ${line}`);
    return Number(s);
}

// Reads labels from `s` at i (just after '{'); returns [labels, index after '}'].
function parseLabels(s, i, line) {
    const labels = {};
    for (;;) {
        if (s[i] === '}') return [labels, i + 1];
        let j = i;
        while (j < s.length && /[a-zA-Z0-9_]/.test(s[j])) j++;
        const name = s.slice(i, j);
        assert.match(name, LABEL, `bad label name in: ${line}`);
        assert.ok(!(name in labels), `label ${name} twice in: ${line}`);
        assert.equal(s.slice(j, j + 2), '="', `expected =" after label ${name} in: ${line}`);
        j += 2;
        let v = '';
        for (;;) {
            assert.ok(j < s.length, `unterminated label value in: ${line}`);
            const c = s[j++];
            if (c === '"') break;
            if (c === '\\') {
                const e = s[j++];
                assert.ok(e === '\\' || e === '"' || e === 'n', `bad escape \\${e} in: ${line}`);
                v += e === 'n' ? '\n' : e;
            } else {
                assert.notEqual(c, '\n');
                v += c;
            }
        }
        labels[name] = v;
        if (s[j] === ',') j++;
        else assert.equal(s[j], '}', `expected , or } in: ${line}`);
        i = j;
    }
}

export function parseProm(text) {
    assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
    const families = new Map(); // name -> {type, help, samples: []}
    const done = new Set(); // families whose samples ended (another family began)
    let current = null;
    const series = new Set();
    const familyOf = (name) => {
        for (const suf of ['_bucket', '_sum', '_count']) {
            if (name.endsWith(suf)) {
                const base = name.slice(0, -suf.length);
                const f = families.get(base);
                if (f && (f.type === 'histogram' || (f.type === 'summary' && suf !== '_bucket'))) return base;
            }
        }
        return name;
    };
    const enter = (name) => {
        if (current === name) return;
        assert.ok(!done.has(name), `lines of family ${name} are not together`);
        if (current) done.add(current);
        current = name;
    };
    for (const line of text.split('\n').slice(0, -1)) {
        if (line === '') continue;
        if (line.startsWith('#')) {
            const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
            if (!m) continue; // a plain comment
            const [, kind, name, rest] = m;
            assert.match(name, NAME, `bad metric name in: ${line}`);
            enter(name);
            const f = families.get(name) ?? { type: 'untyped', help: null, samples: [], typed: false };
            families.set(name, f);
            if (kind === 'TYPE') {
                assert.ok(!f.typed, `TYPE twice for ${name}`);
                assert.equal(f.samples.length, 0, `TYPE after samples for ${name}`);
                assert.ok(TYPES.has(rest), `unknown type ${rest} for ${name}`);
                f.type = rest;
                f.typed = true;
            } else {
                assert.equal(f.help, null, `HELP twice for ${name}`);
                f.help = rest;
            }
            continue;
        }
        const nm = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
        assert.ok(nm, `bad sample line: ${line}`);
        const name = nm[0];
        let i = name.length;
        let labels = {};
        if (line[i] === '{') [labels, i] = parseLabels(line, i + 1, line);
        assert.equal(line[i], ' ', `expected a space before the value in: ${line}`);
        const parts = line.slice(i + 1).split(' ');
        assert.ok(parts.length === 1 || (parts.length === 2 && /^-?\d+$/.test(parts[1])), `bad value/timestamp in: ${line}`);
        const value = parseValue(parts[0], line);
        const fam = familyOf(name);
        enter(fam);
        const f = families.get(fam) ?? { type: 'untyped', help: null, samples: [], typed: false };
        families.set(fam, f);
        const key = name + JSON.stringify(Object.entries(labels).sort());
        assert.ok(!series.has(key), `series twice: ${line}`);
        series.add(key);
        f.samples.push({ name, labels, value });
    }
    for (const [name, f] of families) if (f.type === 'histogram') checkHistogram(name, f);
    return families;
}

function checkHistogram(name, f) {
    const groups = new Map();
    for (const s of f.samples) {
        const { le, ...rest } = s.labels;
        const k = JSON.stringify(Object.entries(rest).sort());
        const g = groups.get(k) ?? { buckets: [], sum: null, count: null };
        groups.set(k, g);
        if (s.name === `${name}_bucket`) {
            assert.ok(le !== undefined, `${name}_bucket without le`);
            g.buckets.push([parseValue(le, le), s.value]);
        } else if (s.name === `${name}_sum`) g.sum = s.value;
        else if (s.name === `${name}_count`) g.count = s.value;
        else assert.fail(`sample ${s.name} in histogram ${name}`);
    }
    for (const [k, g] of groups) {
        assert.ok(g.buckets.length > 0, `${name}${k}: no buckets`);
        for (let i = 1; i < g.buckets.length; i++) {
            assert.ok(g.buckets[i][0] > g.buckets[i - 1][0], `${name}${k}: le not increasing`);
            assert.ok(g.buckets[i][1] >= g.buckets[i - 1][1], `${name}${k}: bucket counts decrease`);
        }
        const last = g.buckets[g.buckets.length - 1];
        assert.equal(last[0], Infinity, `${name}${k}: no +Inf bucket`);
        assert.equal(g.count, last[1], `${name}${k}: _count differs from the +Inf bucket`);
        assert.ok(g.sum !== null && g.sum >= 0, `${name}${k}: no _sum`);
    }
}

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
