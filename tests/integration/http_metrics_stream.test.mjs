// GET /metrics as a stream and the renderer's reuse of the last scrape's work, against
// `apogee standalone` driven over remoting: an exposition larger than one piece arrives as
// several HTTP/1.1 chunks that a strict decoder reassembles into an exposition the
// Prometheus text-format parser accepts (HTTP/1.0 and HEAD get Content-Length instead); and
// the lag families follow every commit, send and topic deletion made between two scrapes
// (the renderer keeps its rows while neither the offset table nor the store's queues
// changed, so a row kept too long shows here), with the lag latency growing on its own.
//
//   APOGEE_BIN=$PWD/build/apogee node --test tests/integration/http_metrics_stream.test.mjs
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { test, before, after } from 'node:test';

import { freePort, startApogee } from '../lib/proc.mjs';
import { parseProm } from '../lib/prom.mjs';
import { RemotingClient } from '../lib/remoting.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let srv, br, httpPort;

before(async () => {
    httpPort = await freePort();
    srv = await startApogee('standalone', [`--httpListenPort=${httpPort}`],
        { extraPorts: { namesrvListenPort: await freePort() } });
    br = await RemotingClient.connect(srv.port);
});

after(async () => {
    br?.close();
    await srv?.stop();
});

async function ok(p) {
    const r = await p;
    assert.equal(r.code, 0, `remoting request refused: ${r.code} ${r.remark ?? ''}`);
    return r;
}
const createTopic = (topic, queues) => ok(br.request(17, { topic, readQueueNums: String(queues),
    writeQueueNums: String(queues), perm: '6' }));
const send = (topic, queues, q, body) => ok(br.request(310, { a: 'PG_STREAM', b: topic, c: 'TBW102',
    d: String(queues), e: String(q), f: '0', g: String(Date.now()), h: '0', i: '', j: '0', k: 'false' },
Buffer.from(body)));
const commit = (group, topic, q, off) => ok(br.request(15, { consumerGroup: group, topic,
    queueId: String(q), commitOffset: String(off) }));

async function pool(n, inflight, fn) {
    let next = 0;
    await Promise.all(Array.from({ length: inflight }, async () => {
        while (next < n) await fn(next++);
    }));
}

// One request on a fresh connection; the answer read to the end of the stream and its body
// decoded by hand: with Transfer-Encoding: chunked every size line must be hex digits and
// CRLF, every chunk followed by CRLF, the last chunk size 0 with no trailers, and nothing
// after it.
function raw(method, path, version = '1.1') {
    return new Promise((resolve, reject) => {
        const s = net.connect(httpPort, '127.0.0.1');
        const parts = [];
        s.on('data', (d) => parts.push(d));
        s.on('error', reject);
        s.on('end', () => {
            const buf = Buffer.concat(parts);
            const he = buf.indexOf('\r\n\r\n');
            assert.ok(he > 0, 'a header block');
            const lines = buf.subarray(0, he).toString('latin1').split('\r\n');
            const headers = {};
            for (const l of lines.slice(1)) {
                const i = l.indexOf(':');
                headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
            }
            let rest = buf.subarray(he + 4);
            const chunks = [];
            let body = rest;
            if (headers['transfer-encoding'] === 'chunked') {
                const out = [];
                for (;;) {
                    const le = rest.indexOf('\r\n');
                    assert.ok(le > 0, 'a chunk size line');
                    const sz = rest.subarray(0, le).toString('latin1');
                    assert.match(sz, /^[0-9a-fA-F]+$/, `chunk size line ${JSON.stringify(sz)}`);
                    const n = parseInt(sz, 16);
                    rest = rest.subarray(le + 2);
                    if (n === 0) {
                        assert.equal(rest.toString('latin1'), '\r\n', 'the last chunk ends the answer');
                        break;
                    }
                    assert.ok(rest.length >= n + 2, 'a whole chunk');
                    out.push(rest.subarray(0, n));
                    chunks.push(n);
                    assert.equal(rest.subarray(n, n + 2).toString('latin1'), '\r\n', 'CRLF after a chunk');
                    rest = rest.subarray(n + 2);
                }
                body = Buffer.concat(out);
            }
            resolve({ status: lines[0], headers, body: body.toString('utf8'), chunks });
        });
        s.write(`${method} ${path} HTTP/${version}\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
    });
}

function scrapeNode() {
    return new Promise((resolve, reject) => {
        http.get({ host: '127.0.0.1', port: httpPort, path: '/metrics' }, (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (d) => (body += d));
            res.on('end', () => resolve({ res, fams: parseProm(body) }));
        }).on('error', reject);
    });
}

function value(fams, name, labels) {
    const f = fams.get(name);
    assert.ok(f, `no family ${name}`);
    const s = f.samples.filter((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v));
    assert.ok(s.length <= 1, `one sample of ${name} ${JSON.stringify(labels)}`);
    return s.length ? s[0].value : undefined;
}

test('a large exposition arrives in several chunks; HTTP/1.0 and HEAD get Content-Length', async () => {
    // 300 topics x 4 groups, every pair lagging by one: about 0.7 MB of exposition.
    const T = 300;
    const G = 4;
    await pool(T, 16, (i) => createTopic(`StreamT${i}`, 1));
    await pool(T, 16, (i) => send(`StreamT${i}`, 1, 0, `m${i}`));
    await pool(T * G, 16, (k) => commit(`StreamG${k % G}`, `StreamT${Math.floor(k / G)}`, 0, 0));

    const r = await raw('GET', '/metrics');
    assert.equal(r.status, 'HTTP/1.1 200 OK');
    assert.equal(r.headers['transfer-encoding'], 'chunked');
    assert.equal(r.headers['content-length'], undefined);
    assert.ok(r.body.length > 600000, `a large exposition (${r.body.length} bytes)`);
    assert.ok(r.chunks.length >= 2, `sent in pieces (${r.chunks.length} chunks)`);
    const fams = parseProm(r.body);
    const lag = fams.get('rocketmq_consumer_lag_messages').samples.filter((s) => s.labels.topic.startsWith('StreamT'));
    assert.equal(lag.length, T * G);
    assert.ok(lag.every((s) => s.value === 1));
    assert.equal(fams.get('rocketmq_consumer_lag_latency').samples.length, fams.get('rocketmq_consumer_ready_messages').samples.length);

    // node's own client decodes the same stream.
    const n = await scrapeNode();
    assert.equal(n.res.headers['transfer-encoding'], 'chunked');
    assert.equal(value(n.fams, 'rocketmq_consumer_lag_messages', { topic: 'StreamT7', consumer_group: 'StreamG3' }), 1);

    // HTTP/1.0 has no chunked coding: the whole answer with its length, then the close.
    const r10 = await raw('GET', '/metrics', '1.0');
    assert.equal(r10.headers['transfer-encoding'], undefined);
    assert.equal(Number(r10.headers['content-length']), Buffer.byteLength(r10.body));
    assert.equal(parseProm(r10.body).get('rocketmq_consumer_lag_messages').samples.length,
        fams.get('rocketmq_consumer_lag_messages').samples.length);
    const head = await raw('HEAD', '/metrics');
    assert.equal(head.headers['transfer-encoding'], undefined);
    assert.ok(Number(head.headers['content-length']) > 600000);
    assert.equal(head.body, '');
});

test('lag rows follow commits, sends and deletions between scrapes; lag latency grows alone', async () => {
    const topic = 'StreamLag';
    const group = 'StreamLagG';
    const at = { topic, consumer_group: group };
    await createTopic(topic, 2);
    for (let i = 0; i < 3; i++) await send(topic, 2, 0, `a${i}`);
    await send(topic, 2, 1, 'b0');
    await commit(group, topic, 0, 1);
    await commit(group, topic, 1, 1);
    let f = (await scrapeNode()).fams;
    assert.equal(value(f, 'rocketmq_consumer_lag_messages', at), 2);

    // Nothing changed: the same rows, and the latency counted from the same store time.
    await sleep(60);
    const f2 = (await scrapeNode()).fams;
    assert.equal(value(f2, 'rocketmq_consumer_lag_messages', at), 2);
    assert.equal(value(f2, 'rocketmq_consumer_ready_messages', at), 2);
    const lat1 = value(f, 'rocketmq_consumer_lag_latency', at);
    const lat2 = value(f2, 'rocketmq_consumer_lag_latency', at);
    assert.ok(lat1 > 0 && lat2 >= lat1 + 50, `lag latency grows with time (${lat1} then ${lat2})`);

    // A commit changes the offset table only.
    await commit(group, topic, 0, 2);
    f = (await scrapeNode()).fams;
    assert.equal(value(f, 'rocketmq_consumer_lag_messages', at), 1);
    // The same offset again changes nothing.
    await commit(group, topic, 0, 2);
    f = (await scrapeNode()).fams;
    assert.equal(value(f, 'rocketmq_consumer_lag_messages', at), 1);
    // A send changes the store only.
    await send(topic, 2, 1, 'b1');
    f = (await scrapeNode()).fams;
    assert.equal(value(f, 'rocketmq_consumer_lag_messages', at), 2);
    assert.equal(value(f, 'rocketmq_messages_in_total', { topic }), 5);
    // Everything committed: no lag, no latency.
    await commit(group, topic, 0, 3);
    await commit(group, topic, 1, 2);
    f = (await scrapeNode()).fams;
    assert.equal(value(f, 'rocketmq_consumer_lag_messages', at), 0);
    assert.equal(value(f, 'rocketmq_consumer_lag_latency', at), 0);
    // A new group's first commit adds its row.
    await commit('StreamLagG2', topic, 0, 0);
    f = (await scrapeNode()).fams;
    assert.equal(value(f, 'rocketmq_consumer_lag_messages', { topic, consumer_group: 'StreamLagG2' }), 3);
    // The topic deleted: its rows go.
    await ok(br.request(215, { topic }));
    f = (await scrapeNode()).fams;
    assert.equal(value(f, 'rocketmq_consumer_lag_messages', at), undefined);
    assert.equal(value(f, 'rocketmq_messages_in_total', { topic }), undefined);
});
