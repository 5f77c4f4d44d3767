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
let nsPort;
let trap; // a directory the CVE replays aim their file writes and commands at
before(async () => {
    nsPort = await freePort();
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

test('GET_BROKER_CONFIG answers every key as .properties with a DataVersion header', async () => {
    const { props, version } = await brokerConfig();
    assert.equal(props.brokerName, 'broker-a');
    assert.equal(props.listenPort, String(srv.port));
    assert.equal(props.brokerPermission, '6');
    assert.equal(props.storePathRootDir, srv.dir);
    assert.ok(!Object.values(props).some((v) => v.includes('  # ')), 'source comments leak');
    // The keys mqadmin exportConfigs copies (it fails when one is absent), Apogee's fixed
    // answers for those it has no setting for among them.
    for (const k of ['brokerClusterName', 'brokerId', 'brokerName', 'brokerRole', 'fileReservedTime',
        'flushDiskType', 'maxMessageSize', 'messageDelayLevel', 'autoCreateTopicEnable',
        'autoCreateSubscriptionGroup']) assert.ok(props[k] !== undefined, `${k} missing`);
    assert.equal(props.filterServerNums, '0');
    assert.equal(props.slaveReadEnable, 'false');
    assert.equal(props.traceOn, 'true');
    assert.equal(props.traceTopicEnable, 'false');
    assert.equal(props.msgTraceTopicName, 'RMQ_SYS_TRACE_TOPIC');
    assert.equal(props.useTLS, 'false');
    assert.equal(typeof version.counter, 'number');
    assert.ok(version.timestamp > 0);
});

test('UPDATE_BROKER_CONFIG applies allow-listed keys live', async () => {
    const topic = 'T_CFG_LIVE';
    for (let i = 0; i < 5; i++) await send(topic, `m${i}`);
    const before = (await brokerConfig()).version.counter;

    let r = await br.request(25, {}, Buffer.from('maxTransferCountOnMessageInMemory=2\n'));
    assert.equal(r.code, 0, r.remark);
    let p = await pull('CG_CFG', topic, 0, 0);
    assert.equal(p.code, 0, p.remark);
    assert.equal(decodeRecords(p.body).length, 2, 'a pull now returns at most 2 messages');
    let cfg = await brokerConfig();
    assert.equal(cfg.props.maxTransferCountOnMessageInMemory, '2');
    assert.equal(cfg.version.counter, before + 1);

    // Write permission off: sends are refused; back on: accepted.
    r = await br.request(25, {}, Buffer.from('brokerPermission=4\n'));
    assert.equal(r.code, 0, r.remark);
    const s = await br.request(310, {
        a: 'PG_ADMIN', b: topic, c: 'TBW102', d: '4', e: '0', f: '0', g: String(Date.now()),
        h: '0', i: '', k: 'false',
    }, Buffer.from('x'));
    assert.equal(s.code, 16, s.remark);
    r = await br.request(25, {}, Buffer.from('brokerPermission=6\nmaxTransferCountOnMessageInMemory=32'));
    assert.equal(r.code, 0, r.remark);
    await send(topic, 'after');
    p = await pull('CG_CFG', topic, 0, 0);
    assert.equal(decodeRecords(p.body).length, 6);
    cfg = await brokerConfig();
    assert.equal(cfg.props.brokerPermission, '6');
});

test('UPDATE_BROKER_CONFIG refuses keys not marked runtime in config.def and changes nothing', async () => {
    const cases = [
        ['storePathRootDir=/tmp/elsewhere', 16, /storePathRootDir.*file, directory, command, class or server location/],
        ['flushIntervalCommitLog=100', 16, /flushIntervalCommitLog.*is read only at start-up/],
        ['fileReservedTime=1', 16, /fileReservedTime.*is read only at start-up/],
        ['noSuchKeyAnywhere=1', 16, /noSuchKeyAnywhere.*is not a configuration key/],
        ['maxTransferCountOnMessageInMemory=abc', 1, /maxTransferCountOnMessageInMemory/],
        ['maxTransferCountOnMessageInMemory=0', 1, /maxTransferCountOnMessageInMemory/],
        ['messageFilterClass=com.evil.Filter', 16, /messageFilterClass/],
        // A value with a line break cannot reach the log or the remark as one.
        ['maxTransferCountOnMessageInMemory=1\\u000aforged', 1, /=1\?forged: not an integer/],
    ];
    for (const [body, code, re] of cases) {
        const before = await brokerConfig();
        // An allowed key first: the whole request is refused, so it must not apply either.
        const r = await br.request(25, {}, Buffer.from(`shortPollingTimeMills=4321\n${body}\n`));
        assert.equal(r.code, code, `${body}: ${r.code} ${r.remark}`);
        assert.match(r.remark, re);
        const after = await brokerConfig();
        assert.deepEqual(after.props, before.props, `${body} changed the config`);
        assert.equal(after.version.counter, before.version.counter);
    }
});

// Lists every file under dir (relative paths).
function tree(dir) {
    const out = [];
    const walk = (d) => {
        for (const e of fs.readdirSync(d, { withFileTypes: true })) {
            const p = path.join(d, e.name);
            if (e.isDirectory()) walk(p);
            else out.push(path.relative(dir, p));
        }
    };
    walk(dir);
    return out.sort();
}

// Child processes of the broker, from /proc (Linux): every task's children list.
function children(pid) {
    const tasks = fs.readdirSync(`/proc/${pid}/task`);
    return tasks.flatMap((t) => {
        try {
            return fs.readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
        } catch {
            return [];
        }
    });
}

test('CVE-2023-33246 and CVE-2023-37582 request shapes: refused, nothing run, no file', async () => {
    const marker = path.join(trap, 'pwned');
    const written = path.join(trap, 'evil.properties');
    const payloads = [
        // CVE-2023-33246: filter server spawning with a shell command in rocketmqHome.
        `filterServerNums=1\nrocketmqHome=-c $@|sh . echo touch ${marker};\n`,
        `rocketmqHome=-c $@|sh . echo touch ${marker};\nfilterServerNums=1\n`,
        // CVE-2023-37582 (NameServer config written where configStorePath points), sent to
        // the broker's UPDATE_BROKER_CONFIG as well.
        `configStorePath=${written}\nproductEnvName=test/../../${path.basename(trap)}\n`,
        `brokerConfigPath=${written}\nkvConfigPath=${written}\n`,
    ];
    const filesBefore = tree(srv.dir).filter((f) => !f.endsWith('.tmp'));
    for (const body of payloads) {
        const first = body.slice(0, body.indexOf('='));
        const r = await br.request(25, {}, Buffer.from(body));
        assert.equal(r.code, 16, `${first}: ${r.code} ${r.remark}`);
        assert.match(r.remark, new RegExp(`'${first}' names a file, directory, command, class or server location`));
    }
    // The NameServer request code on the broker port is not served.
    const ns = await br.request(318, {}, Buffer.from(`configStorePath=${written}\n`));
    assert.equal(ns.code, 3, ns.remark);
    await sleep(300); // a spawned shell would have run by now
    assert.deepEqual(children(srv.proc.pid), [], 'the broker started a process');
    assert.ok(!fs.existsSync(marker), 'the command ran');
    assert.ok(!fs.existsSync(written), 'a file was written where the request said');
    assert.deepEqual(fs.readdirSync(trap), []);
    const filesAfter = tree(srv.dir).filter((f) => !f.endsWith('.tmp'));
    assert.deepEqual(filesAfter.filter((f) => !filesBefore.includes(f) && !f.startsWith('config/')),
        [], 'new files in the store directory');
    assert.equal(srv.proc.exitCode, null, 'the broker is still running');
});

test('QUERY_TOPIC_CONSUME_BY_WHO lists subscribing and committing groups', async () => {
    const topic = 'T_WHO';
    await send(topic, 'w');
    const r0 = await br.request(300, { topic });
    assert.equal(r0.code, 0, r0.remark);
    assert.deepEqual(JSON.parse(r0.body.toString()).groupList, []);
    // One group only commits an offset, another only heartbeats a subscription.
    const c = await br.request(15, { consumerGroup: 'CG_WHO_OFFSET', topic, queueId: '0', commitOffset: '1' });
    assert.equal(c.code, 0, c.remark);
    const fake = await RemotingClient.connect(srv.port);
    try {
        assert.equal((await fake.request(34, {}, heartbeat('who@1', 'CG_WHO_SUB', topic))).code, 0);
        const r = await br.request(300, { topic });
        assert.equal(r.code, 0, r.remark);
        assert.deepEqual(JSON.parse(r.body.toString()).groupList.sort(), ['CG_WHO_OFFSET', 'CG_WHO_SUB']);
        const other = await br.request(300, { topic: 'T_WHO_NOBODY' });
        assert.deepEqual(JSON.parse(other.body.toString()).groupList, []);
    } finally {
        fake.close();
    }
});

test('GET_SYSTEM_TOPIC_LIST_FROM_BROKER names the system topics', async () => {
    const r = await br.request(305, {});
    assert.equal(r.code, 0, r.remark);
    const list = JSON.parse(r.body.toString()).topicList;
    for (const t of ['TBW102', 'SCHEDULE_TOPIC_XXXX', 'RMQ_SYS_TRANS_HALF_TOPIC', 'OFFSET_MOVED_EVENT',
        'rmq_sys_wheel_timer', 'DefaultCluster', 'broker-a']) {
        assert.ok(list.includes(t), `${t} missing from ${list}`);
    }
    assert.ok(!list.includes('T_RT'));
});

test('GET_BROKER_CONSUME_STATS: every group, its ConsumeStats and the total lag', async () => {
    const topic = 'T_BCS';
    for (let i = 0; i < 4; i++) await send(topic, `b${i}`, 0);
    for (let i = 0; i < 3; i++) await send(topic, `b${i}`, 1);
    const group = 'CG_BCS';
    assert.equal((await br.request(200, {}, Buffer.from(JSON.stringify({ groupName: group })))).code, 0);
    assert.equal((await br.request(15, { consumerGroup: group, topic, queueId: '0', commitOffset: '1' })).code, 0);
    assert.equal((await br.request(15, { consumerGroup: group, topic, queueId: '1', commitOffset: '3' })).code, 0);
    const r = await br.request(317, { isOrder: 'false' });
    assert.equal(r.code, 0, r.remark);
    const v = parseFastjson(r.body.toString());
    assert.equal(v.brokerAddr, `127.0.0.1:${srv.port}`);
    const entry = v.consumeStatsList.find((m) => Object.keys(m).includes(group));
    assert.ok(entry, `no entry for ${group}`);
    const [stats] = entry[group];
    const rows = stats.offsetTable.map(([mq, w]) => ({ ...mq, ...w })).sort((a, b) => a.queueId - b.queueId);
    assert.deepEqual(rows.filter((x) => x.queueId < 2).map((x) => [x.topic, x.brokerOffset, x.consumerOffset]),
        [[topic, 4, 1], [topic, 3, 3]]);
    const lag = v.consumeStatsList.flatMap((m) => Object.values(m).flat())
        .flatMap((s) => s.offsetTable.map(([, w]) => w.brokerOffset - w.consumerOffset))
        .reduce((a, b) => a + b, 0);
    assert.equal(v.totalDiff, lag);
    assert.ok(v.totalDiff >= 3);
    // isOrder keeps order topics only; this one is not.
    const o = parseFastjson((await br.request(317, { isOrder: 'true' })).body.toString());
    assert.deepEqual(o.consumeStatsList.find((m) => Object.keys(m).includes(group))[group], []);
});

test('VIEW_BROKER_STATS_DATA: GROUP_GET_NUMS of topic@group counts pulled messages', async () => {
    const topic = 'T_VIEW';
    const group = 'CG_VIEW';
    for (let i = 0; i < 5; i++) await send(topic, `v${i}`);
    const p1 = await pull(group, topic, 0, 0, 3);
    const p2 = await pull(group, topic, 0, 3, 32);
    assert.equal(decodeRecords(p1.body).length + decodeRecords(p2.body).length, 5);
    const r = await br.request(315, { statsName: 'GROUP_GET_NUMS', statsKey: `${topic}@${group}` });
    assert.equal(r.code, 0, r.remark);
    const v = JSON.parse(r.body.toString());
    for (const k of ['statsMinute', 'statsHour', 'statsDay']) {
        assert.equal(v[k].sum, 5, k);
        assert.equal(v[k].avgpt, 2.5, `${k}: 5 messages in 2 pulls`);
    }
    assert.ok(Math.abs(v.statsMinute.tps - 5 / 60) < 0.01);
    // TOPIC_PUT_NUMS: sampled once a second from the queues' max offsets.
    let put;
    for (const deadline = Date.now() + 5000; Date.now() < deadline; await sleep(100)) {
        put = await br.request(315, { statsName: 'TOPIC_PUT_NUMS', statsKey: topic });
        if (put.code === 0 && JSON.parse(put.body.toString()).statsMinute.sum === 5) break;
    }
    assert.equal(put.code, 0, put.remark);
    const pv = JSON.parse(put.body.toString());
    for (const k of ['statsMinute', 'statsHour', 'statsDay']) assert.equal(pv[k].sum, 5, k);
    const none = await br.request(315, { statsName: 'GROUP_GET_NUMS', statsKey: `${topic}@NOBODY` });
    assert.equal(none.code, 1);
    assert.match(none.remark, /not exist/);
});

test('QUERY_CONSUME_QUEUE returns the queue entries of the stored records', async () => {
    const topic = 'T_CQ';
    for (let i = 0; i < 5; i++) await send(topic, `cq-body-${i}`, 2);
    const p = await pull('CG_CQ_READ', topic, 2, 0);
    const recs = decodeRecords(p.body);
    assert.equal(recs.length, 5);
    const r = await br.request(321, { topic, queueId: '2', index: '1', count: '3', consumerGroup: 'CG_CQ' });
    assert.equal(r.code, 0, r.remark);
    const v = JSON.parse(r.body.toString());
    assert.equal(v.maxQueueIndex, 5);
    assert.equal(v.minQueueIndex, 0);
    assert.equal(v.filterData, `CG_CQ@${topic} is not online!`);
    assert.deepEqual(v.queueData.map((q) => q.physicOffset), recs.slice(1, 4).map((x) => x.physOffset));
    for (const q of v.queueData) assert.ok(q.physicSize > 40 && typeof q.tagsCode === 'number');
    const past = await br.request(321, { topic, queueId: '2', index: '9', count: '3' });
    assert.equal(past.code, 0);
    assert.deepEqual(JSON.parse(past.body.toString()).queueData, []);
    assert.match(past.remark, /Index 9 of 2@T_CQ is not exist/);
    const bad = await br.request(321, { topic, queueId: '99', index: '0', count: '1' });
    assert.equal(bad.code, 1);
    assert.equal(bad.remark, `99@${topic} is not exist!`);
});

test('CONSUME_MESSAGE_DIRECTLY goes to the named consumer with the stored record', async () => {
    const topic = 'T_DIRECT';
    const group = 'CG_DIRECT';
    const { msgId } = await send(topic, 'direct-body');
    const fake = await RemotingClient.connect(srv.port);
    try {
        const seen = [];
        fake.onRequest = (req) => {
            if (req.code !== 309) return;
            seen.push(req);
            fake.respond(req, 0, {}, Buffer.from('{"order":false,"autoCommit":true,"consumeResult":"CR_SUCCESS","remark":"ok","spentTimeMills":1}'));
        };
        assert.equal((await fake.request(34, {}, heartbeat('direct@1', group, topic))).code, 0);
        const r = await br.request(309, { consumerGroup: group, clientId: 'direct@1', msgId, topic });
        assert.equal(r.code, 0, r.remark);
        assert.equal(JSON.parse(r.body.toString()).consumeResult, 'CR_SUCCESS');
        assert.equal(seen.length, 1);
        assert.equal(seen[0].ext.msgId, msgId);
        assert.equal(seen[0].ext.brokerName, 'broker-a');
        assert.equal(seen[0].ext.clientId, 'direct@1');
        assert.equal(seen[0].ext.topic, topic); // 5.x tools send it; passed on
        const [rec] = decodeRecords(seen[0].body);
        assert.equal(rec.body, 'direct-body');
        assert.equal(rec.topic, topic);
        const gone = await br.request(309, { consumerGroup: group, clientId: 'other@9', msgId });
        assert.equal(gone.code, 1);
        assert.match(gone.remark, /not online/);
        const badId = await br.request(309, { consumerGroup: group, clientId: 'direct@1', msgId: 'ZZ' });
        assert.equal(badId.code, 1);
        assert.match(badId.remark, /msgId ZZ/);
    } finally {
        fake.close();
    }
});

test('INVOKE_BROKER_TO_RESET_OFFSET with a queueId (5.x resetOffsetByTime -q) sets that queue only', async () => {
    const topic = 'T_RESET_ONE';
    const group = 'CG_RESET_ONE';
    for (let q = 0; q < 2; q++) for (let i = 0; i < 4; i++) await send(topic, `r${i}`, q);
    for (let q = 0; q < 4; q++) { // the topic has 4 queues (send header d)
        const off = q < 2 ? '4' : '0';
        assert.equal((await br.request(15, { consumerGroup: group, topic, queueId: String(q), commitOffset: off })).code, 0);
    }
    // What 5.x's resetOffsetByQueueId sends after its UPDATE_CONSUMER_OFFSET.
    const r = await br.request(222, { topic, group, timestamp: '0', isForce: 'false', queueId: '1', offset: '2' });
    assert.equal(r.code, 0, r.remark);
    const body = parseFastjson(r.body.toString());
    assert.deepEqual(body.offsetTable.map(([mq, off]) => [mq.queueId, off]), [[1, 2]]);
    const offs = await queueOffsetsOf(group, topic, 2);
    assert.deepEqual(offs, [4, 2], 'queue 0 untouched, queue 1 at 2');
    const bad = await br.request(222, { topic, group, timestamp: '0', queueId: '1', offset: '99' });
    assert.equal(bad.code, 1);
    assert.match(bad.remark, /offset 99 is outside/);
    // Every queue (4.x and skipAccumulatedMessage, timestamp -1) with nobody online: 206, on
    // which the tools fall back to committing the offsets themselves.
    const all = await br.request(222, { topic, group, timestamp: '-1', isForce: 'true' });
    assert.equal(all.code, 206, all.remark);
    assert.deepEqual(await queueOffsetsOf(group, topic, 2), [4, 2]);
});

async function queueOffsetsOf(group, topic, n) {
    const out = [];
    for (let q = 0; q < n; q++) {
        const r = await br.request(14, { consumerGroup: group, topic, queueId: String(q) });
        assert.equal(r.code, 0, r.remark);
        out.push(Number(r.ext.offset));
    }
    return out;
}

test('brokerPermission changed at runtime reaches the NameServer routes', async () => {
    const topic = 'T_PERM_ROUTE';
    await send(topic, 'p');
    const ns = await RemotingClient.connect(nsPort);
    const perms = async () => {
        const r = await ns.request(105, { topic });
        return r.code === 0 ? JSON.parse(r.body.toString()).queueDatas.map((q) => q.perm) : [];
    };
    const until = async (want) => {
        const deadline = Date.now() + 10000;
        let got;
        while (Date.now() < deadline) {
            got = await perms();
            if (got.length && got.every((p) => p === want)) return;
            await sleep(50);
        }
        assert.fail(`route perms ${JSON.stringify(got)}, want ${want}`);
    };
    try {
        await until(6);
        assert.equal((await br.request(25, {}, Buffer.from('brokerPermission=4'))).code, 0);
        await until(4); // read-only: clients stop sending here
        assert.equal((await br.request(25, {}, Buffer.from('brokerPermission=6'))).code, 0);
        await until(6);
    } finally {
        ns.close();
    }
});
