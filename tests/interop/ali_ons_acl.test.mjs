// Interop: ali-ons 3.12.0 with accessKeyId/accessKeySecret against `apogee standalone
// --aclEnable=true`. ali-ons signs every request (lib/channel.js: AccessKey, OnsChannel and
// the header fields, sorted by key, then the body; HMAC-SHA1, Base64), as RocketMQ's
// AclClientRPCHook does; the broker must accept those signatures and refuse a wrong secret.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { onsHarness, ons, until, sleep } from './ons.mjs';
import { signedRequest, writeAclFile } from '../lib/acl.mjs';

const { Message } = ons;
const h = onsHarness();
const USER = { ak: 'onsUser01', sk: 'onsSecret01' };
const ADMIN = { ak: 'onsAdmin01', sk: 'onsAdminSecret01' };
const TOPIC = 'T_ONS_ACL';

before(async () => {
    h.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-ons-acl-'));
    writeAclFile(h.dir, `accounts:
  - accessKey: ${USER.ak}
    secretKey: ${USER.sk}
    defaultTopicPerm: DENY
    defaultGroupPerm: DENY
    topicPerms: [${TOPIC}=PUB|SUB]
    groupPerms: [CG_ONS_ACL=SUB]
  - accessKey: ${ADMIN.ak}
    secretKey: ${ADMIN.sk}
    admin: true
`);
    // The NameServer checks the ACL too: the broker registers with an admin account, and the
    // harness's route poll is signed.
    await h.start(['--aclEnable=true', `--innerClientAuthenticationCredentials=${JSON.stringify(
        { accessKey: ADMIN.ak, secretKey: ADMIN.sk })}`], { cred: USER });
    const r = await signedRequest(h.admin, 17, {
        topic: TOPIC, defaultTopic: 'TBW102', readQueueNums: '4', writeQueueNums: '4', perm: '6',
        topicFilterType: 'SINGLE_TAG', topicSysFlag: '0', order: 'false',
    }, null, ADMIN);
    assert.equal(r.code, 0, r.remark);
    await sleep(200);
});

after(async () => {
    try {
        await h.stop();
    } finally {
        setImmediate(() => process.exit());
    }
});

test('a signed ali-ons producer and consumer send and receive under ACL', async () => {
    const creds = { accessKeyId: USER.ak, accessKeySecret: USER.sk };
    const p = await h.newProducer('PG_ONS_ACL', creds);
    const N = 50;
    for (let i = 0; i < N; i++) {
        const r = await p.send(new Message(TOPIC, 'TagA', Buffer.from(`acl-${i}`)));
        assert.equal(r.sendStatus, 'SEND_OK');
    }
    const got = new Set();
    const c = h.newConsumer('CG_ONS_ACL', 'inst-acl', creds);
    c.subscribe(TOPIC, '*', async (msg) => {
        got.add(msg.body.toString());
    });
    await until(() => got.size === N, 30000, () => `${got.size}/${N} messages`);
    assert.doesNotMatch(h.srv.output(), /refused .*ACL: signature check failed/);
});

test('an ali-ons producer with a wrong secret is refused with NO_PERMISSION', async () => {
    const p = new ons.Producer(h.opts({
        producerGroup: 'PG_ONS_BAD', instanceName: 'inst-bad',
        accessKeyId: USER.ak, accessKeySecret: 'wrongSecret01',
    }));
    p.on('error', () => {});
    h.clients.push(p);
    await p.ready();
    // ali-ons signs its NameServer requests too: the route lookup is refused first, and
    // ali-ons passes the NameServer's remark on.
    await assert.rejects(p.send(new Message(TOPIC, 'TagA', Buffer.from('nope'))),
        /ACL: signature check failed for accessKey 'onsUser01'/);
    await h.srv.waitOutput(/\[namesrv\] refused GET_ROUTEINFO_BY_TOPIC \(105\) from 127\.0\.0\.1:\d+ accessKey onsUser01: ACL: signature check failed for accessKey 'onsUser01'/);
});
