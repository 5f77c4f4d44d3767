// The broker's admin surface that mqadmin (4.9.x and 5.x) uses, driven with raw remoting
// and decoded with the field names the Java tools read: runtime info keys of both
// spellings (28), GET/UPDATE_BROKER_CONFIG (26/25) with the allow-list and replays of the
// CVE-2023-33246 / CVE-2023-37582 request shapes, QUERY_TOPIC_CONSUME_BY_WHO (300),
// GET_SYSTEM_TOPIC_LIST_FROM_BROKER (305), GET_BROKER_CONSUME_STATS (317),
// VIEW_BROKER_STATS_DATA (315), QUERY_CONSUME_QUEUE (321) and CONSUME_MESSAGE_DIRECTLY
// (309, relayed to a raw-protocol client playing the consumer).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { parseFastjson } from '../lib/fastjson.mjs';
import { freePort, startApogee } from '../lib/proc.mjs';
import { decodeRecords } from '../lib/records.mjs';
import { RemotingClient, waitForRoute } from '../lib/remoting.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let srv;
let br;
let trap; // a directory the CVE replays aim their file writes and commands at
before(async () => {
    const nsPort = await freePort();
    srv = await startApogee('standalone', [], { extraPorts: { namesrvListenPort: nsPort } });
    await waitForRoute(nsPort);
    br = await RemotingClient.connect(srv.port);
    trap = fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-cve-'));
});
after(async () => {
    br?.close();
    fs.rmSync(trap, { recursive: true, force: true });
    const r = await srv?.stop();
    if (r) assert.equal(r.code, 0, `server exit ${JSON.stringify(r)}`);
});

// SEND_MESSAGE_V2 (310) to one queue; returns the reply's ext fields.
async function send(topic, body, queueId = 0) {
    const r = await br.request(310, {
        a: 'PG_ADMIN', b: topic, c: 'TBW102', d: '4', e: String(queueId), f: '0',
        g: String(Date.now()), h: '0', i: '', k: 'false',
    }, Buffer.from(body));
    assert.equal(r.code, 0, r.remark);
    return r.ext;
}

async function runtimeInfo() {
    const r = await br.request(28, {});
    assert.equal(r.code, 0, r.remark);
    return JSON.parse(r.body.toString()).table;
}

async function brokerConfig() {
    const r = await br.request(26, {});
    assert.equal(r.code, 0, r.remark);
    const props = {};
    for (const line of r.body.toString().split('\n')) {
        const eq = line.indexOf('=');
        if (eq > 0) props[line.slice(0, eq)] = line.slice(eq + 1);
    }
    return { props, version: JSON.parse(r.ext.version) };
}

function heartbeat(clientId, group, topic) {
    return Buffer.from(JSON.stringify({
        clientID: clientId,
        consumerDataSet: [{
            groupName: group, consumeType: 'CONSUME_PASSIVELY', messageModel: 'CLUSTERING',
            consumeFromWhere: 'CONSUME_FROM_LAST_OFFSET', unitMode: false,
            subscriptionDataSet: [{ topic, subString: '*', tagsSet: [], codeSet: [], subVersion: 1 }],
        }],
        producerDataSet: [],
    }));
}

function pull(group, topic, queueId, offset, max = 32) {
    return br.request(11, {
        consumerGroup: group, topic, queueId: String(queueId), queueOffset: String(offset),
        maxMsgNums: String(max), sysFlag: '0', commitOffset: '0', suspendTimeoutMillis: '0',
        subscription: '*', subVersion: '0', expressionType: 'TAG',
    });
}

test('runtime info carries the keys 4.x and 5.x clusterList read', async () => {
    let t = await runtimeInfo();
    assert.equal(t.earliestMessageTimeStamp, '-1', 'empty log: no earliest message');
    const t0 = Date.now();
    await send('T_RT', 'first');
    const t1 = Date.now();
    await send('T_RT', 'second');
    t = await runtimeInfo();
    // 4.x's clusterList splits getTransferedTps; a missing key was a NullPointerException.
    assert.match(t.getTransferedTps, /^\d+\.\d \d+\.\d \d+\.\d$/);
    assert.equal(t.getTransferedTps.split(' ').length, t.getTransferredTps.split(' ').length);
    for (const k of ['sendThreadPoolQueueSize', 'pullThreadPoolQueueSize',
        'sendThreadPoolQueueHeadWaitTimeMills', 'pullThreadPoolQueueHeadWaitTimeMills',
        'pageCacheLockTimeMills', 'commitLogDiskRatio', 'brokerVersionDesc', 'putTps']) {
        assert.ok(t[k] !== undefined, `runtime info lacks ${k}`);
    }
    assert.ok(Number.isFinite(Number(t.pullThreadPoolQueueSize)));
    // The first record's store time, not the second's.
    const earliest = Number(t.earliestMessageTimeStamp);
    assert.ok(earliest >= t0 - 5 && earliest <= t1 + 5, `earliest ${earliest} not in [${t0}, ${t1}]`);
});
