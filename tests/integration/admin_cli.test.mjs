// `apogee admin` end to end: every command is spawned as a user would run it against
// `apogee standalone`, in table form and with --json, and its answer is checked against
// what the broker really holds (a created topic appears in topicList and the route, a sent
// message is found by key, the lag a C push consumer leaves shows in consumerProgress, a
// dry-run reset changes nothing and the real one does, a dead letter resent reaches a
// consumer again). Errors must exit non-zero with a sentence that says what to change.
// The configuration commands (26/25/319/318) pass either way: a server without them must
// answer REQUEST_CODE_NOT_SUPPORTED, reported as such; with them the values are checked.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { run, skipExamples, sleep, startExample } from '../lib/examples.mjs';
import { apogeeBin, startApogee, startStandaloneRouted } from '../lib/proc.mjs';
import { RemotingClient } from '../lib/remoting.mjs';

let sa;
let ns;
let brokerAddr;

before(async () => {
    ({ sa, ns } = await startStandaloneRouted());
    brokerAddr = `127.0.0.1:${sa.port}`;
});
after(async () => {
    await sa?.stop();
});

// Polls pred (sync or async) every 50 ms until it holds.
async function until(pred, ms, what) {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
        if (await pred()) return;
        await sleep(50);
    }
    throw new Error(`timed out waiting for ${what}`);
}

// Runs `apogee admin <args> -n ns`; json: true adds --json and parses stdout.
function adm(args, { json = false, env = {}, nsArg = true } = {}) {
    const argv = ['admin', ...args];
    if (nsArg) argv.push('-n', ns);
    if (json) argv.push('--json');
    return new Promise((resolve) => {
        const p = spawn(apogeeBin(), argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        p.stdout.on('data', (d) => (out += d));
        p.stderr.on('data', (d) => (err += d));
        p.on('close', (code) => {
            let parsed = null;
            if (json && code === 0) {
                try {
                    parsed = JSON.parse(out);
                } catch (e) {
                    throw new Error(`apogee ${argv.join(' ')}: stdout is not JSON: ${e.message}\n${out}`);
                }
            }
            resolve({ code, out, err, json: parsed, what: `apogee ${argv.join(' ')}\n${out}${err}` });
        });
    });
}

async function ok(args, opts) {
    const r = await adm(args, opts);
    assert.equal(r.code, 0, r.what);
    return r;
}

test('help lists every command; help <command> shows mqadmin option letters', async () => {
    const r = await ok(['help'], { nsArg: false });
    for (const c of ['clusterList', 'brokerStatus', 'topicList', 'topicRoute', 'topicStatus', 'topicClusterList',
        'updateTopic', 'updateTopicPerm', 'deleteTopic', 'updateSubGroup', 'deleteSubGroup', 'consumerProgress',
        'consumerConnection', 'producerConnection', 'queryMsgById', 'queryMsgByKey', 'queryMsgByUniqueKey',
        'queryMsgByOffset', 'printMsg', 'sendMessage', 'consumeMessage', 'resetOffsetByTime',
        'skipAccumulatedMessage', 'getBrokerConfig', 'updateBrokerConfig', 'getNamesrvConfig',
        'updateNamesrvConfig', 'dlq list', 'dlq show', 'dlq resend', 'dlq export', 'doctor', 'namesrvStatus',
        'producer', 'cleanUnusedTopic', 'cleanExpiredCQ', 'deleteExpiredCommitLog', 'clusterAclConfigVersion',
        'updateAclConfig', 'deleteAclConfig', 'updateGlobalWhiteAddr']) {
        assert.match(r.out, new RegExp(`^  ${c} `, 'm'), `help lists ${c}`);
    }
    const u = await ok(['help', 'updateTopic'], { nsArg: false });
    for (const o of ['-t, --topic', '-c, --clusterName', '-b, --brokerAddr', '-r, --readQueueNums',
        '-w, --writeQueueNums', '-p, --perm', '-o, --order', '-n, --namesrvAddr', '--json']) {
        assert.ok(u.out.includes(o), `updateTopic help has ${o}:\n${u.out}`);
    }
    const h = await ok(['topicRoute', '-h'], { nsArg: false });
    assert.match(h.out, /usage: apogee admin topicRoute/);
});

test('usage errors exit 2 and say what to change', async () => {
    let r = await adm(['nosuchCommand']);
    assert.equal(r.code, 2);
    assert.match(r.err, /unknown command 'nosuchCommand'.*apogee admin help/);
    r = await adm(['topicRoute']);
    assert.equal(r.code, 2);
    assert.match(r.err, /-t <topic> is required/);
    r = await adm(['updateTopic', '-t', 'X', '-c', 'DefaultCluster', '-p', '5']);
    assert.equal(r.code, 2);
    assert.match(r.err, /-p 5 is not a permission/);
    r = await adm(['topicList', '--bogus']);
    assert.equal(r.code, 2);
    assert.match(r.err, /unknown option '--bogus'/);
    r = await adm(['topicList', '--dry-run']);
    assert.equal(r.code, 2, 'only commands that support it take --dry-run');
});

test('an unreachable NameServer exits 1 naming the address; NAMESRV_ADDR is the default', async () => {
    const r = await adm(['clusterList', '-n', '127.0.0.1:1'], { nsArg: false });
    assert.equal(r.code, 1);
    assert.match(r.err, /no NameServer answered \(127\.0\.0\.1:1\).*connection refused/);
    const e = await adm(['clusterList'], { nsArg: false, env: { NAMESRV_ADDR: ns } });
    assert.equal(e.code, 0, e.what);
    assert.ok(e.out.includes(brokerAddr));
});

test('clusterList and brokerStatus', async () => {
    const t = await ok(['clusterList']);
    assert.match(t.out, /^#Cluster\s+#Broker\s+#BID\s+#Addr/m);
    assert.match(t.out, new RegExp(`^DefaultCluster\\s+broker-a\\s+0\\s+${brokerAddr}\\s+V\\d`, 'm'));
    const j = (await ok(['clusterList'], { json: true })).json;
    assert.equal(j.brokers.length, 1);
    assert.deepEqual([j.brokers[0].cluster, j.brokers[0].brokerName, j.brokers[0].brokerId, j.brokers[0].addr, j.brokers[0].error],
        ['DefaultCluster', 'broker-a', 0, brokerAddr, null]);
    assert.equal(typeof j.brokers[0].putTps, 'number');

    const s = await ok(['brokerStatus', '-b', brokerAddr]);
    assert.match(s.out, new RegExp(`^${brokerAddr}\\s+brokerActive\\s+true$`, 'm'));
    const sj = (await ok(['brokerStatus', '-c', 'DefaultCluster'], { json: true })).json;
    assert.equal(sj.brokers[0].addr, brokerAddr);
    assert.equal(sj.brokers[0].table.brokerActive, 'true');
    const bad = await adm(['brokerStatus', '-c', 'NoSuchCluster']);
    assert.equal(bad.code, 1);
    assert.match(bad.err, /cluster 'NoSuchCluster' has no master broker registered \(clusters: DefaultCluster\)/);
});

test('updateTopic creates a topic that topicList, topicRoute, topicStatus and topicClusterList show', async () => {
    const c = await ok(['updateTopic', '-t', 'AdmTopic', '-c', 'DefaultCluster', '-r', '3', '-w', '3']);
    assert.match(c.out, new RegExp(`^${brokerAddr}\\s+broker\\s+ok$`, 'm'));
    await until(async () => (await adm(['topicRoute', '-t', 'AdmTopic'])).code === 0, 5000, 'route');

    assert.match((await ok(['topicList'])).out, /^AdmTopic$/m);
    assert.ok((await ok(['topicList'], { json: true })).json.topics.some((t) => t.topic === 'AdmTopic'));
    assert.ok((await ok(['topicList', '-c'], { json: true })).json.topics
        .some((t) => t.topic === 'AdmTopic' && t.cluster === 'DefaultCluster'));

    const rt = await ok(['topicRoute', '-t', 'AdmTopic']);
    assert.match(rt.out, new RegExp(`^broker-a\\s+${brokerAddr}\\s+3\\s+3\\s+RW-$`, 'm'));
    const rj = (await ok(['topicRoute', '-t', 'AdmTopic'], { json: true })).json;
    assert.equal(rj.queueDatas[0].readQueueNums, 3);
    assert.equal(rj.queueDatas[0].perm, 6);
    assert.equal(rj.brokerDatas[0].brokerAddrs['0'], brokerAddr);

    const st = (await ok(['topicStatus', '-t', 'AdmTopic'], { json: true })).json;
    assert.deepEqual(st.queues.map((q) => [q.brokerName, q.queueId, q.minOffset, q.maxOffset]),
        [['broker-a', 0, 0, 0], ['broker-a', 1, 0, 0], ['broker-a', 2, 0, 0]]);
    assert.match((await ok(['topicStatus', '-t', 'AdmTopic'])).out, /^broker-a\s+2\s+0\s+0\s+-$/m);

    assert.deepEqual((await ok(['topicClusterList', '-t', 'AdmTopic'], { json: true })).json,
        { topic: 'AdmTopic', clusters: ['DefaultCluster'] });
    assert.match((await ok(['topicClusterList', '-t', 'AdmTopic'])).out, /^DefaultCluster$/m);

    const miss = await adm(['topicRoute', '-t', 'NoSuchTopic']);
    assert.equal(miss.code, 1);
    assert.match(miss.err, /apogee admin updateTopic (-c \S+ )?-t NoSuchTopic/);
});

test('updateTopicPerm changes the permission and keeps the queue counts', async () => {
    await ok(['updateTopic', '-t', 'AdmPerm', '-b', brokerAddr, '-r', '2', '-w', '2']);
    const j = (await ok(['updateTopicPerm', '-t', 'AdmPerm', '-b', brokerAddr, '-p', '4'], { json: true })).json;
    assert.equal(j.results[0].perm, 4);
    assert.equal(j.results[0].oldPerm, 6);
    await until(async () => /R--/.test((await adm(['topicRoute', '-t', 'AdmPerm'])).out), 5000, 'perm 4 in the route');
    assert.match((await ok(['topicRoute', '-t', 'AdmPerm'])).out, /^broker-a\s+\S+\s+2\s+2\s+R--$/m);
    const t = await ok(['updateTopicPerm', '-t', 'AdmPerm', '-c', 'DefaultCluster', '-p', '6']);
    assert.match(t.out, /ok/);
    const miss = await adm(['updateTopicPerm', '-t', 'NoSuchTopic', '-b', brokerAddr, '-p', '6']);
    assert.equal(miss.code, 1);
    assert.match(miss.err, /topic 'NoSuchTopic' is not on broker .*apogee admin updateTopic -t NoSuchTopic/);
});

test('sendMessage, then every query finds the message', async () => {
    await ok(['updateTopic', '-t', 'AdmMsg', '-c', 'DefaultCluster', '-r', '2', '-w', '2']);
    const s = await ok(['sendMessage', '-t', 'AdmMsg', '-p', 'hello admin', '-k', 'order-42', '-c', 'TagA']);
    assert.match(s.out, /^broker-a\s+\d\s+\d+\s+SEND_OK\s+[0-9A-F]{32}$/m);
    const sent = (await ok(['sendMessage', '-t', 'AdmMsg', '-p', 'second', '-k', 'order-42', '-b', 'broker-a', '-i', '1'],
        { json: true })).json;
    assert.equal(sent.sendStatus, 'SEND_OK');
    assert.equal(sent.queueId, 1);

    const byKey = (await ok(['queryMsgByKey', '-t', 'AdmMsg', '-k', 'order-42'], { json: true })).json;
    assert.deepEqual(byKey.messages.map((m) => m.body).sort(), ['hello admin', 'second']);
    assert.ok(byKey.messages.every((m) => m.keys === 'order-42' && m.topic === 'AdmMsg'));
    assert.match((await ok(['queryMsgByKey', '-t', 'AdmMsg', '-k', 'order-42'])).out, new RegExp(`${sent.msgId}.*second`));
    const noKey = await adm(['queryMsgByKey', '-t', 'AdmMsg', '-k', 'nope']);
    assert.equal(noKey.code, 1);
    assert.match(noKey.err, /no message of topic 'AdmMsg' with key 'nope'/);

    const byUniq = (await ok(['queryMsgByUniqueKey', '-i', sent.msgId, '-t', 'AdmMsg'], { json: true })).json;
    assert.equal(byUniq.messages.length, 1);
    assert.equal(byUniq.messages[0].body, 'second');
    assert.equal(byUniq.messages[0].offsetMsgId, sent.offsetMsgId);
    assert.match((await ok(['queryMsgByUniqueKey', '-i', sent.msgId, '-t', 'AdmMsg'])).out, /^Message Body:\s+second /m);

    const byId = (await ok(['queryMsgById', '-i', sent.offsetMsgId], { json: true })).json;
    assert.equal(byId.messages[0].msgId, sent.msgId);
    assert.equal(byId.messages[0].queueOffset, sent.queueOffset);
    assert.match((await ok(['queryMsgById', '-i', sent.offsetMsgId])).out, new RegExp(`^Msg ID:\\s+${sent.msgId}$`, 'm'));

    const byOff = (await ok(['queryMsgByOffset', '-t', 'AdmMsg', '-b', 'broker-a', '-i', '1', '-o', String(sent.queueOffset)],
        { json: true })).json;
    assert.equal(byOff.messages[0].msgId, sent.msgId);
    assert.match((await ok(['queryMsgByOffset', '-t', 'AdmMsg', '-b', 'broker-a', '-i', '1', '-o', String(sent.queueOffset)])).out,
        /^Keys:\s+order-42$/m);

    const all = (await ok(['printMsg', '-t', 'AdmMsg'], { json: true })).json;
    assert.deepEqual(all.messages.map((m) => m.body).sort(), ['hello admin', 'second']);
    const tagged = (await ok(['printMsg', '-t', 'AdmMsg', '-s', 'TagA'], { json: true })).json;
    assert.deepEqual(tagged.messages.map((m) => m.body), ['hello admin']);
    assert.match((await ok(['printMsg', '-t', 'AdmMsg'])).out, /hello admin/);

    const cons = (await ok(['consumeMessage', '-t', 'AdmMsg', '-b', 'broker-a', '-i', '1', '-o', '0', '-c', '5'], { json: true })).json;
    assert.deepEqual(cons.messages.map((m) => m.body), ['second']);
    assert.match((await ok(['consumeMessage', '-t', 'AdmMsg', '-c', '1'])).out, /^AdmMsg\s+\d\s+0\s/m);
});

function produce(topic, n) {
    const r = run('producer_sync', [ns, topic, String(n)]);
    assert.equal(r.code, 0, r.out);
}

async function progress(group, topic) {
    return (await ok(['consumerProgress', '-g', group, '-t', topic], { json: true })).json;
}

test('consumerProgress and consumerConnection show a C push consumer and the lag it leaves; offsets reset',
    { skip: skipExamples }, async () => {
        const topic = 'AdmLag';
        const group = 'AdmLagGroup';
        await ok(['updateTopic', '-t', topic, '-c', 'DefaultCluster', '-r', '2', '-w', '2']);
        produce(topic, 10);
        const c = startExample('push_consumer', ['-n', ns, '-t', topic, '-g', group, '--first']);
        try {
            await until(() => c.recv().length >= 10, 20000, 'the consumer to receive 10 messages');
            await until(async () => (await progress(group, topic)).diffTotal === 0, 15000, 'the offsets to be committed');
            const cj = (await ok(['consumerConnection', '-g', group], { json: true })).json;
            assert.equal(cj.connections.length, 1);
            assert.equal(cj.connections[0].language, 'CPP');
            assert.equal(cj.messageModel, 'CLUSTERING');
            assert.ok(cj.subscriptions.some((s) => s.topic === topic && s.subString === '*'));
            const ct = await ok(['consumerConnection', '-g', group]);
            assert.match(ct.out, /^MessageModel: CLUSTERING$/m);
            assert.match(ct.out, new RegExp(`^${topic}\\s+\\*\\s+TAG$`, 'm'));
        } finally {
            await c.stop();
        }
        const off = await adm(['consumerConnection', '-g', group]);
        assert.equal(off.code, 1);
        assert.match(off.err, /no consumer of group 'AdmLagGroup' is online/);

        produce(topic, 7);
        const p = await progress(group, topic);
        assert.equal(p.diffTotal, 7, JSON.stringify(p));
        assert.equal(p.queues.reduce((s, q) => s + q.brokerOffset, 0), 17);
        assert.equal(p.queues.reduce((s, q) => s + q.consumerOffset, 0), 10);
        const pt = await ok(['consumerProgress', '-g', group]);
        assert.match(pt.out, /^Consume Diff Total: 7$/m);
        const groups = (await ok(['consumerProgress'], { json: true })).json.groups;
        assert.equal(groups.find((g) => g.group === group)?.diffTotal, 7);

        // Dry run: the plan goes back to 0 on every queue, and nothing moves.
        const dry = (await ok(['resetOffsetByTime', '-g', group, '-t', topic, '-s', '0', '--dry-run'], { json: true })).json;
        assert.equal(dry.dryRun, true);
        assert.deepEqual(dry.queues.map((q) => q.offsetAfter), [0, 0]);
        assert.deepEqual(dry.queues.map((q) => q.offsetBefore), p.queues.map((q) => q.consumerOffset));
        assert.match((await ok(['resetOffsetByTime', '-g', group, '-t', topic, '-s', '0', '--dry-run'])).out,
            /^dry run: nothing was changed/m);
        assert.deepEqual((await progress(group, topic)).queues.map((q) => q.consumerOffset),
            p.queues.map((q) => q.consumerOffset), 'a dry run changes nothing');

        const real = (await ok(['resetOffsetByTime', '-g', group, '-t', topic, '-s', '0'], { json: true })).json;
        assert.equal(real.dryRun, false);
        assert.deepEqual(real.queues.map((q) => q.offsetAfter), [0, 0]);
        assert.deepEqual((await progress(group, topic)).queues.map((q) => q.consumerOffset), [0, 0]);
        assert.equal((await progress(group, topic)).diffTotal, 17);

        const skip = await ok(['skipAccumulatedMessage', '-g', group, '-t', topic]);
        assert.match(skip.out, /#Before\s+#After/);
        const after = await progress(group, topic);
        assert.equal(after.diffTotal, 0);
        assert.deepEqual(after.queues.map((q) => q.consumerOffset), after.queues.map((q) => q.brokerOffset));

        const one = (await ok(['resetOffsetByTime', '-g', group, '-t', topic, '-s', 'now', '-b', 'broker-a', '-q', '1', '-o', '2'],
            { json: true })).json;
        assert.deepEqual(one.queues.map((q) => [q.queueId, q.offsetAfter]), [[1, 2]]);
        assert.equal((await progress(group, topic)).queues[1].consumerOffset, 2);
    });

test('producerConnection lists a connected producer', async () => {
    const cl = await RemotingClient.connect(sa.port);
    try {
        const hb = { clientID: 'adm-producer@1', producerDataSet: [{ groupName: 'AdmPG' }], consumerDataSet: [] };
        const r = await cl.request(34, {}, Buffer.from(JSON.stringify(hb)));
        assert.equal(r.code, 0, r.remark);
        await ok(['updateTopic', '-t', 'AdmProd', '-c', 'DefaultCluster']);
        const j = (await ok(['producerConnection', '-g', 'AdmPG', '-t', 'AdmProd'], { json: true })).json;
        assert.deepEqual(j.connections.map((c) => c.clientId), ['adm-producer@1']);
        assert.match((await ok(['producerConnection', '-g', 'AdmPG', '-t', 'AdmProd'])).out, /^adm-producer@1\s/m);
    } finally {
        cl.close();
    }
});

test('updateSubGroup and deleteSubGroup', async () => {
    const j = (await ok(['updateSubGroup', '-g', 'AdmSub', '-c', 'DefaultCluster', '-r', '3'], { json: true })).json;
    assert.equal(j.results[0].result, 'ok');
    assert.equal(j.config.retryMaxTimes, 3);
    let groups = (await ok(['consumerProgress'], { json: true })).json.groups.map((g) => g.group);
    assert.ok(groups.includes('AdmSub'), groups.join(','));
    const d = await ok(['deleteSubGroup', '-g', 'AdmSub', '-b', brokerAddr, '-r', 'true']);
    assert.match(d.out, new RegExp(`^${brokerAddr}\\s+ok$`, 'm'));
    groups = (await ok(['consumerProgress'], { json: true })).json.groups.map((g) => g.group);
    assert.ok(!groups.includes('AdmSub'));
});

test('deleteTopic removes the topic from the broker and reports the NameServer answer', async () => {
    await ok(['updateTopic', '-t', 'AdmDel', '-c', 'DefaultCluster']);
    assert.equal((await adm(['deleteTopic', '-t', 'AdmDel'])).code, 2, 'deleteTopic needs -c');
    const j = (await ok(['deleteTopic', '-t', 'AdmDel', '-c', 'DefaultCluster'], { json: true })).json;
    const brokerRow = j.results.find((r) => r.role === 'broker');
    const nsRow = j.results.find((r) => r.role === 'namesrv');
    assert.equal(brokerRow.result, 'ok');
    assert.ok(nsRow, 'the NameServer was asked (DELETE_TOPIC_IN_NAMESRV)');
    // The NameServer deleted the route (DELETE_TOPIC_IN_NAMESRV answered 0).
    assert.equal(nsRow.code, 0, JSON.stringify(nsRow));
    assert.equal((await adm(['topicRoute', '-t', 'AdmDel'])).code, 1);
    const gone = await adm(['updateTopicPerm', '-t', 'AdmDel', '-b', brokerAddr, '-p', '6']);
    assert.equal(gone.code, 1);
    assert.match(gone.err, /not on broker/);
});

test('broker and NameServer configuration commands', async () => {
    // GET_BROKER_CONFIG (26), UPDATE_BROKER_CONFIG (25), GET_NAMESRV_CONFIG (319),
    // UPDATE_NAMESRV_CONFIG (318).
    const g = await ok(['getBrokerConfig', '-b', brokerAddr], { json: true });
    assert.equal(g.json.brokers[0].config.listenPort, String(sa.port));
    assert.match((await ok(['getBrokerConfig', '-b', brokerAddr])).out, /\smaxTransferCountOnMessageInMemory\s+\d+$/m);
    await ok(['updateBrokerConfig', '-b', brokerAddr, '-k', 'maxTransferCountOnMessageInMemory', '-v', '123']);
    const again = await ok(['getBrokerConfig', '-c', 'DefaultCluster'], { json: true });
    assert.equal(again.json.brokers[0].config.maxTransferCountOnMessageInMemory, '123');
    // A key that is not runtime-changeable is refused by the broker, and nothing changes.
    const ro = await adm(['updateBrokerConfig', '-b', brokerAddr, '-k', 'maxMessageSize', '-v', '2097152']);
    assert.equal(ro.code, 1);
    assert.match(ro.err, /NO_PERMISSION.*'maxMessageSize' is read only at start-up/);
    const path = await adm(['updateBrokerConfig', '-b', brokerAddr, '-k', 'storePathRootDir', '-v', '/tmp/x']);
    assert.equal(path.code, 1);
    assert.match(path.err, /NO_PERMISSION/);
    const after = await ok(['getBrokerConfig', '-b', brokerAddr], { json: true });
    assert.notEqual(after.json.brokers[0].config.maxMessageSize, '2097152');
    assert.notEqual(after.json.brokers[0].config.storePathRootDir, '/tmp/x');
    const n = await ok(['getNamesrvConfig'], { json: true });
    assert.ok(n.json.namesrvs[0].config.listenPort, JSON.stringify(n.json));
    await ok(['updateNamesrvConfig', '-k', 'orderMessageEnable', '-v', 'true']);
    const n2 = await ok(['getNamesrvConfig'], { json: true });
    assert.equal(n2.json.namesrvs[0].config.orderMessageEnable, 'true');
    const nbad = await adm(['updateNamesrvConfig', '-k', 'configStorePath', '-v', '/tmp/evil']);
    assert.equal(nbad.code, 1);
    assert.match(nbad.err, /NO_PERMISSION/);
    const bad = await adm(['updateBrokerConfig', '-b', brokerAddr, '-k', 'a=b', '-v', '1']);
    assert.equal(bad.code, 2);
});

test('dlq list, show, export and resend: a dead letter goes back to its topic and is consumed again',
    { skip: skipExamples }, async () => {
        const topic = 'AdmDlqTopic';
        const group = 'AdmDlqGroup';
        await ok(['updateTopic', '-t', topic, '-c', 'DefaultCluster', '-r', '1', '-w', '1']);
        const sent = (await ok(['sendMessage', '-t', topic, '-p', 'dead letter body', '-k', 'dk1', '-c', 'TagD'], { json: true })).json;
        const m = (await ok(['queryMsgByUniqueKey', '-i', sent.msgId, '-t', topic], { json: true })).json.messages[0];
        // A consumer gives up on it: CONSUMER_SEND_MSG_BACK with delayLevel -1 sends it
        // straight to %DLQ%<group>, with RETRY_TOPIC set to the original topic.
        const cl = await RemotingClient.connect(sa.port);
        try {
            const r = await cl.request(36, { offset: String(m.commitLogOffset), group, delayLevel: '-1',
                originMsgId: sent.msgId, originTopic: topic, maxReconsumeTimes: '16' });
            assert.equal(r.code, 0, r.remark);
        } finally {
            cl.close();
        }
        await until(async () => (await adm(['dlq', 'list'], { json: true })).json?.dlqs
            .some((d) => d.group === group && d.messages === 1), 5000, 'the DLQ to list one message');
        assert.match((await ok(['dlq', 'list'])).out, new RegExp(`^${group}\\s+%DLQ%${group}\\s+1$`, 'm'));

        const show = (await ok(['dlq', 'show', '-g', group], { json: true })).json;
        assert.equal(show.messages.length, 1);
        assert.equal(show.messages[0].originalTopic, topic);
        assert.equal(show.messages[0].body, 'dead letter body');
        assert.match((await ok(['dlq', 'show', '-g', group])).out, new RegExp(`${topic}\\s+TagD\\s+dk1\\s+dead letter body`));

        const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-dlq-')), 'dlq.jsonl');
        await ok(['dlq', 'export', '-g', group, '-f', file]);
        const lines = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
        assert.equal(lines.length, 1);
        assert.equal(lines[0].originalTopic, topic);
        assert.equal(lines[0].properties.RETRY_TOPIC, topic);
        fs.rmSync(path.dirname(file), { recursive: true, force: true });
        const stdoutExport = await ok(['dlq', 'export', '-g', group]);
        assert.equal(JSON.parse(stdoutExport.out.trim()).body, 'dead letter body');

        const maxBefore = (await ok(['topicStatus', '-t', topic], { json: true })).json.queues[0].maxOffset;
        const dry = (await ok(['dlq', 'resend', '-g', group, '--dry-run'], { json: true })).json;
        assert.deepEqual(dry.messages.map((x) => [x.topic, x.result]), [[topic, 'would resend']]);
        assert.equal((await ok(['topicStatus', '-t', topic], { json: true })).json.queues[0].maxOffset, maxBefore);

        const c = startExample('push_consumer', ['-n', ns, '-t', topic, '-g', 'AdmDlqReader', '--first']);
        try {
            await until(() => c.recv().length >= 1, 20000, 'the consumer to receive the original');
            const res = await ok(['dlq', 'resend', '-g', group]);
            assert.match(res.out, new RegExp(`^0\\s+${sent.msgId}\\s+${topic}\\s+resent\\s+[0-9A-F]{32}$`, 'm'));
            await until(() => c.recv().length >= 2, 20000, 'the consumer to receive the resent message');
            const bodies = c.recv().map((f) => f.slice(6).join(' '));
            assert.deepEqual(bodies, ['dead letter body', 'dead letter body']);
        } finally {
            await c.stop();
        }
        const byKey = (await ok(['queryMsgByKey', '-t', topic, '-k', 'dk1'], { json: true })).json;
        assert.equal(byKey.messages.length, 2, 'the resent message keeps its keys');
        assert.ok(byKey.messages.every((x) => x.tags === 'TagD'));

        const none = (await ok(['dlq', 'show', '-g', 'NoDeadLetters'], { json: true })).json;
        assert.deepEqual(none.messages, []);
    });

test('doctor prints each problem with the command that fixes it', async () => {
    const healthy = await ok(['doctor']);
    assert.match(healthy.out, /^\[ok  \] namesrv/m);
    assert.match(healthy.out, /^\[ok  \] brokers\s+broker broker-a id 0/m);
    assert.match(healthy.out, /^0 problem\(s\)$/m);

    const r = await adm(['doctor', '-t', 'DoctorMissing']);
    assert.equal(r.code, 1);
    assert.match(r.out, /^\[fail\] route\s+No route info of this topic: DoctorMissing$/m);
    assert.match(r.out, /fix: apogee admin updateTopic -t DoctorMissing -c DefaultCluster$/m);

    await ok(['updateTopic', '-t', 'DoctorRO', '-c', 'DefaultCluster', '-p', '4']);
    await until(async () => /R--/.test((await adm(['topicRoute', '-t', 'DoctorRO'])).out), 5000, 'the read-only route');
    const ro = (await adm(['doctor', '-t', 'DoctorRO'], { json: true })).json;
    const perm = ro.checks.find((c) => c.check === 'perm');
    assert.equal(perm.status, 'warn');
    assert.equal(perm.fix, 'apogee admin updateTopicPerm -t DoctorRO -c DefaultCluster -p 6');

    // The lag the consumer test left behind has no consumer, and the DLQ test left a dead letter.
    if (!skipExamples) {
        const g = (await ok(['doctor', '-g', 'AdmDlqGroup'], { json: true })).json;
        const dlq = g.checks.find((c) => c.check === 'dlq');
        assert.equal(dlq.status, 'warn');
        assert.match(dlq.fix, /apogee admin dlq resend -g AdmDlqGroup/);
        await ok(['resetOffsetByTime', '-g', 'AdmLagGroup', '-t', 'AdmLag', '-s', '0']);
        const lag = (await ok(['doctor', '-g', 'AdmLagGroup'], { json: true })).json.checks.find((c) => c.check === 'lag');
        assert.equal(lag.status, 'warn');
        assert.equal(lag.fix, 'start the group\'s consumers, or drop the backlog: apogee admin skipAccumulatedMessage -g AdmLagGroup -t AdmLag');
    }
    const down = await adm(['doctor', '-n', '127.0.0.1:1'], { json: true, nsArg: false });
    assert.equal(down.code, 1);
    assert.match(down.out, /"status": "fail"/);
});

test('a change without -b or -c goes to the one cluster; with two clusters it must be named', async () => {
    // What the NameServer's "no route" remark tells users to run.
    const one = (await ok(['updateTopic', '-t', 'AdmImplicit'], { json: true })).json;
    assert.deepEqual(one.results.map((r) => [r.addr, r.result]), [[brokerAddr, 'ok']]);
    await until(async () => (await adm(['topicRoute', '-t', 'AdmImplicit'])).code === 0, 5000, 'the route');

    const other = await startApogee('broker', [`--namesrvAddr=${ns}`, '--brokerClusterName=OtherCluster',
        '--brokerName=broker-b', '--brokerIP1=127.0.0.1', '--allowLoopbackAdvertise=true']);
    try {
        await until(async () => ((await adm(['clusterList'], { json: true })).json?.brokers.length ?? 0) === 2, 10000,
            'the second broker to register');
        const r = await adm(['updateTopic', '-t', 'AdmTwo']);
        assert.equal(r.code, 2);
        assert.match(r.err, /give -b <broker address> or -c <cluster name> \(clusters: DefaultCluster, OtherCluster\)/);
        const c = (await ok(['updateTopic', '-t', 'AdmTwo', '-c', 'OtherCluster'], { json: true })).json;
        assert.deepEqual(c.results.map((x) => x.addr), [`127.0.0.1:${other.port}`]);
        const tl = (await ok(['topicList', '-c'], { json: true })).json.topics;
        assert.ok(tl.some((t) => t.cluster === 'OtherCluster' && t.topic === 'AdmTwo'));
        assert.ok(!tl.some((t) => t.cluster === 'DefaultCluster' && t.topic === 'AdmTwo'));
    } finally {
        await other.stop();
    }
});
