// The plain ACL through `apogee proxy`: a NameServer, two brokers with aclEnable=true and one
// plain_acl.yml, and two proxies with aclEnable=true on the same file: one given an account of
// its own (innerClientAuthenticationCredentials), which signs every remoting request to the
// brokers and the NameServer, and one without. The npm rocketmq-client-nodejs Producer and
// SimpleConsumer sign their calls (sessionCredentials); the proxy checks them as the broker's
// gRPC port does. A valid account sends and receives through the proxy; a wrong secret is
// refused by the proxy itself (UNAUTHORIZED, the in-broker port's status and remark); through
// the proxy without an account, the brokers refuse and the client sees their reason.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Producer, SimpleConsumer } from 'rocketmq-client-nodejs';
import { freePort, startApogee, waitForPort } from '../lib/proc.mjs';
import { RemotingClient, waitForRoute } from '../lib/remoting.mjs';
import { signedRequest, writeAclFile } from '../lib/acl.mjs';

process.on('uncaughtException', (e) => {
    if (e && e.code === 14 && (/telemetry/i.test(String(e.stack)) || /server shutting down/.test(e.message))) return;
    if (e && e.code === 13 && /telemetry/i.test(String(e.stack))) return;
    throw e;
});
const quiet = { info() {}, warn() {}, error() {}, debug() {}, trace() {} };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const USER = { ak: 'pxUser01', sk: 'pxSecret01' };
const PROXY = { ak: 'pxProxy01', sk: 'pxProxySecret01' };
const TOPIC = 'T_PROXY_ACL';
const GROUP = 'CG_PROXY_ACL';
const QUEUES = 2;
let ns, dir, aclFile, proxy, bare, grpcPort, barePort;
const brokers = [];
const clients = [];

async function startProxy(port, extra) {
    const p = await startApogee('proxy', [`--namesrvAddr=127.0.0.1:${ns.port}`, '--aclEnable=true',
        `--aclFile=${aclFile}`, ...extra], { port, portArg: 'grpcServerPort' });
    await waitForPort(port);
    return p;
}

before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-proxy-acl-'));
    aclFile = writeAclFile(dir, `accounts:
  - accessKey: ${USER.ak}
    secretKey: ${USER.sk}
    defaultTopicPerm: DENY
    defaultGroupPerm: DENY
    topicPerms: [${TOPIC}=PUB|SUB]
    groupPerms: [${GROUP}=SUB]
  - accessKey: ${PROXY.ak}
    secretKey: ${PROXY.sk}
    admin: true
`);
    ns = await startApogee('namesrv');
    for (const name of ['broker-a', 'broker-b']) {
        const srv = await startApogee('broker', [`--namesrvAddr=127.0.0.1:${ns.port}`,
            '--brokerClusterName=ProxyAclCluster', `--brokerName=${name}`, '--brokerIP1=127.0.0.1',
            '--allowLoopbackAdvertise=true', '--aclEnable=true', `--aclFile=${aclFile}`],
        { anyExit: true });
        const rc = await RemotingClient.connect(srv.port);
        brokers.push({ srv, rc });
        const r = await signedRequest(rc, 17, { topic: TOPIC, readQueueNums: String(QUEUES),
            writeQueueNums: String(QUEUES), perm: '6' }, null, PROXY);
        assert.equal(r.code, 0, r.remark);
    }
    await waitForRoute(ns.port);
    const c = await RemotingClient.connect(ns.port);
    try {
        for (let i = 0; i < 200; i++) {
            const r = await c.request(105, { topic: TOPIC });
            if (r.code === 0 && JSON.parse(r.body.toString()).queueDatas.length === 2) break;
            await sleep(50);
        }
    } finally {
        c.close();
    }
    grpcPort = await freePort();
    proxy = await startProxy(grpcPort, [`--innerClientAuthenticationCredentials=${JSON.stringify(
        { accessKey: PROXY.ak, secretKey: PROXY.sk })}`]);
    barePort = await freePort();
    bare = await startProxy(barePort, []);
});
after(async () => {
    let code = 0;
    try {
        for (const c of clients) await c.shutdown().catch(() => {});
        await proxy?.stop();
        await bare?.stop();
        for (const b of brokers) {
            b.rc.close();
            await b.srv.stop();
        }
        await ns?.stop();
    } catch (e) {
        console.error(e);
        code = 1;
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
        setImmediate(() => process.exit(code));
    }
});

const creds = (c) => ({ accessKey: c.ak, accessSecret: c.sk });
const text = (e) => `${e} ${e.cause ?? ''} ${e.cause?.cause ?? ''}`;

test('a valid account sends and receives through the proxy, which signs for the brokers', async () => {
    const p = new Producer({ endpoints: `127.0.0.1:${grpcPort}`, topics: [TOPIC], logger: quiet,
        sessionCredentials: creds(USER), requestTimeout: 5000 });
    await p.startup();
    clients.push(p);
    const sent = new Set();
    for (let i = 0; i < 10; i++) {
        await p.send({ topic: TOPIC, body: Buffer.from(`acl-${i}`) });
        sent.add(`acl-${i}`);
    }
    const c = new SimpleConsumer({ endpoints: `127.0.0.1:${grpcPort}`, consumerGroup: GROUP,
        logger: quiet, sessionCredentials: creds(USER), subscriptions: new Map([[TOPIC, '*']]),
        awaitDuration: 1000, requestTimeout: 5000 });
    await c.startup();
    clients.push(c);
    const got = new Set();
    const from = new Set();
    for (let round = 0; got.size < sent.size && round < 30; round++) {
        for (const m of await c.receive(16, 30000)) {
            got.add(m.body.toString());
            from.add(m.receiptHandle.split(' ')[5]);
            await c.ack(m);
        }
    }
    assert.deepEqual([...got].sort(), [...sent].sort());
    assert.deepEqual([...from].sort(), ['broker-a', 'broker-b'], 'both brokers served the proxy');
});

test('a wrong secret is refused by the proxy UNAUTHORIZED, as the broker\'s gRPC port does', async () => {
    const p = new Producer({ endpoints: `127.0.0.1:${grpcPort}`, logger: quiet,
        sessionCredentials: { accessKey: USER.ak, accessSecret: 'wrongSecret01' },
        requestTimeout: 5000 });
    await p.startup();
    clients.push(p);
    const t0 = Date.now();
    await assert.rejects(p.send({ topic: TOPIC, body: Buffer.from('nope') }), (e) => {
        const all = text(e);
        assert.match(all, /40100|Unauthorized/i, all);
        assert.match(all, /signature check failed for accessKey 'pxUser01'/, all);
        return true;
    });
    assert.ok(Date.now() - t0 < 15000, 'refused, not timed out');
    await proxy.waitOutput(/\[acl\] \w+ from 127.0.0.1:\d+ refused: ACL: signature check failed/);
    // An unsigned client too.
    const q = new Producer({ endpoints: `127.0.0.1:${grpcPort}`, logger: quiet, requestTimeout: 5000 });
    await q.startup();
    clients.push(q);
    await assert.rejects(q.send({ topic: TOPIC, body: Buffer.from('nope') }),
        (e) => /carries no AccessKey/.test(text(e)) || assert.fail(text(e)));
});

test('a proxy without an account of its own: the brokers refuse, the client hears why', async () => {
    await bare.waitOutput(/aclEnable=true but innerClientAuthenticationCredentials is empty/);
    const p = new Producer({ endpoints: `127.0.0.1:${barePort}`, logger: quiet,
        sessionCredentials: creds(USER), requestTimeout: 5000 });
    await p.startup();
    clients.push(p);
    await assert.rejects(p.send({ topic: TOPIC, body: Buffer.from('unsigned hop') }), (e) => {
        const all = text(e);
        assert.match(all, /40300|Forbidden/i, all);
        assert.match(all, /AccessKey/, all);
        return true;
    });
});
