// The consumer calls of MessagingService on the gRPC port, made with the
// rocketmq-client-nodejs package's own generated stubs over grpc-js (the calls its
// SimpleConsumer and PushConsumer make): AckMessage, ChangeInvisibleDuration,
// ForwardMessageToDeadLetterQueue and QueryAssignment. Messages are popped over remoting
// (POP_MESSAGE), whose receipt handles are the same text a gRPC ReceiveMessage hands out,
// so the two protocols acknowledge each other's deliveries.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { freePort, startApogee, waitForPort } from '../lib/proc.mjs';
import { RemotingClient } from '../lib/remoting.mjs';
import { decodeRecords } from '../lib/records.mjs';

const require = createRequire(import.meta.url);
const grpc = require('@grpc/grpc-js');
const { MessagingServiceClient } = require('rocketmq-client-nodejs/proto/apache/rocketmq/v2/service_grpc_pb.js');
const pb = require('rocketmq-client-nodejs/proto/apache/rocketmq/v2/service_pb.js');
const def = require('rocketmq-client-nodejs/proto/apache/rocketmq/v2/definition_pb.js');
const { Duration } = require('google-protobuf/google/protobuf/duration_pb.js');

const TOPIC = 'GrpcConsumeTopic';
const GROUP = 'CG_GRPC_CONSUME';
const OK = 20000, INVALID_RECEIPT_HANDLE = 40013;
let srv;
let br;
let client;

before(async () => {
    const grpcPort = await freePort();
    srv = await startApogee('standalone', [`--grpcServerPort=${grpcPort}`],
        { extraPorts: { namesrvListenPort: await freePort() } });
    await waitForPort(grpcPort);
    br = await RemotingClient.connect(srv.port);
    const r = await br.request(17, { topic: TOPIC, readQueueNums: '1', writeQueueNums: '1', perm: '6' });
    assert.equal(r.code, 0);
    client = new MessagingServiceClient(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure());
});
after(async () => {
    try {
        client?.close();
        br?.close();
        await srv?.stop();
    } finally {
        setImmediate(() => process.exit());
    }
});

const res = (n) => new def.Resource().setName(n);
const call = (m, req) => new Promise((resolve, reject) =>
    client[m](req, (e, r) => (e ? reject(e) : resolve(r.toObject()))));

async function send(body) {
    const r = await br.request(310, {
        a: 'PG', b: TOPIC, c: 'TBW102', d: '4', e: '0', f: '0', g: String(Date.now()), h: '0',
        i: '', k: 'false',
    }, Buffer.from(body));
    assert.equal(r.code, 0, r.remark);
}

// Pops over remoting; handles built as a RocketMQ client builds POP_CK.
async function pop(invisible = 30000) {
    const r = await br.request(200050, {
        consumerGroup: GROUP, topic: TOPIC, queueId: '-1', maxMsgNums: '32',
        invisibleTime: String(invisible), pollTime: '0', bornTime: String(Date.now()), initMode: '0',
    });
    if (r.code !== 0) return [];
    const start = r.ext.startOffsetInfo.split(' ')[2];
    return decodeRecords(r.body).map((m) => ({
        ...m,
        handle: `${start} ${r.ext.popTime} ${r.ext.invisibleTime} 0 0 broker ${m.queueId} ${m.queueOffset}`,
    }));
}

function ackReq(handle) {
    const rq = new pb.AckMessageRequest().setGroup(res(GROUP)).setTopic(res(TOPIC));
    rq.addEntries().setMessageId('x').setReceiptHandle(handle);
    return rq;
}

test('AckMessage acknowledges a delivery once; a second ack is INVALID_RECEIPT_HANDLE', async () => {
    await send('one');
    const [m] = await pop();
    assert.equal(m.body, 'one');
    let r = await call('ackMessage', ackReq(m.handle));
    assert.equal(r.status.code, OK, r.status.message);
    assert.equal(r.entriesList[0].status.code, OK);
    r = await call('ackMessage', ackReq(m.handle));
    assert.equal(r.status.code, INVALID_RECEIPT_HANDLE);
    r = await call('ackMessage', ackReq('not a handle'));
    assert.equal(r.status.code, INVALID_RECEIPT_HANDLE);
    assert.deepEqual(await pop(), [], 'acknowledged: never handed again');
});

test('ChangeInvisibleDuration returns the handle that replaces the old one', async () => {
    await send('two');
    const [m] = await pop(1000);
    const rq = new pb.ChangeInvisibleDurationRequest().setGroup(res(GROUP)).setTopic(res(TOPIC))
        .setReceiptHandle(m.handle).setMessageId('x')
        .setInvisibleDuration(new Duration().setSeconds(5));
    const r = await call('changeInvisibleDuration', rq);
    assert.equal(r.status.code, OK, r.status.message);
    assert.notEqual(r.receiptHandle, m.handle);
    assert.equal(r.receiptHandle.split(' ')[2], '5000');
    await new Promise((ok) => setTimeout(ok, 1500));
    assert.deepEqual(await pop(), [], 'still invisible past the first deadline');
    assert.equal((await call('ackMessage', ackReq(m.handle))).status.code, INVALID_RECEIPT_HANDLE);
    assert.equal((await call('ackMessage', ackReq(r.receiptHandle))).status.code, OK);
});

test('ForwardMessageToDeadLetterQueue moves the delivery to %DLQ%<group>', async () => {
    await send('three');
    const [m] = await pop();
    const rq = new pb.ForwardMessageToDeadLetterQueueRequest().setGroup(res(GROUP)).setTopic(res(TOPIC))
        .setReceiptHandle(m.handle).setMessageId('x').setDeliveryAttempt(1).setMaxDeliveryAttempts(1);
    const r = await call('forwardMessageToDeadLetterQueue', rq);
    assert.equal(r.status.code, OK, r.status.message);
    const d = await br.request(11, {
        consumerGroup: 'CG_DLQ_READER', topic: `%DLQ%${GROUP}`, queueId: '0', queueOffset: '0',
        maxMsgNums: '32', sysFlag: '0', commitOffset: '0', suspendTimeoutMillis: '0',
        subscription: '*', subVersion: '0', expressionType: 'TAG',
    });
    assert.equal(d.code, 0, d.remark);
    assert.deepEqual(decodeRecords(d.body).map((x) => x.body), ['three']);
    assert.equal((await call('ackMessage', ackReq(m.handle))).status.code, INVALID_RECEIPT_HANDLE);
});

test('QueryAssignment hands a pop consumer the broker with queue id -1', async () => {
    const rq = new pb.QueryAssignmentRequest().setTopic(res(TOPIC)).setGroup(res(GROUP));
    const r = await call('queryAssignment', rq);
    assert.equal(r.status.code, OK, r.status.message);
    assert.equal(r.assignmentsList.length, 1);
    const q = r.assignmentsList[0].messageQueue;
    assert.equal(q.id, -1);
    assert.equal(q.topic.name, TOPIC);
    assert.equal(q.broker.endpoints.addressesList.length, 1);
    const missing = await call('queryAssignment',
        new pb.QueryAssignmentRequest().setTopic(res('NoSuchTopic')).setGroup(res(GROUP)));
    assert.equal(missing.status.code, 40402);
});
