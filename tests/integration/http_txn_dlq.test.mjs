// The REST admin API's transaction and dead-letter views against `apogee standalone`, driven
// with raw remoting requests: half messages from a producer that does not end them are listed
// by GET /api/transactions (producer group, real topic, msgId, age, check count growing as the
// broker checks them back) and leave the list after commit and after rollback; GET
// /api/dlq/<group>/export answers a group's dead letters as JSON lines (properties, body in
// base64 and as text), at most `max`. ~5 s.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, startApogee, waitForPort } from '../lib/proc.mjs';
import { RemotingClient } from '../lib/remoting.mjs';
import { propsString } from '../lib/records.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let srv;
let br;
let base;

before(async () => {
    const httpPort = await freePort();
    srv = await startApogee('standalone', [`--httpListenPort=${httpPort}`, '--transactionTimeOut=200',
        '--transactionCheckInterval=200', '--transactionCheckMax=1000'],
    { extraPorts: { namesrvListenPort: await freePort() } });
    await waitForPort(httpPort, 10000, srv.proc);
    base = `http://127.0.0.1:${httpPort}`;
    br = await RemotingClient.connect(srv.port);
});
after(async () => {
    br?.close();
    await srv?.stop();
});

async function getJson(p) {
    const res = await fetch(base + p);
    const text = await res.text();
    assert.equal(res.status, 200, text);
    return JSON.parse(text);
}

function sendHdr(topic, group, props) {
    return {
        a: group, b: topic, c: 'TBW102', d: '4', e: '0', f: '0', g: String(Date.now()), h: '0',
        i: propsString(props), k: 'false',
    };
}

const physOf = (msgId) => String(Number(BigInt(`0x${msgId.slice(-16)}`)));

function endTx(group, reply, verdict) {
    return br.request(37, {
        producerGroup: group, tranStateTableOffset: reply.ext.queueOffset, commitLogOffset: physOf(reply.ext.msgId),
        commitOrRollback: String(verdict), fromTransactionCheck: 'false', msgId: '', transactionId: '',
    });
}

async function until(pred, ms, what) {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
        if (await pred()) return;
        await sleep(50);
    }
    assert.fail(`timed out waiting for ${what}`);
}

test('GET /api/transactions lists open halves until commit or rollback', async () => {
    const group = 'PG_HTTP_TX';
    const ids = ['0A0000010000000000000000000000F1', '0A0000010000000000000000000000F2'];
    const replies = [];
    for (const [i, id] of ids.entries()) {
        const r = await br.request(310, sendHdr('HttpTxTopic', group,
            { TRAN_MSG: 'true', PGROUP: group, UNIQ_KEY: id, KEYS: `k${i}` }), Buffer.from(`half ${i}`));
        assert.equal(r.code, 0, r.remark);
        replies.push(r);
    }
    const mine = (j) => j.transactions.filter((t) => t.producerGroup === group);
    let j = await getJson('/api/transactions');
    assert.deepEqual(mine(j).map((t) => t.msgId), ids);
    const t0 = mine(j)[0];
    assert.equal(t0.topic, 'HttpTxTopic');
    assert.equal(t0.keys, 'k0');
    assert.ok(t0.ageMillis >= 0 && t0.ageMillis < 60000, String(t0.ageMillis));
    // No producer answers: the broker checks them back and each stays listed once.
    await until(async () => {
        j = await getJson('/api/transactions');
        return mine(j).length === 2 && mine(j).every((t) => t.checkTimes >= 2);
    }, 10000, 'check-backs counted');
    assert.deepEqual(mine(j).map((t) => t.msgId).sort(), ids);
    assert.equal((await endTx(group, replies[0], 8)).code, 0);
    j = await getJson('/api/transactions');
    assert.deepEqual(mine(j).map((t) => t.msgId), [ids[1]]);
    assert.equal(j.committed, 1);
    assert.equal((await endTx(group, replies[1], 12)).code, 0);
    j = await getJson('/api/transactions');
    assert.deepEqual(mine(j), []);
    assert.equal(j.rolledBack, 1);
    const res = await fetch(`${base}/api/transactions?max=x`);
    assert.equal(res.status, 400);
});

test('GET /api/dlq/<group>/export answers dead letters as JSON lines, at most max', async () => {
    const group = 'GID_HTTP_EXPORT';
    const bodies = ['dead one', Buffer.from([0xff, 0x00, 0xfe])];
    for (const [i, body] of bodies.entries()) {
        const s = await br.request(310, sendHdr('HttpDlqTopic', 'PG_X', { KEYS: `dk${i}`, UNIQ_KEY: `0A00000100000000000000000000D0${i}0` }),
            Buffer.from(body));
        assert.equal(s.code, 0, s.remark);
        const r = await br.request(36, {
            offset: physOf(s.ext.msgId), group, delayLevel: '-1', originMsgId: s.ext.msgId,
            originTopic: 'HttpDlqTopic', maxReconsumeTimes: '16',
        });
        assert.equal(r.code, 0, r.remark);
    }
    let res = await fetch(`${base}/api/dlq/${group}/export`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /ndjson/);
    const lines = (await res.text()).split('\n').filter(Boolean).map((l) => JSON.parse(l));
    assert.equal(lines.length, 2);
    assert.equal(lines[0].topic, `%DLQ%${group}`);
    assert.equal(lines[0].bodyText, 'dead one');
    assert.equal(Buffer.from(lines[0].body, 'base64').toString(), 'dead one');
    assert.equal(lines[0].properties.KEYS, 'dk0');
    assert.equal(lines[1].bodyText, null, 'not UTF-8: no text');
    assert.deepEqual([...Buffer.from(lines[1].body, 'base64')], [0xff, 0x00, 0xfe]);
    res = await fetch(`${base}/api/dlq/${group}/export?max=1`);
    assert.equal((await res.text()).split('\n').filter(Boolean).length, 1);
    res = await fetch(`${base}/api/dlq/${group}/export?offset=1`);
    const rest = (await res.text()).split('\n').filter(Boolean).map((l) => JSON.parse(l));
    assert.deepEqual(rest.map((l) => l.properties.KEYS), ['dk1']);
    res = await fetch(`${base}/api/dlq/NO_SUCH_GROUP/export`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), '');
});
