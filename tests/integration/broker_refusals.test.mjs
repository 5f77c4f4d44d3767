// Every refusal is visible: a burst of refused sends leaves one WARN line per cause per
// second in the server log, each later line counting the refusals it left out, and the
// per-cause counters of GET_BROKER_RUNTIME_INFO (28) count every one of them.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, startApogee } from '../lib/proc.mjs';
import { RemotingClient } from '../lib/remoting.mjs';

// SEND_MESSAGE_V2 (310) header, RocketMQ's short field names.
function sendHdr(topic) {
    return {
        a: 'PG_REFUSED', b: topic, c: 'TBW102', d: '4', e: '-1', f: '0',
        g: String(Date.now()), h: '0', i: '', k: 'false',
    };
}

let srv;
let br;
before(async () => {
    const nsPort = await freePort();
    srv = await startApogee('standalone', ['--maxMessageSize=1024'],
        { extraPorts: { namesrvListenPort: nsPort } });
    br = await RemotingClient.connect(srv.port);
});
after(async () => {
    br?.close();
    const r = await srv?.stop();
    if (r) assert.equal(r.code, 0, `server exit ${JSON.stringify(r)}`);
});

async function runtimeInfo() {
    const r = await br.request(28, {});
    assert.equal(r.code, 0, r.remark);
    return JSON.parse(r.body.toString()).table;
}

// Log lines about refused sends to topic, and the refusals they stand for (1 + "N more").
function refusalLines(topic) {
    const lines = srv.output().split('\n')
        .filter((l) => l.includes('WARN') && l.includes(`refused SEND_MESSAGE_V2 ${topic} `));
    let represented = 0;
    for (const l of lines) {
        const m = /\((\d+) more refusedMessageIllegal since the last line\)/.exec(l);
        represented += 1 + (m ? Number(m[1]) : 0);
    }
    return { lines, represented };
}

test('a burst of oversized sends logs once a second and counts every refusal', async () => {
    const topic = 'T_REFUSE_BIG';
    const big = Buffer.alloc(2000, 0x61);
    const t0 = Date.now();
    const replies = await Promise.all(
        Array.from({ length: 300 }, () => br.request(310, sendHdr(topic), big)));
    const burstMs = Date.now() - t0;
    for (const r of replies) {
        assert.equal(r.code, 13, r.remark); // MESSAGE_ILLEGAL
        assert.match(r.remark, /maxMessageSize/);
    }
    await srv.waitOutput(/refused SEND_MESSAGE_V2 T_REFUSE_BIG /);
    let { lines } = refusalLines(topic);
    // One line per second of burst at most (the burst may straddle a second).
    assert.ok(lines.length >= 1 && lines.length <= Math.ceil(burstMs / 1000) + 1,
        `${lines.length} lines for a ${burstMs} ms burst:\n${lines.join('\n')}`);
    assert.match(lines[0], /from 127\.0\.0\.1:\d+: MESSAGE_ILLEGAL \(13\): the message body is 2000 bytes/);

    // A second later the next refusal logs again, carrying the count left out.
    await new Promise((r) => setTimeout(r, 1100));
    const r = await br.request(310, sendHdr(topic), big);
    assert.equal(r.code, 13);
    await srv.waitOutput(/more refusedMessageIllegal since the last line/);
    const after = refusalLines(topic);
    assert.equal(after.lines.length, lines.length + 1);
    assert.equal(after.represented, 301, after.lines.join('\n'));

    const t = await runtimeInfo();
    assert.equal(t.refusedMessageIllegal, '301');
    assert.equal(t.putMessageFailedTimes, '0'); // refused before the store
});

test('a send to a read-only topic is logged and counted as refusedNoPermission', async () => {
    const topic = 'T_REFUSE_RO';
    const c = await br.request(17, {
        topic, readQueueNums: '4', writeQueueNums: '4', perm: '4', topicFilterType: 'SINGLE_TAG',
    });
    assert.equal(c.code, 0, c.remark);
    const before = Number((await runtimeInfo()).refusedNoPermission);
    const r = await br.request(310, sendHdr(topic), Buffer.from('x'));
    assert.equal(r.code, 16, r.remark); // NO_PERMISSION
    await srv.waitOutput(/WARN .*refused SEND_MESSAGE_V2 T_REFUSE_RO from .*NO_PERMISSION \(16\): topic T_REFUSE_RO is not writable/);
    const t = await runtimeInfo();
    assert.equal(Number(t.refusedNoPermission), before + 1);
    assert.ok(Number(t.refusedTotal) >= 302, t.refusedTotal);
    for (const k of ['refusedDiskFull', 'refusedSystemBusy', 'refusedStoreUnavailable',
        'refusedTopicNotExist', 'refusedGroupNotExist', 'putMessageFailedTimes'])
        assert.equal(typeof t[k], 'string', `${k} present`);
});
