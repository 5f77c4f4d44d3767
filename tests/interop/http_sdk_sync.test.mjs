// The HTTP message protocol under flushDiskType=SYNC_FLUSH, and answers that come later than
// their request: publishes answered from the group commit, long polls held on the loop, and
// pipelined requests behind them answered in request order. Drives the
// @aliyunmq/mq-http-sdk 1.0.4 and a raw socket that pipelines.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { createRequire } from 'node:module';
import { onsHarness, sleep } from './ons.mjs';
import { freePort, waitForPort } from '../lib/proc.mjs';

const require = createRequire(import.meta.url);
const { MQClient } = require('@aliyunmq/mq-http-sdk');

const h = onsHarness();
let httpPort = 0;
let client;

before(async () => {
    httpPort = await freePort();
    await h.start([`--httpListenPort=${httpPort}`, '--flushDiskType=SYNC_FLUSH']);
    await waitForPort(httpPort, 10000, h.srv.proc);
    client = new MQClient(`http://127.0.0.1:${httpPort}`, 'k', 's');
});

after(async () => {
    try {
        await h.stop();
    } finally {
        setImmediate(() => process.exit());
    }
});

const publishXml = (body) => `<?xml version="1.0" encoding="UTF-8"?><Message xmlns="http://mq.aliyuncs.com/doc/v1/"><MessageBody><![CDATA[${body}]]></MessageBody></Message>`;

function request(method, path, body = '') {
    return `${method} ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml;charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

// Writes the requests at once on one connection and reads n answers in order.
function pipeline(reqs, n, { closeAfterMs = 0 } = {}) {
    return new Promise((resolve, reject) => {
        const s = net.connect(httpPort, '127.0.0.1');
        let buf = Buffer.alloc(0);
        const answers = [];
        s.on('connect', () => {
            s.write(reqs.join(''));
            if (closeAfterMs) setTimeout(() => { s.destroy(); resolve(answers); }, closeAfterMs);
        });
        s.on('data', (d) => {
            buf = Buffer.concat([buf, d]);
            for (;;) {
                const end = buf.indexOf('\r\n\r\n');
                if (end < 0) break;
                const head = buf.subarray(0, end).toString();
                const m = head.match(/content-length:\s*(\d+)/i);
                const len = m ? Number(m[1]) : 0;
                if (buf.length < end + 4 + len) break;
                answers.push({ status: Number(head.split(' ')[1]), at: Date.now(),
                    body: buf.subarray(end + 4, end + 4 + len).toString() });
                buf = buf.subarray(end + 4 + len);
            }
            if (answers.length >= n) {
                s.destroy();
                resolve(answers);
            }
        });
        s.on('error', reject);
    });
}

test('SYNC_FLUSH: concurrent SDK publishes are answered once durable, and all are consumed', async () => {
    const topic = 'T_HTTP_SYNC';
    await h.createTopic(topic, 4);
    const p = client.getProducer('', topic);
    const rs = await Promise.all(Array.from({ length: 40 }, (_, i) => p.publishMessage(`s-${i}`, 'S')));
    assert.ok(rs.every((r) => r.code === 201 && r.body.MessageId));
    const consumer = client.getConsumer('', topic, 'GID_HTTP_SYNC');
    const got = new Set();
    const end = Date.now() + 15000;
    while (got.size < 40 && Date.now() < end) {
        try {
            const r = await consumer.consumeMessage(16, 1);
            for (const m of r.body) got.add(m.MessageBody);
            await consumer.ackMessage(r.body.map((m) => m.ReceiptHandle));
        } catch (e) {
            if (e.Code !== 'MessageNotExist') throw e;
        }
    }
    assert.equal(got.size, 40);
});

test('pipelined requests behind held ones are answered in request order', async () => {
    const topic = 'T_HTTP_PIPE';
    await h.createTopic(topic, 1);
    const path = `/topics/${topic}/messages`;
    // A publish held for the group commit, a consume answered at once, a publish.
    let a = await pipeline([request('POST', path, publishXml('p1')),
        request('GET', `${path}?consumer=GID_PIPE_X&numOfMessages=1`),
        request('POST', path, publishXml('p2'))], 3);
    assert.deepEqual(a.map((x) => x.status).filter((s) => s === 201).length, 2);
    assert.equal(a[0].status, 201);
    assert.match(a[1].body, /<Messages|MessageNotExist/);
    assert.equal(a[2].status, 201);
    // A long poll held for 1 s, then a publish and a bad request: answers in that order.
    const t0 = Date.now();
    a = await pipeline([request('GET', `${path}?consumer=GID_PIPE_Y&numOfMessages=16&waitseconds=1&tag=nomatch`),
        request('POST', path, publishXml('p3')),
        request('GET', `${path}?numOfMessages=1`)], 3);
    assert.equal(a[0].status, 404);
    assert.match(a[0].body, /<Code>MessageNotExist<\/Code>/);
    assert.ok(a[0].at - t0 >= 900, 'the long poll waited');
    assert.equal(a[1].status, 201);
    assert.equal(a[2].status, 400);
});

test('a long poll whose client goes away is dropped; the port keeps serving', async () => {
    const topic = 'T_HTTP_GONE';
    await h.createTopic(topic, 1);
    const path = `/topics/${topic}/messages`;
    for (let i = 0; i < 20; i++)
        await pipeline([request('GET', `${path}?consumer=GID_GONE&numOfMessages=1&waitseconds=5`)], 1,
            { closeAfterMs: 20 });
    await sleep(200);
    // The message goes to a live consumer, not to a gone one.
    await client.getProducer('', topic).publishMessage('for the living', '');
    const r = await client.getConsumer('', topic, 'GID_GONE').consumeMessage(1, 3);
    assert.equal(r.body[0].MessageBody, 'for the living');
});
