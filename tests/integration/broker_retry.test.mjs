// Where a broker sends consumers and retried messages, checked against what Apache
// RocketMQ answers (the same requests were compared with a real 4.9.8 broker):
// - a send to %RETRY%<group> (what a client does when CONSUMER_SEND_MSG_BACK failed)
//   goes to %DLQ%<group> once reconsumeTimes is past maxReconsumeTimes, and the DLQ
//   topic is readable;
// - a pull past the end of a queue answers PULL_OFFSET_MOVED with the end of the queue
//   as nextBeginOffset, not offset 0 (a consumer would re-read the whole queue).
// - SEARCH_OFFSET_BY_TIMESTAMP gives 5.x's lower boundary, or the upper one on request.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, startApogee } from '../lib/proc.mjs';
import { RemotingClient } from '../lib/remoting.mjs';

// SEND_MESSAGE_V2 (310) header, RocketMQ's short field names.
function sendHdr(topic, { queueId = -1, reconsumeTimes, maxReconsumeTimes } = {}) {
    const h = {
        a: 'PG_RETRY', b: topic, c: 'TBW102', d: '4', e: String(queueId), f: '0',
        g: String(Date.now()), h: '0', i: '', k: 'false',
    };
    if (reconsumeTimes !== undefined) h.j = String(reconsumeTimes);
    if (maxReconsumeTimes !== undefined) h.l = String(maxReconsumeTimes);
    return h;
}

function pullHdr(topic, queueId, offset) {
    return {
        consumerGroup: 'CG_PULL', topic, queueId: String(queueId), queueOffset: String(offset),
        maxMsgNums: '32', sysFlag: '0', commitOffset: '0', suspendTimeoutMillis: '0',
        subscription: '*', subVersion: '0', expressionType: 'TAG',
    };
}

let srv;
let br;
before(async () => {
    const nsPort = await freePort();
    srv = await startApogee('standalone', [], { extraPorts: { namesrvListenPort: nsPort } });
    br = await RemotingClient.connect(srv.port);
});
after(async () => {
    br?.close();
    await srv?.stop();
});

async function maxOffset(topic, queueId) {
    const r = await br.request(30, { topic, queueId: String(queueId) });
    return r.code === 0 ? Number(r.ext.offset) : -r.code;
}

test('a resent retry copy goes to the DLQ only past maxReconsumeTimes', async () => {
    const retry = '%RETRY%CG_R1';
    const dlq = '%DLQ%CG_R1';
    // At the limit: still a retry (RocketMQ 5.x: reconsumeTimes > max goes to the DLQ).
    let r = await br.request(310, sendHdr(retry, { reconsumeTimes: 3, maxReconsumeTimes: 3 }), Buffer.from('at-limit'));
    assert.equal(r.code, 0, r.remark);
    const rq = Number(r.ext.queueId);
    assert.equal(await maxOffset(retry, rq), 1);
    // Past it: into %DLQ%<group>, queue 0.
    r = await br.request(310, sendHdr(retry, { reconsumeTimes: 4, maxReconsumeTimes: 3 }), Buffer.from('past-limit'));
    assert.equal(r.code, 0, r.remark);
    assert.equal(r.ext.queueId, '0');
    assert.equal(await maxOffset(dlq, 0), 1);
    // Without maxReconsumeTimes in the header the group's retryMaxTimes (16) applies.
    r = await br.request(310, sendHdr(retry, { reconsumeTimes: 16 }), Buffer.from('sixteen'));
    assert.equal(r.code, 0, r.remark);
    assert.equal(await maxOffset(dlq, 0), 1);
    r = await br.request(310, sendHdr(retry, { reconsumeTimes: 17 }), Buffer.from('seventeen'));
    assert.equal(r.code, 0, r.remark);
    assert.equal(await maxOffset(dlq, 0), 2);

    // The DLQ can be read (perm 6, as RocketMQ 4.9 and 5.x create it).
    const all = JSON.parse((await br.request(21, {})).body.toString()).topicConfigTable;
    assert.equal(all[dlq].perm, 6);
    assert.equal(all[dlq].readQueueNums, 1);
    const p = await br.request(11, pullHdr(dlq, 0, 0));
    assert.equal(p.code, 0, p.remark);
    assert.ok(p.body.includes(Buffer.from('past-limit')));
    assert.ok(p.body.includes(Buffer.from('seventeen')));
    // A batch to a retry topic is refused, as RocketMQ does (MESSAGE_ILLEGAL).
    const one = Buffer.alloc(20 + 1 + 2);
    one.writeInt32BE(one.length, 0);
    one.write('b', 20);
    r = await br.request(320, { ...sendHdr(retry, { reconsumeTimes: 1 }), m: 'true' }, one);
    assert.equal(r.code, 13, r.remark);
    assert.match(r.remark, /batch request does not support retry group %RETRY%CG_R1/);
    // An ordinary topic's reconsumeTimes means nothing to the broker.
    r = await br.request(310, sendHdr('PlainTopic', { queueId: 0, reconsumeTimes: 99, maxReconsumeTimes: 1 }), Buffer.from('x'));
    assert.equal(r.code, 0, r.remark);
    assert.equal(await maxOffset('PlainTopic', 0), 1);
});

test('a retry send for a group that may not be created is refused with SUBSCRIPTION_GROUP_NOT_EXIST', async () => {
    const nsPort = await freePort();
    const strict = await startApogee('standalone', ['--autoCreateSubscriptionGroup=false'], {
        extraPorts: { namesrvListenPort: nsPort },
    });
    const cl = await RemotingClient.connect(strict.port);
    try {
        const r = await cl.request(310, sendHdr('%RETRY%CG_NONE', { reconsumeTimes: 1 }), Buffer.from('x'));
        assert.equal(r.code, 26, r.remark);
        assert.match(r.remark, /subscription group CG_NONE does not exist/);
    } finally {
        cl.close();
        await strict.stop();
    }
});

test('a pull past the end moves the consumer to the end, not to offset 0', async () => {
    for (let i = 0; i < 5; i++) {
        const r = await br.request(310, sendHdr('MoveTopic', { queueId: 0 }), Buffer.from(`m${i}`));
        assert.equal(r.code, 0, r.remark);
    }
    let p = await br.request(11, pullHdr('MoveTopic', 0, 100));
    assert.equal(p.code, 21, p.remark); // PULL_OFFSET_MOVED
    assert.equal(p.ext.nextBeginOffset, '5');
    assert.equal(p.ext.maxOffset, '5');
    // At the end exactly: nothing new, same offset.
    p = await br.request(11, pullHdr('MoveTopic', 0, 5));
    assert.equal(p.code, 19, p.remark); // PULL_NOT_FOUND
    assert.equal(p.ext.nextBeginOffset, '5');
});

test('SEARCH_OFFSET_BY_TIMESTAMP: lower boundary by default, upper with boundaryType UPPER', async () => {
    const times = [];
    for (let i = 0; i < 3; i++) {
        const r = await br.request(310, sendHdr('TimeTopic', { queueId: 0 }), Buffer.from(`t${i}`));
        assert.equal(r.code, 0, r.remark);
        await new Promise((res) => setTimeout(res, 30));
    }
    // Store times of the three records, from a pull.
    const p = await br.request(11, pullHdr('TimeTopic', 0, 0));
    assert.equal(p.code, 0, p.remark);
    for (let pos = 0; pos < p.body.length; pos += p.body.readInt32BE(pos))
        times.push(Number(p.body.readBigInt64BE(pos + 56))); // STORETIMESTAMP (IPv4 born host)
    assert.equal(times.length, 3);
    const search = async (ts, boundaryType) => {
        const ext = { topic: 'TimeTopic', queueId: '0', timestamp: String(ts) };
        if (boundaryType) ext.boundaryType = boundaryType;
        const r = await br.request(29, ext);
        assert.equal(r.code, 0, r.remark);
        return Number(r.ext.offset);
    };
    assert.equal(await search(times[1]), 1);
    assert.equal(await search(times[1] + 1), 2);
    assert.equal(await search(times[2] + 60000), 3); // past the end: maxOffset
    assert.equal(await search(times[1], 'UPPER'), 1);
    assert.equal(await search(times[1] + 1, 'upper'), 1);
    assert.equal(await search(times[2] + 60000, 'UPPER'), 2); // the last record
    assert.equal(await search(times[0] - 60000, 'UPPER'), 0);
    assert.equal(await search(times[1] + 1, 'LOWER'), 2);
});
