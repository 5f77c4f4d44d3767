// The REST admin API on the HTTP port (docs/http-api.md) against `apogee standalone`: topics
// created, changed, inspected and deleted over HTTP and seen the same by `apogee admin`; a test
// message sent and found by key, by client msgId and by offset msgId; a consumer group's lag
// before and after an ali-ons consumer; offset reset with a preview that changes nothing; a
// dead letter browsed and resent; bad input answered with JSON errors; and, with aclEnable=true,
// writes refused without an ACL account. ~20 s.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { freePort, runAdmin, startApogee, startStandaloneRouted, waitForPort } from '../lib/proc.mjs';
import { writeAclFile } from '../lib/acl.mjs';

const require = createRequire(import.meta.url);

let sa;
let ns;
let base;

export async function api(baseUrl, method, p, body, headers = {}) {
    const res = await fetch(baseUrl + p, {
        method,
        headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let json = null;
    try {
        json = JSON.parse(text);
    } catch {
        // not JSON: left null
    }
    return { status: res.status, json, text };
}
const call = (m, p, b, h) => api(base, m, p, b, h);

before(async () => {
    const httpPort = await freePort();
    ({ sa, ns } = await startStandaloneRouted([`--httpListenPort=${httpPort}`]));
    await waitForPort(httpPort, 10000, sa.proc);
    base = `http://127.0.0.1:${httpPort}`;
});
after(async () => {
    try {
        await sa?.stop();
    } finally {
        // ali-ons keeps timers alive; exit with the runner's verdict.
        setImmediate(() => process.exit());
    }
});

test('topics: create, update, stats, delete; apogee admin sees the same table', async () => {
    assert.deepEqual((await call('GET', '/api/session')).json, { acl: false, accessKey: null });
    let r = await call('POST', '/api/topics', { topic: 'HA_T1', readQueueNums: 4, writeQueueNums: 4 });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.created, true);
    r = await call('GET', '/api/topics');
    assert.equal(r.json.topicConfigTable.HA_T1.writeQueueNums, 4);
    const st = await runAdmin(['topicStatus', '-t', 'HA_T1', '-n', ns]);
    assert.equal(st.code, 0, st.out);
    r = await call('PUT', '/api/topics/HA_T1', { writeQueueNums: 2, readQueueNums: 2, perm: 4 });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.perm, 4);
    assert.equal(r.json.created, false);
    r = await call('GET', '/api/topics/HA_T1/stats');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.offsetTable.length, 2);
    assert.deepEqual(r.json.offsetTable.map((q) => q.queueId).sort(), [0, 1]);
    // read-only now: a test message is refused with NO_PERMISSION
    r = await call('POST', '/api/topics/HA_T1/messages', { body: 'x' });
    assert.equal(r.status, 403, r.text);
    assert.equal(r.json.code, 16);
    r = await call('DELETE', '/api/topics/HA_T1');
    assert.equal(r.status, 200, r.text);
    r = await call('GET', '/api/topics');
    assert.equal(r.json.topicConfigTable.HA_T1, undefined);
    r = await call('DELETE', '/api/topics/HA_T1');
    assert.equal(r.status, 404);
    assert.equal(r.json.code, 17);
});

test('bad input: JSON errors with the RocketMQ code and what to change', async () => {
    const cases = [
        ['POST', '/api/topics', '{not json', 400, 29],
        ['POST', '/api/topics', [1, 2], 400, 29],
        ['POST', '/api/topics', {}, 400, 29],
        ['POST', '/api/topics', { topic: 'bad topic name!' }, 400, 29],
        ['POST', '/api/topics', { topic: 'HA_Q', writeQueueNums: 0 }, 400, 29],
        ['POST', '/api/topics', { topic: 'HA_Q', perm: 9 }, 400, 29],
        ['POST', '/api/topics', { topic: 'HA_Q', readQueueNums: 'four' }, 400, 29],
        ['POST', '/api/topics', { topic: 'TBW102' }, 403, 16],
        ['PUT', '/api/topics/NO_SUCH_TOPIC', { perm: 6 }, 404, 17],
        ['GET', '/api/topics/NO_SUCH_TOPIC/stats', undefined, 404, 17],
        ['POST', '/api/topics/NO_SUCH_TOPIC/messages', { body: 'x' }, 404, 17],
        ['GET', '/api/messages?key=k', undefined, 400, 29],
        ['GET', '/api/messages?topic=T&key=k&max=many', undefined, 400, 29],
        ['GET', '/api/messages?topic=%zz&key=k', undefined, 400, 29],
        ['GET', '/api/dlq/G?offset=x', undefined, 400, 29],
        ['GET', '/api/groups/G/consume-stats?topic=%00', undefined, 200, null],
        ['GET', '/api/messages/nothex', undefined, 400, 29],
        ['GET', '/api/messages/7F00000100002A9F0000000000ABCDEF', undefined, 404, 22],
        ['POST', '/api/dlq/G/resend', {}, 400, 29],
        ['POST', '/api/groups/G/reset-offset', { timestamp: 0 }, 400, 29],
        ['GET', '/api/nothing', undefined, 404, 29],
        ['PATCH', '/api/topics', undefined, 405, null],
        ['DELETE', '/api/groups', undefined, 405, 29],
    ];
    for (const [m, p, b, status, code] of cases) {
        const r = await call(m, p, b);
        assert.equal(r.status, status, `${m} ${p}: ${r.text}`);
        if (code !== null) {
            assert.equal(r.json?.code, code, `${m} ${p}: ${r.text}`);
            assert.ok(r.json.error.length > 5, r.text);
        }
    }
    // the broker is still fine
    assert.equal((await call('GET', '/api/cluster')).status, 200);
});

test('messages: send, find by key, by msgId and by offset msgId; body and properties', async () => {
    let r = await call('POST', '/api/topics', { topic: 'HA_MSG', queueNums: 2 });
    assert.equal(r.status, 200, r.text);
    r = await call('POST', '/api/topics/HA_MSG/messages', {
        body: 'héllo', tags: 'TagA', keys: 'order-1 order-2', properties: { color: 'blue' },
    });
    assert.equal(r.status, 200, r.text);
    const { msgId, offsetMsgId } = r.json;
    assert.match(msgId, /^[0-9A-F]{32}$/);
    r = await call('GET', '/api/messages?topic=HA_MSG&key=order-2');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.messages.length, 1);
    const m = r.json.messages[0];
    assert.equal(Buffer.from(m.body, 'base64').toString('utf8'), 'héllo');
    assert.equal(m.properties.TAGS, 'TagA');
    assert.equal(m.properties.color, 'blue');
    assert.equal(m.msgId, msgId);
    r = await call('GET', `/api/messages/${msgId}?topic=HA_MSG`);
    assert.equal(r.json.messages[0].offsetMsgId, offsetMsgId);
    r = await call('GET', `/api/messages/${offsetMsgId}`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.messages[0].msgId, msgId);
    r = await call('GET', '/api/messages?topic=HA_MSG&key=nope');
    assert.equal(r.json.messages.length, 0);
});

test('groups: lag falls to 0 after an ali-ons consumer; reset with preview; DLQ resend', async () => {
    const { Consumer } = require('ali-ons');
    const topic = 'HA_LAG';
    const group = 'GID_HA_LAG';
    let r = await call('POST', '/api/topics', { topic, queueNums: 2 });
    assert.equal(r.status, 200, r.text);
    for (let i = 0; i < 6; i++) {
        r = await call('POST', `/api/topics/${topic}/messages`, { body: `m${i}`, keys: `k${i}` });
        assert.equal(r.status, 200, r.text);
    }
    await new Promise((res) => setTimeout(res, 500)); // the broker re-registers the new route
    const consumer = new Consumer({
        httpclient: {}, nameSrv: ns, consumerGroup: group, instanceName: 'http-admin',
        consumeFromWhere: 'CONSUME_FROM_FIRST_OFFSET', pollNameServerInteval: 1000,
        rebalanceInterval: 1000, persistConsumerOffsetInterval: 200, logger: quiet(),
    });
    consumer.on('error', () => {});
    const got = [];
    consumer.subscribe(topic, '*', async (msg) => {
        got.push(msg.body.toString());
    });
    try {
        await consumer.ready();
        await until(async () => {
            const c = await call('GET', `/api/groups/${group}/consume-stats?topic=${topic}`);
            return c.json && c.json.offsetTable.length === 2 && c.json.diffTotal === 0;
        }, 30000, 'lag 0');
        assert.equal(got.length, 6);
        r = await call('GET', `/api/groups/${group}/connections`);
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.online, true);
        assert.equal(r.json.consistent, true);
        assert.ok(r.json.connectionSet.length >= 1);
        r = await call('GET', '/api/groups');
        assert.ok(r.json.groups.some((g) => g.group === group && g.online));
    } finally {
        await consumer.close();
    }
    // Preview a reset to the start: offsets computed, nothing changed.
    r = await call('POST', `/api/groups/${group}/reset-offset`, { topic, timestamp: 0, force: true, preview: true });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.offsetTable.map((q) => q.offset), [0, 0]);
    r = await call('GET', `/api/groups/${group}/consume-stats?topic=${topic}`);
    assert.equal(r.json.diffTotal, 0);
    r = await call('POST', `/api/groups/${group}/reset-offset`, { topic, timestamp: 0, force: true });
    assert.equal(r.status, 200, r.text);
    r = await call('GET', `/api/groups/${group}/consume-stats?topic=${topic}`);
    assert.equal(r.json.diffTotal, 6);
    // Without force a reset only moves offsets back: a later time leaves them where they are.
    r = await call('POST', `/api/groups/${group}/reset-offset`, { topic, timestamp: Date.now() + 60000 });
    assert.equal(r.status, 200, r.text);
    r = await call('GET', `/api/groups/${group}/consume-stats?topic=${topic}`);
    assert.equal(r.json.diffTotal, 6);

    // A dead letter: a group with no retries sends the failed message straight to %DLQ%.
    const dgroup = 'GID_HA_DLQ';
    const pr = await call('POST', `/api/topics/${topic}/messages`, { body: 'dead', keys: 'dead-1' });
    assert.equal(pr.status, 200, pr.text);
    const dl = await dlqViaSendBack(dgroup, topic);
    r = await call('GET', `/api/dlq/${dgroup}`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.messages.length, 1, r.text);
    assert.equal(Buffer.from(r.json.messages[0].body, 'base64').toString(), 'dead');
    assert.equal(r.json.messages[0].properties.RETRY_TOPIC, topic);
    r = await call('POST', `/api/dlq/${dgroup}/resend`, { commitLogOffset: r.json.messages[0].commitLogOffset });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.topic, topic);
    r = await call('GET', `/api/messages?topic=${topic}&key=dead-1`);
    assert.equal(r.json.messages.length, 2); // the original and the resent copy
    r = await call('POST', `/api/dlq/${dgroup}/resend`, { commitLogOffset: pr.json.commitLogOffset });
    assert.equal(r.status, 400, r.text); // not a record of that DLQ
    void dl;
});

// Moves the newest message of topic into %DLQ%<group> with CONSUMER_SEND_MSG_BACK
// (delayLevel -1) over the raw remoting client.
async function dlqViaSendBack(group, topic) {
    const { RemotingClient } = await import('../lib/remoting.mjs');
    const c = await RemotingClient.connect(sa.port);
    try {
        const q = await call('GET', `/api/messages?topic=${topic}&key=dead-1`);
        const off = q.json.messages[0].commitLogOffset;
        const r = await c.request(36, {
            offset: String(off), group, delayLevel: '-1', originMsgId: q.json.messages[0].offsetMsgId,
            originTopic: topic, maxReconsumeTimes: '16',
        });
        assert.equal(r.code, 0, r.remark);
        return off;
    } finally {
        c.close();
    }
}

test('aclEnable=true: writes need an ACL account over HTTP Basic', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-http-acl-'));
    writeAclFile(dir, `globalWhiteRemoteAddresses:
accounts:
  - accessKey: httpUser1
    secretKey: httpSecret1
    admin: false
    defaultTopicPerm: DENY
    topicPerms:
      - HA_ACL=PUB|SUB
  - accessKey: httpAdmin1
    secretKey: httpAdminSecret1
    admin: true
`);
    const httpPort = await freePort();
    const s2 = await startApogee('standalone', [`--httpListenPort=${httpPort}`, '--aclEnable=true'],
        { dir, extraPorts: { namesrvListenPort: await freePort() } });
    try {
        await waitForPort(httpPort, 10000, s2.proc);
        const b2 = `http://127.0.0.1:${httpPort}`;
        const basic = (ak, sk) => ({ authorization: 'Basic ' + Buffer.from(`${ak}:${sk}`).toString('base64') });
        let r = await api(b2, 'POST', '/api/topics', { topic: 'HA_ACL' });
        assert.equal(r.status, 401, r.text);
        assert.equal(r.json.code, 16);
        r = await api(b2, 'POST', '/api/topics', { topic: 'HA_ACL' }, basic('httpAdmin1', 'wrong'));
        assert.equal(r.status, 403, r.text);
        // GET /api/session: whether an account is needed, and whose credentials pass.
        r = await api(b2, 'GET', '/api/session');
        assert.deepEqual(r.json, { acl: true, accessKey: null });
        r = await api(b2, 'GET', '/api/session', undefined, basic('httpUser1', 'wrong'));
        assert.equal(r.status, 403, r.text);
        r = await api(b2, 'GET', '/api/session', undefined, basic('httpUser1', 'httpSecret1'));
        assert.deepEqual(r.json, { acl: true, accessKey: 'httpUser1' });
        r = await api(b2, 'POST', '/api/topics', { topic: 'HA_ACL' }, basic('httpUser1', 'httpSecret1'));
        assert.equal(r.status, 403, r.text); // topic creation needs an admin account
        r = await api(b2, 'POST', '/api/topics', { topic: 'HA_ACL' }, basic('httpAdmin1', 'httpAdminSecret1'));
        assert.equal(r.status, 200, r.text);
        r = await api(b2, 'POST', '/api/topics/HA_ACL/messages', { body: 'x' }, basic('httpUser1', 'httpSecret1'));
        assert.equal(r.status, 200, r.text);
        assert.equal((await api(b2, 'GET', '/api/topics')).status, 200); // reads of tables stay open
    } finally {
        await s2.stop();
    }
});

function quiet() {
    const n = () => {};
    return { info: n, warn: n, error: n, debug: n };
}

async function until(fn, ms, what) {
    const end = Date.now() + ms;
    for (;;) {
        if (await fn()) return;
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 200));
    }
}

test('console: / and /assets/* served from the binary with content types and ETags', async () => {
    let res = await fetch(base + '/');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/html/);
    const html = await res.text();
    const refs = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]);
    assert.ok(refs.includes('/assets/app.js') && refs.includes('/assets/app.css'), html);
    for (const [p, type] of [['/assets/app.js', /^text\/javascript/], ['/assets/app.css', /^text\/css/]]) {
        res = await fetch(base + p);
        assert.equal(res.status, 200, p);
        assert.match(res.headers.get('content-type'), type);
        const etag = res.headers.get('etag');
        assert.match(etag, /^"[0-9a-f]{16}"$/);
        assert.equal(res.headers.get('cache-control'), 'no-cache');
        await res.arrayBuffer();
        res = await fetch(base + p, { headers: { 'if-none-match': etag } });
        assert.equal(res.status, 304, p);
    }
    assert.equal((await fetch(base + '/assets/no-such.js')).status, 404);
});

test('SYNC_FLUSH with a slow disk: a test message is answered after its flush, other requests meanwhile', async () => {
    const FLUSH_MS = 1500;
    const httpPort = await freePort();
    const s2 = await startApogee('standalone', [`--httpListenPort=${httpPort}`, '--flushDiskType=SYNC_FLUSH'], {
        extraPorts: { namesrvListenPort: await freePort() },
        env: { APOGEE_STORE_FAULTS: '1', APOGEE_STORE_FAULT_FLUSH_DELAY_MS: String(FLUSH_MS) },
    });
    try {
        await waitForPort(httpPort, 10000, s2.proc);
        const b2 = `http://127.0.0.1:${httpPort}`;
        let r = await api(b2, 'POST', '/api/topics', { topic: 'HA_SYNC', queueNums: 2 });
        assert.equal(r.status, 200, r.text);
        const t0 = Date.now();
        let sentAt = 0;
        const send = api(b2, 'POST', '/api/topics/HA_SYNC/messages', { body: 'durable', keys: 'sync-1' })
            .then((x) => { sentAt = Date.now(); return x; });
        await new Promise((res) => setTimeout(res, 200));
        // A second connection is served while the send waits for its flush.
        r = await api(b2, 'GET', '/api/topics');
        const gotAt = Date.now();
        assert.equal(r.status, 200, r.text);
        assert.ok(r.json.topicConfigTable.HA_SYNC);
        assert.equal(sentAt, 0, 'the send is not answered before its flush');
        assert.ok(gotAt - t0 < FLUSH_MS - 300, `GET answered after ${gotAt - t0} ms`);
        r = await send;
        assert.equal(r.status, 200, r.text);
        assert.match(r.json.msgId, /^[0-9A-F]{32}$/);
        assert.ok(sentAt - t0 >= FLUSH_MS - 300, `send answered after ${sentAt - t0} ms`);
        r = await api(b2, 'GET', '/api/messages?topic=HA_SYNC&key=sync-1');
        assert.equal(r.json.messages.length, 1, r.text);
        assert.equal(Buffer.from(r.json.messages[0].body, 'base64').toString(), 'durable');
    } finally {
        await s2.stop();
    }
});

test('groups: subscription consistency per client: ali-ons consumers with the same and with different tags', async () => {
    const { Consumer } = require('ali-ons');
    const topic = 'HA_SUBS';
    const group = 'GID_HA_SUBS';
    let r = await call('POST', '/api/topics', { topic, queueNums: 2 });
    assert.equal(r.status, 200, r.text);
    await new Promise((res) => setTimeout(res, 500)); // the broker re-registers the new route
    const consumers = [];
    const start = async (name, tags) => {
        const c = new Consumer({
            httpclient: {}, nameSrv: ns, consumerGroup: group, instanceName: name,
            pollNameServerInteval: 1000, rebalanceInterval: 1000, heartbeatInterval: 1000,
            logger: quiet(),
        });
        c.on('error', () => {});
        c.subscribe(topic, tags, async () => {});
        consumers.push(c);
        await c.ready();
    };
    const members = async (n) => {
        let last;
        await until(async () => {
            last = (await call('GET', `/api/groups/${group}/connections`)).json;
            return last?.connectionSet?.length === n &&
                last.connectionSet.every((m) => m.subscriptionTable?.[topic]);
        }, 20000, `${n} members with their subscriptions`);
        return last;
    };
    try {
        await start('subs-a', 'TagA || TagB');
        await start('subs-b', 'TagA || TagB');
        let c = await members(2);
        assert.equal(c.consistent, true, JSON.stringify(c));
        assert.equal(c.topicsOk, true);
        assert.deepEqual(c.connectionSet.map((m) => m.subscriptionTable[topic].subString), ['TagA || TagB', 'TagA || TagB']);
        await start('subs-c', 'TagC');
        c = await members(3);
        assert.equal(c.consistent, false, JSON.stringify(c));
        assert.equal(c.topicsOk, true);
        assert.ok(c.problems.some((p) => /do not all subscribe/.test(p)), JSON.stringify(c.problems));
        const exprs = c.connectionSet.map((m) => m.subscriptionTable[topic].subString).sort();
        assert.deepEqual(exprs, ['TagA || TagB', 'TagA || TagB', 'TagC']);
    } finally {
        for (const x of consumers) await x.close();
    }
});
