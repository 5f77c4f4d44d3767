// The HTTP message protocol (/topics/<topic>/messages on httpListenPort) driven by the
// unchanged @aliyunmq/mq-http-sdk 1.0.4 against `apogee standalone`: publish (tag, keys,
// properties, start-deliver time, sharding key, transactional halves), consume with long
// polling and batches, ack by receipt handle, redelivery after the invisible time, ordered
// consume, commit and rollback through the half-message loop, the SDK's error codes
// (MessageNotExist, TopicNotExist, ReceiptHandleError, MalformedXML), and an ali-ons 4.x
// consumer reading what the SDK published.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createRequire } from 'node:module';
import { onsHarness, until, sleep } from './ons.mjs';
import { freePort, waitForPort } from '../lib/proc.mjs';
import { run as runExample, done as exampleDone, skipExamples } from '../lib/examples.mjs';

const require = createRequire(import.meta.url);
const { MQClient, MessageProperties } = require('@aliyunmq/mq-http-sdk');

const h = onsHarness();
let httpPort = 0;
let client;
const INVISIBLE_S = 2;

before(async () => {
    httpPort = await freePort();
    await h.start([`--httpListenPort=${httpPort}`, `--httpConsumeInvisibleSeconds=${INVISIBLE_S}`,
        '--timerPrecisionMs=100', '--maxMessageSize=1048576']);
    await waitForPort(httpPort, 10000, h.srv.proc);
    client = new MQClient(`http://127.0.0.1:${httpPort}`, 'anyKey', 'anySecret');
});

after(async () => {
    try {
        await h.stop();
    } finally {
        setImmediate(() => process.exit()); // ali-ons keeps timers alive
    }
});

// Consumes until n messages came (long polls of 1 s), acking none.
async function consumeN(consumer, n, { orderly = false, batch = 16, ms = 15000 } = {}) {
    const got = [];
    const end = Date.now() + ms;
    while (got.length < n && Date.now() < end) {
        try {
            const r = orderly ? await consumer.consumeMessageOrderly(batch, 1)
                : await consumer.consumeMessage(batch, 1);
            assert.equal(r.code, 200);
            got.push(...r.body);
        } catch (e) {
            if (e.Code !== 'MessageNotExist') throw e;
        }
    }
    return got;
}

function raw(method, path, body, headers = {}) {
    return new Promise((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: httpPort, method, path, headers: {
            'content-type': 'text/xml;charset=utf-8', 'content-length': Buffer.byteLength(body || ''),
            ...headers } }, (res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => resolve({ status: res.statusCode, headers: res.headers,
                body: Buffer.concat(chunks).toString() }));
        });
        req.on('error', reject);
        if (body) req.write(body);
        req.end();
    });
}

test('publish with tag, keys and properties; consume a batch; ack; nothing left', async () => {
    const topic = 'T_HTTP_BASIC';
    await h.createTopic(topic, 4);
    const producer = client.getProducer('', topic);
    const md5s = new Map();
    for (let i = 0; i < 5; i++) {
        const props = new MessageProperties();
        props.messageKey(`key-${i}`);
        props.putProperty('color', i % 2 ? 'red' : 'blue');
        const r = await producer.publishMessage(`hello <${i}> & "bye"`, 'TagA', props);
        assert.equal(r.code, 201);
        assert.match(r.body.MessageId, /^[0-9A-F]{32}$/);
        assert.match(r.body.MessageBodyMD5, /^[0-9A-F]{32}$/);
        assert.ok(r.requestId, 'x-mq-request-id');
        md5s.set(r.body.MessageId, r.body.MessageBodyMD5);
    }
    const consumer = client.getConsumer('', topic, 'GID_HTTP_BASIC');
    const got = await consumeN(consumer, 5);
    assert.equal(got.length, 5);
    const bodies = got.map((m) => m.MessageBody).sort();
    assert.deepEqual(bodies, [0, 1, 2, 3, 4].map((i) => `hello <${i}> & "bye"`));
    for (const m of got) {
        assert.equal(m.MessageTag, 'TagA');
        assert.equal(md5s.get(m.MessageId), m.MessageBodyMD5);
        const i = Number(m.MessageBody.match(/<(\d)>/)[1]);
        assert.equal(m.MessageKey, `key-${i}`);
        assert.equal(m.Properties.color, i % 2 ? 'red' : 'blue');
        assert.equal(m.ConsumedTimes, '1');
        assert.ok(Number(m.NextConsumeTime) > Number(m.FirstConsumeTime));
    }
    const ack = await consumer.ackMessage(got.map((m) => m.ReceiptHandle));
    assert.equal(ack.code, 204);
    assert.equal(ack.body, undefined);
    // Acknowledged: not delivered again after the invisible time.
    await sleep(INVISIBLE_S * 1000 + 500);
    await assert.rejects(consumer.consumeMessage(16, 1), (e) => e.Code === 'MessageNotExist');
});

test('an empty long poll waits waitseconds and ends with MessageNotExist (404)', async () => {
    const topic = 'T_HTTP_EMPTY';
    await h.createTopic(topic, 2);
    const consumer = client.getConsumer('', topic, 'GID_HTTP_EMPTY');
    const t0 = Date.now();
    await assert.rejects(consumer.consumeMessage(3, 2), (e) => {
        assert.equal(e.Code, 'MessageNotExist');
        assert.match(e.message, /failed with 404/);
        return true;
    });
    const waited = Date.now() - t0;
    assert.ok(waited >= 1900 && waited < 5000, `waited ${waited} ms`);
    // Without waitseconds: at once.
    const t1 = Date.now();
    await assert.rejects(consumer.consumeMessage(3), (e) => e.Code === 'MessageNotExist');
    assert.ok(Date.now() - t1 < 1000);
});

test('a long poll is answered as soon as a message arrives', async () => {
    const topic = 'T_HTTP_WAKE';
    await h.createTopic(topic, 2);
    const consumer = client.getConsumer('', topic, 'GID_HTTP_WAKE');
    await assert.rejects(consumer.consumeMessage(1), (e) => e.Code === 'MessageNotExist');
    const t0 = Date.now();
    const polled = consumer.consumeMessage(4, 10);
    await sleep(300);
    await client.getProducer('', topic).publishMessage('wake up', '');
    const r = await polled;
    const waited = Date.now() - t0;
    assert.equal(r.body.length, 1);
    assert.equal(r.body[0].MessageBody, 'wake up');
    assert.ok(waited < 3000, `answered after ${waited} ms`);
    await consumer.ackMessage([r.body[0].ReceiptHandle]);
});

test('a message not acknowledged is delivered again after the invisible time; a stale handle is refused', async () => {
    const topic = 'T_HTTP_REDELIVER';
    await h.createTopic(topic, 1);
    await client.getProducer('', topic).publishMessage('again', 'T');
    const consumer = client.getConsumer('', topic, 'GID_HTTP_REDELIVER');
    const [first] = await consumeN(consumer, 1);
    assert.equal(first.ConsumedTimes, '1');
    // Invisible meanwhile.
    await assert.rejects(consumer.consumeMessage(1), (e) => e.Code === 'MessageNotExist');
    const [second] = await consumeN(consumer, 1, { ms: INVISIBLE_S * 1000 + 8000 });
    assert.equal(second.MessageId, first.MessageId);
    assert.equal(second.ConsumedTimes, '2');
    assert.notEqual(second.ReceiptHandle, first.ReceiptHandle);
    // The first handle is stale: a per-handle error; the second acks.
    const stale = await consumer.ackMessage([first.ReceiptHandle]);
    assert.equal(stale.code, 404);
    assert.equal(stale.body.length, 1);
    assert.equal(stale.body[0].ErrorCode, 'ReceiptHandleError');
    assert.equal(stale.body[0].ReceiptHandle, first.ReceiptHandle);
    const mixed = await consumer.ackMessage([second.ReceiptHandle, 'not a handle']);
    assert.equal(mixed.code, 404);
    assert.deepEqual(mixed.body.map((e) => e.ReceiptHandle), ['not a handle']);
    await sleep(INVISIBLE_S * 1000 + 500);
    await assert.rejects(consumer.consumeMessage(1), (e) => e.Code === 'MessageNotExist');
});

test('tag filter on consume', async () => {
    const topic = 'T_HTTP_TAGS';
    await h.createTopic(topic, 2);
    const p = client.getProducer('', topic);
    for (const tag of ['a', 'b', 'c', 'a'])
        await p.publishMessage(`body-${tag}`, tag);
    const consumer = client.getConsumer('', topic, 'GID_HTTP_TAGS', 'a||c');
    const got = await consumeN(consumer, 3);
    assert.deepEqual(got.map((m) => m.MessageTag).sort(), ['a', 'a', 'c']);
    await consumer.ackMessage(got.map((m) => m.ReceiptHandle));
});

test('errors: unknown topic, malformed XML, no consumer, bad parameters; the connection keeps working', async () => {
    await assert.rejects(client.getProducer('', 'T_HTTP_NO_SUCH').publishMessage('x', ''),
        (e) => e.Code === 'TopicNotExist' && /failed with 404/.test(e.message));
    await assert.rejects(client.getConsumer('', 'T_HTTP_NO_SUCH', 'GID_X').consumeMessage(1),
        (e) => e.Code === 'TopicNotExist');
    const topic = 'T_HTTP_ERRORS';
    await h.createTopic(topic, 1);
    const bad = await raw('POST', `/topics/${topic}/messages`, '<Message><MessageBody>x</Message>');
    assert.equal(bad.status, 400);
    assert.match(bad.headers['content-type'], /^text\/xml/);
    assert.match(bad.body, /<Code>MalformedXML<\/Code>/);
    assert.match(bad.body, /<RequestId>[0-9A-F]+<\/RequestId>/);
    assert.match(bad.body, /<HostId>/);
    const noBody = await raw('POST', `/topics/${topic}/messages`,
        '<?xml version="1.0"?><Message xmlns="http://mq.aliyuncs.com/doc/v1/"><MessageTag>t</MessageTag></Message>');
    assert.equal(noBody.status, 400);
    assert.match(noBody.body, /<Code>InvalidArgument<\/Code>/);
    const noConsumer = await raw('GET', `/topics/${topic}/messages?numOfMessages=1`);
    assert.equal(noConsumer.status, 400);
    const tooMany = await raw('GET', `/topics/${topic}/messages?consumer=G&numOfMessages=99`);
    assert.equal(tooMany.status, 400);
    const badAck = await raw('DELETE', `/topics/${topic}/messages?consumer=G`, '<ReceiptHandles>');
    assert.equal(badAck.status, 400);
    assert.match(badAck.body, /MalformedXML/);
    const digest = await raw('POST', `/topics/${topic}/messages`,
        '<Message><MessageBody>x</MessageBody></Message>', { 'content-md5': 'AAAA' });
    assert.equal(digest.status, 400);
    assert.match(digest.body, /<Code>InvalidDigest<\/Code>/);
    // Entities, CDATA and a comment are read; the SDK's own client still works.
    const ok = await raw('POST', `/topics/${topic}/messages`,
        '<?xml version="1.0"?><!-- c --><Message><MessageBody>a&amp;b&#x3C;<![CDATA[<c>]]></MessageBody></Message>');
    assert.equal(ok.status, 201, ok.body);
    const got = await consumeN(client.getConsumer('', topic, 'GID_HTTP_ERRORS'), 1);
    assert.equal(got[0].MessageBody, 'a&b<<c>');
});

test('oversized bodies: MessageBodyTooLarge over maxMessageSize, and as a 413 over the port limit', async () => {
    const topic = 'T_HTTP_BIG';
    await h.createTopic(topic, 1);
    const p = client.getProducer('', topic);
    await assert.rejects(p.publishMessage('b'.repeat(1048577), ''),
        (e) => e.Code === 'MessageBodyTooLarge' && /failed with 400/.test(e.message));
    // Over the port's 4 MiB request body: refused before the body is read, with the SDK's
    // XML error, and the connection closed.
    await assert.rejects(p.publishMessage('x'.repeat(5 << 20), ''),
        (e) => e.Code === 'MessageBodyTooLarge' && /failed with 413/.test(e.message) && !!e.RequestId,
        'the SDK sees an error object');
    const huge = await raw('POST', `/topics/${topic}/messages`, 'x'.repeat(5 << 20));
    assert.equal(huge.status, 413);
    assert.match(huge.headers['content-type'], /^text\/xml/);
    assert.match(huge.body, /<Code>MessageBodyTooLarge<\/Code>/);
    assert.equal(huge.headers.connection, 'close');
    // Other paths keep the plain-text 413 (the connection may be reset before it is read).
    const other = await raw('POST', '/api/topics', 'x'.repeat(5 << 20)).catch((e) => e);
    if (other.status !== undefined) {
        assert.equal(other.status, 413);
        assert.match(other.headers['content-type'], /^text\/plain/);
    }
    assert.equal((await p.publishMessage('b'.repeat(1048576), '')).code, 201);
});

test('an instance id maps to the namespace: topic I%T, group I%G', async () => {
    await h.createTopic('MQ_INST_1%T_HTTP_NS', 2);
    const p = client.getProducer('MQ_INST_1', 'T_HTTP_NS');
    assert.equal((await p.publishMessage('namespaced', 'N')).code, 201);
    await assert.rejects(client.getProducer('', 'T_HTTP_NS').publishMessage('x', ''),
        (e) => e.Code === 'TopicNotExist');
    const c = client.getConsumer('MQ_INST_1', 'T_HTTP_NS', 'GID_NS', 'N');
    const [m] = await consumeN(c, 1);
    assert.equal(m.MessageBody, 'namespaced');
    assert.equal((await c.ackMessage([m.ReceiptHandle])).code, 204);
});

test('a start-deliver time delays delivery until then', async () => {
    const topic = 'T_HTTP_DELAY';
    await h.createTopic(topic, 2);
    const props = new MessageProperties();
    const at = Date.now() + 3000;
    props.startDeliverTime(at);
    await client.getProducer('', topic).publishMessage('later', '', props);
    const consumer = client.getConsumer('', topic, 'GID_HTTP_DELAY');
    await assert.rejects(consumer.consumeMessage(1, 1), (e) => e.Code === 'MessageNotExist');
    const [m] = await consumeN(consumer, 1, { ms: 15000 });
    assert.ok(Date.now() >= at - 200, 'not before its time');
    assert.equal(m.MessageBody, 'later');
    assert.equal(m.StartDeliverTime, at);
    await consumer.ackMessage([m.ReceiptHandle]);
});

test('sharding key: one queue per key, consumed in order with trans=order', async () => {
    const topic = 'T_HTTP_ORDER';
    await h.createTopic(topic, 4);
    const p = client.getProducer('', topic);
    const keys = ['k1', 'k2', 'k3'];
    for (let i = 0; i < 6; i++)
        for (const k of keys) {
            const props = new MessageProperties();
            props.shardingKey(k);
            await p.publishMessage(`${k}-${i}`, '', props);
        }
    const consumer = client.getConsumer('', topic, 'GID_HTTP_ORDER');
    const seen = new Map(keys.map((k) => [k, []]));
    const end = Date.now() + 20000;
    let total = 0;
    while (total < 18 && Date.now() < end) {
        let r;
        try {
            r = await consumer.consumeMessageOrderly(4, 1);
        } catch (e) {
            if (e.Code !== 'MessageNotExist') throw e;
            continue;
        }
        for (const m of r.body) {
            assert.ok(m.ShardingKey, 'ShardingKey property');
            seen.get(m.ShardingKey).push(m.MessageBody);
            total++;
        }
        await consumer.ackMessage(r.body.map((m) => m.ReceiptHandle));
    }
    for (const k of keys)
        assert.deepEqual(seen.get(k), [0, 1, 2, 3, 4, 5].map((i) => `${k}-${i}`));
});

test('transactional halves: commit by the publish handle, rollback and commit through the half loop', async () => {
    const topic = 'T_HTTP_TXN';
    await h.createTopic(topic, 2);
    const tp = client.getTransProducer('', topic, 'GID_HTTP_TXN_P');
    const half = async (body) => {
        const props = new MessageProperties();
        props.transCheckImmunityTime(1);
        props.putProperty('n', body);
        const r = await tp.publishMessage(body, 'TX', props);
        assert.equal(r.code, 201);
        assert.ok(r.body.ReceiptHandle, 'a half has a receipt handle');
        return r;
    };
    const direct = await half('direct-commit');
    await half('loop-commit');
    await half('loop-rollback');
    const consumer = client.getConsumer('', topic, 'GID_HTTP_TXN_C');
    // Halves are not delivered.
    await assert.rejects(consumer.consumeMessage(4, 1), (e) => e.Code === 'MessageNotExist');
    assert.equal((await tp.commit(direct.body.ReceiptHandle)).code, 204);
    // The half loop hands out the other two after their check time.
    const decided = new Set();
    const end = Date.now() + 15000;
    while (decided.size < 2 && Date.now() < end) {
        let r;
        try {
            r = await tp.consumeHalfMessage(4, 1);
        } catch (e) {
            if (e.Code !== 'MessageNotExist') throw e;
            continue;
        }
        for (const m of r.body) {
            assert.notEqual(m.MessageBody, 'direct-commit');
            const res = m.MessageBody === 'loop-commit' ? await tp.commit(m.ReceiptHandle)
                : await tp.rollback(m.ReceiptHandle);
            assert.equal(res.code, 204);
            decided.add(m.MessageBody);
        }
    }
    assert.equal(decided.size, 2);
    const got = await consumeN(consumer, 2, { ms: 8000 });
    assert.deepEqual(got.map((m) => m.MessageBody).sort(), ['direct-commit', 'loop-commit']);
    for (const m of got) {
        assert.equal(m.MessageTag, 'TX');
        assert.equal(m.Properties.n, m.MessageBody);
    }
    await consumer.ackMessage(got.map((m) => m.ReceiptHandle));
    // A handle already ended is refused per handle.
    const again = await tp.commit(direct.body.ReceiptHandle);
    assert.equal(again.code, 204, 'ending an ended transaction again is accepted (it had ended)');
});

test('an ali-ons 4.x consumer reads what the HTTP SDK published', async () => {
    const topic = 'T_HTTP_TO_ONS';
    await h.createTopic(topic, 4);
    const got = [];
    h.newConsumer('CG_HTTP_TO_ONS', 'ons-1').subscribe(topic, '*', async (msg) => {
        got.push(msg);
    });
    await sleep(1500); // rebalanced
    const p = client.getProducer('', topic);
    for (let i = 0; i < 3; i++) {
        const props = new MessageProperties();
        props.messageKey(`ons-key-${i}`);
        props.putProperty('origin', 'http');
        await p.publishMessage(`to-ons-${i}`, 'OnsTag', props);
    }
    await until(() => got.length >= 3, 20000, () => `got ${got.length}`);
    const bodies = got.map((m) => m.body.toString()).sort();
    assert.deepEqual(bodies, ['to-ons-0', 'to-ons-1', 'to-ons-2']);
    for (const m of got) {
        assert.equal(m.tags, 'OnsTag');
        assert.equal(m.properties.origin, 'http');
        assert.match(String(m.keys), /^ons-key-\d$/);
    }
});

test('the C client pull consumer reads what the HTTP SDK published, a sharding key in one queue', { skip: skipExamples }, async () => {
    const topic = 'T_HTTP_TO_C';
    await h.createTopic(topic, 4);
    const p = client.getProducer('', topic);
    for (let i = 0; i < 4; i++) {
        const props = new MessageProperties();
        props.shardingKey('one-key');
        await p.publishMessage(`c-${i}`, 'CTag', props);
    }
    const r = runExample('pull_consumer', [`127.0.0.1:${h.nsPort}`, topic, 'CG_HTTP_TO_C', 'CTag']);
    assert.equal(r.code, 0, r.out);
    assert.equal(exampleDone(r).n, 4, r.out);
    const recv = r.lines.filter((l) => l.startsWith('RECV ')).map((l) => l.split(' '));
    assert.deepEqual(recv.map((f) => f[4]), ['c-0', 'c-1', 'c-2', 'c-3']);
    assert.equal(new Set(recv.map((f) => f[1])).size, 1, 'one queue for the key');
    assert.ok(recv.every((f) => f[3] === 'CTag'));
});

test('a half published before a restart reaches the half loop after it, and is delivered once when committed', async () => {
    const topic = 'T_HTTP_TXN_RESTART';
    await h.createTopic(topic, 2);
    const props = new MessageProperties();
    props.transCheckImmunityTime(1);
    const tp = client.getTransProducer('', topic, 'GID_HTTP_TXN_R');
    assert.equal((await tp.publishMessage('across-restart', 'TR', props)).code, 201);
    const r = await h.restart();
    assert.equal(r.code, 0, r.output);
    await waitForPort(httpPort, 10000, h.srv.proc);
    let handed = null;
    const end = Date.now() + 15000;
    while (!handed && Date.now() < end) {
        try {
            const got = (await tp.consumeHalfMessage(4, 1)).body;
            assert.equal(got.length, 1);
            handed = got[0];
        } catch (e) {
            if (e.Code !== 'MessageNotExist') throw e;
        }
    }
    assert.ok(handed, 'the half loop hands out the half published before the restart');
    assert.equal(handed.MessageBody, 'across-restart');
    assert.equal(handed.MessageTag, 'TR');
    assert.equal((await tp.commit(handed.ReceiptHandle)).code, 204);
    const consumer = client.getConsumer('', topic, 'GID_HTTP_TXN_RC');
    const got = await consumeN(consumer, 1, { ms: 8000 });
    assert.deepEqual(got.map((m) => m.MessageBody), ['across-restart']);
    await consumer.ackMessage(got.map((m) => m.ReceiptHandle));
    // Exactly once: nothing more for the group, nothing more in the half loop.
    assert.deepEqual(await consumeN(consumer, 1, { ms: 3000 }), []);
    await assert.rejects(tp.consumeHalfMessage(4, 2), (e) => e.Code === 'MessageNotExist');
});
