// The HTTP message protocol with aclEnable=true: the @aliyunmq/mq-http-sdk 1.0.4 signs every
// request ("Authorization: MQ <ak>:<HMAC-SHA1>"), checked with the plain_acl.yml accounts the
// remoting port uses. Right keys publish, consume and ack; a wrong secret is
// SignatureDoesNotMatch, an unknown key InvalidAccessKeyId, a missing permission AccessDenied,
// a Date far from the clock TimeExpired (all 403), and the port keeps serving.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { freePort, startApogee, waitForPort } from '../lib/proc.mjs';
import { RemotingClient } from '../lib/remoting.mjs';
import { signedRequest, writeAclFile } from '../lib/acl.mjs';

const require = createRequire(import.meta.url);
const { MQClient } = require('@aliyunmq/mq-http-sdk');

const USER = { ak: 'httpUser01', sk: 'httpSecret01' };
const READER = { ak: 'httpReader01', sk: 'httpReaderSecret01' };
const ADMIN = { ak: 'httpAdmin01', sk: 'httpAdminSecret01' };
const TOPIC = 'T_HTTP_ACL';
let srv;
let br;
let httpPort;
const endpoint = () => `http://127.0.0.1:${httpPort}`;

before(async () => {
    httpPort = await freePort();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-http-acl-'));
    writeAclFile(dir, `accounts:
  - accessKey: ${USER.ak}
    secretKey: ${USER.sk}
    defaultTopicPerm: DENY
    defaultGroupPerm: DENY
    topicPerms: [${TOPIC}=PUB|SUB]
    groupPerms: [GID_HTTP_ACL=SUB]
  - accessKey: ${READER.ak}
    secretKey: ${READER.sk}
    defaultTopicPerm: DENY
    defaultGroupPerm: DENY
    topicPerms: [${TOPIC}=SUB]
    groupPerms: [GID_HTTP_ACL=SUB]
  - accessKey: ${ADMIN.ak}
    secretKey: ${ADMIN.sk}
    admin: true
`);
    srv = await startApogee('standalone', [`--httpListenPort=${httpPort}`, '--aclEnable=true',
        `--innerClientAuthenticationCredentials=${JSON.stringify(
            { accessKey: ADMIN.ak, secretKey: ADMIN.sk })}`],
    { dir, extraPorts: { namesrvListenPort: await freePort() } });
    await waitForPort(httpPort);
    br = await RemotingClient.connect(srv.port);
    const r = await signedRequest(br, 17, { topic: TOPIC, readQueueNums: '2', writeQueueNums: '2',
        perm: '6' }, null, ADMIN);
    assert.equal(r.code, 0, r.remark);
});

after(async () => {
    try {
        br?.close();
        await srv?.stop();
    } finally {
        setImmediate(() => process.exit(0));
    }
});

test('right keys: publish, consume with a long poll, ack', async () => {
    const c = new MQClient(endpoint(), USER.ak, USER.sk);
    const r = await c.getProducer('', TOPIC).publishMessage('signed body', 'tagS');
    assert.equal(r.code, 201);
    const consumer = c.getConsumer('', TOPIC, 'GID_HTTP_ACL', 'tagS');
    let got = [];
    for (let i = 0; i < 10 && got.length === 0; i++) {
        try {
            got = (await consumer.consumeMessage(4, 1)).body;
        } catch (e) {
            if (e.Code !== 'MessageNotExist') throw e;
        }
    }
    assert.equal(got.length, 1);
    assert.equal(got[0].MessageBody, 'signed body');
    assert.equal((await consumer.ackMessage([got[0].ReceiptHandle])).code, 204);
});

test('a wrong secret is SignatureDoesNotMatch; an unknown key InvalidAccessKeyId', async () => {
    const wrong = new MQClient(endpoint(), USER.ak, 'not-the-secret');
    await assert.rejects(wrong.getProducer('', TOPIC).publishMessage('x', ''), (e) => {
        assert.equal(e.Code, 'SignatureDoesNotMatch');
        assert.match(e.message, /failed with 403/);
        return true;
    });
    await assert.rejects(wrong.getConsumer('', TOPIC, 'GID_HTTP_ACL').consumeMessage(1),
        (e) => e.Code === 'SignatureDoesNotMatch');
    const unknown = new MQClient(endpoint(), 'nobody', 'whatever');
    await assert.rejects(unknown.getProducer('', TOPIC).publishMessage('x', ''),
        (e) => e.Code === 'InvalidAccessKeyId');
});

test('a missing permission is AccessDenied', async () => {
    const reader = new MQClient(endpoint(), READER.ak, READER.sk);
    await assert.rejects(reader.getProducer('', TOPIC).publishMessage('x', ''),
        (e) => e.Code === 'AccessDenied');
    const user = new MQClient(endpoint(), USER.ak, USER.sk);
    await assert.rejects(user.getConsumer('', TOPIC, 'GID_OTHER').consumeMessage(1),
        (e) => e.Code === 'AccessDenied');
});

test('a request with a stale Date or no Authorization is refused; the port keeps serving', async () => {
    const ask = (headers) => new Promise((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: httpPort, method: 'GET',
            path: `/topics/${TOPIC}/messages?consumer=GID_HTTP_ACL`, headers }, (res) => {
            let b = '';
            res.on('data', (d) => { b += d; });
            res.on('end', () => resolve({ status: res.statusCode, body: b }));
        });
        req.on('error', reject);
        req.end();
    });
    const stale = await ask({ date: new Date(Date.now() - 3600e3).toGMTString(),
        authorization: `MQ ${USER.ak}:AAAAAAAAAAAAAAAAAAAAAAAAAAA=` });
    assert.equal(stale.status, 403);
    assert.match(stale.body, /<Code>TimeExpired<\/Code>/);
    const none = await ask({ date: new Date().toGMTString() });
    assert.equal(none.status, 403);
    assert.match(none.body, /<Code>AccessDenied<\/Code>/);
    const c = new MQClient(endpoint(), USER.ak, USER.sk);
    assert.equal((await c.getProducer('', TOPIC).publishMessage('still up', '')).code, 201);
});
