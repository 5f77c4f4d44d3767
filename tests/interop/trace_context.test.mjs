// W3C trace context across protocols: a 4.x producer (ali-ons) sets the TRACE_CONTEXT property
// (and a `traceparent` user property, as OpenTelemetry's 4.x instrumentation does), a 5.x
// producer (rocketmq-client-nodejs over gRPC) sets SystemProperties.trace_context (and the
// same user property); both arrive unchanged at a 4.x consumer (ali-ons, the property) and a
// 5.x SimpleConsumer (trace_context, the user property). RocketMQ 5's proxy maps
// trace_context to and from the TRACE_CONTEXT property the same way.
//
// The nodejs client 1.x has no API for trace_context: the test sets it on the protobuf the
// client sends (PublishingMessage.toProtobuf) and reads it from the protobuf the client
// receives (the MessageView the consumer builds), leaving the client's calls as they are.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { Producer, SimpleConsumer } from 'rocketmq-client-nodejs';
import { onsHarness, ons, until } from './ons.mjs';
import { freePort, waitForPort } from '../lib/proc.mjs';

const require = createRequire(import.meta.url);
const pubMod = require('rocketmq-client-nodejs/dist/message/PublishingMessage.js');
const viewMod = require('rocketmq-client-nodejs/dist/message/MessageView.js');

let nextTraceContext = '';
const origToProtobuf = pubMod.PublishingMessage.prototype.toProtobuf;
pubMod.PublishingMessage.prototype.toProtobuf = function (...args) {
    const m = origToProtobuf.apply(this, args);
    if (nextTraceContext) m.getSystemProperties().setTraceContext(nextTraceContext);
    return m;
};
const BaseView = viewMod.MessageView;
viewMod.MessageView = class extends BaseView {
    constructor(message, ...rest) {
        super(message, ...rest);
        this.traceContext = message.getSystemProperties().getTraceContext();
    }
};

process.on('uncaughtException', (e) => { // the nodejs client's Telemetry stream at shutdown
    if (e && e.code === 14 && (/telemetry/i.test(String(e.stack)) || /server shutting down/.test(e.message))) return;
    throw e;
});
const quiet = { info() {}, warn() {}, error() {}, debug() {}, trace() {} };
const { Message } = ons;
const h = onsHarness();
const TOPIC = 'TraceCtxTopic';
let grpcPort;
let onsGot;
let producer5;
let simple;

before(async () => {
    grpcPort = await freePort();
    await h.start([`--grpcServerPort=${grpcPort}`]);
    await waitForPort(grpcPort);
    await h.createTopic(TOPIC, 2);
    onsGot = new Map();
    const c = await h.newConsumer('CG_TRACE_ONS');
    c.subscribe(TOPIC, '*', async (msg) => { onsGot.set(msg.body.toString(), msg.properties); });
    producer5 = new Producer({ endpoints: `127.0.0.1:${grpcPort}`, topics: [TOPIC], logger: quiet });
    await producer5.startup();
    simple = new SimpleConsumer({
        endpoints: `127.0.0.1:${grpcPort}`, consumerGroup: 'CG_TRACE_5X', logger: quiet,
        subscriptions: new Map([[TOPIC, '*']]), awaitDuration: 1000,
    });
    await simple.startup();
});
after(async () => {
    try {
        await simple?.shutdown().catch(() => {});
        await producer5?.shutdown().catch(() => {});
        await h.stop();
    } finally {
        setImmediate(() => process.exit(0));
    }
});

const traceparent = (n) => `00-${String(n).padStart(32, 'a')}-${String(n).padStart(16, 'b')}-01`;

// Receives with the SimpleConsumer until every body in want arrived; body -> MessageView.
async function receive5(want) {
    const got = new Map();
    const deadline = Date.now() + 20000;
    while ([...want].some((b) => !got.has(b)) && Date.now() < deadline) {
        const views = await simple.receive(16, 10000);
        for (const v of views) {
            got.set(v.body.toString(), v);
            await simple.ack(v);
        }
    }
    return got;
}

test('a 4.x producer\'s TRACE_CONTEXT reaches 4.x and 5.x consumers unchanged', async () => {
    const p = await h.newProducer('PG_TRACE_ONS');
    const sent = [];
    for (let i = 1; i <= 3; i++) {
        const msg = new Message(TOPIC, 'TagT', `from4x-${i}`);
        msg.properties.TRACE_CONTEXT = traceparent(i);
        msg.properties.traceparent = traceparent(i);
        const r = await p.send(msg);
        assert.equal(r.sendStatus, 'SEND_OK');
        sent.push(`from4x-${i}`);
    }
    await until(() => sent.every((b) => onsGot.has(b)), 20000, 'ali-ons deliveries');
    for (let i = 1; i <= 3; i++) {
        const props = onsGot.get(`from4x-${i}`);
        assert.equal(props.TRACE_CONTEXT, traceparent(i));
        assert.equal(props.traceparent, traceparent(i));
    }
    const got = await receive5(sent);
    for (let i = 1; i <= 3; i++) {
        const v = got.get(`from4x-${i}`);
        assert.ok(v, `5.x consumer got from4x-${i}`);
        assert.equal(v.traceContext, traceparent(i));
        assert.equal(v.properties.get('traceparent'), traceparent(i));
        assert.equal(v.properties.get('TRACE_CONTEXT'), undefined, 'a system property, not a user one');
    }
});

test('a 5.x producer\'s trace_context reaches 5.x and 4.x consumers unchanged', async () => {
    const sent = [];
    for (let i = 11; i <= 13; i++) {
        nextTraceContext = traceparent(i);
        try {
            await producer5.send({
                topic: TOPIC, tag: 'TagT', body: Buffer.from(`from5x-${i}`),
                properties: new Map([['traceparent', traceparent(i)]]),
            });
        } finally {
            nextTraceContext = '';
        }
        sent.push(`from5x-${i}`);
    }
    const got = await receive5(sent);
    for (let i = 11; i <= 13; i++) {
        const v = got.get(`from5x-${i}`);
        assert.ok(v, `5.x consumer got from5x-${i}`);
        assert.equal(v.traceContext, traceparent(i));
        assert.equal(v.properties.get('traceparent'), traceparent(i));
    }
    await until(() => sent.every((b) => onsGot.has(b)), 20000, 'ali-ons deliveries');
    for (let i = 11; i <= 13; i++) {
        const props = onsGot.get(`from5x-${i}`);
        assert.equal(props.TRACE_CONTEXT, traceparent(i));
        assert.equal(props.traceparent, traceparent(i));
    }
});

test('a message without a trace context carries none', async () => {
    await producer5.send({ topic: TOPIC, tag: 'TagT', body: Buffer.from('plain5x') });
    const got = await receive5(['plain5x']);
    assert.equal(got.get('plain5x').traceContext, '');
    await until(() => onsGot.has('plain5x'), 20000, 'ali-ons delivery');
    assert.equal(onsGot.get('plain5x').TRACE_CONTEXT, undefined);
});
