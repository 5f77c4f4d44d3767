// GET_CONSUMER_RUNNING_INFO (307) answered by the C push consumer (examples/push_consumer),
// asked through the broker as `mqadmin consumerStatus` does: the broker forwards the
// request to the client with that clientId and relays its ConsumerRunningInfo body, read
// here with the fastjson key form (docs/wire.md §11.1): the PROP_* properties the tools
// read and the client's settings, the subscriptions (the retry topic included), one
// ProcessQueueInfo per held queue (committed offsets, lock state of an orderly consumer,
// pull times) and a ConsumeStatus per subscribed topic (rates over the last minute or two);
// jstack only when asked for.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { exDir, skipExamples as skip, startExample, until } from '../lib/examples.mjs';
import { parseFastjson } from '../lib/fastjson.mjs';
import { startStandaloneRouted } from '../lib/proc.mjs';
import { RemotingClient } from '../lib/remoting.mjs';

let srv;
let admin;
let ns;
before(async () => {
    ({ sa: srv, ns } = await startStandaloneRouted());
    admin = await RemotingClient.connect(srv.port);
});
after(async () => {
    admin?.close();
    await srv?.stop();
});

async function runningInfo(group, clientId, jstack) {
    const r = await admin.request(307, { consumerGroup: group, clientId, jstackEnable: String(jstack) });
    assert.equal(r.code, 0, r.remark);
    const v = parseFastjson(r.body.toString());
    // Maps keyed by queue come back as [key, value] pairs; an empty one as {}.
    v.mqTable = Array.isArray(v.mqTable) ? v.mqTable : [];
    return v;
}

test('a C push consumer answers GET_CONSUMER_RUNNING_INFO relayed by the broker', { skip }, async () => {
    const topic = 'T_RUNNING_INFO';
    const group = 'CG_RUNNING_INFO';
    const p = spawnSync(path.join(exDir, 'producer_sync'), [ns, topic, '20'], { encoding: 'utf8', timeout: 30000 });
    assert.equal(p.status, 0, `${p.stdout}${p.stderr}`);
    const t0 = Date.now();
    const c = startExample('push_consumer', ['-n', ns, '-t', topic, '-g', group, '--first', '--orderly',
        '--threads', '3', '--seconds', '60', '--quiet']);
    try {
        await until(() => c.clientId() && c.queues() > 0, 20000, `the consumer's queues:\n${c.out}`);
        const id = c.clientId();
        let info;
        const topicRows = () => info.mqTable.filter(([mq]) => mq.topic === topic);
        const deadline = Date.now() + 20000;
        for (;;) {
            info = await runningInfo(group, id, true);
            const rows = topicRows();
            if (rows.length > 0 && rows.reduce((n, [, q]) => n + q.commitOffset, 0) === 20) break;
            assert.ok(Date.now() < deadline, `all 20 committed: ${JSON.stringify(info.mqTable)}\n${c.out}`);
            await new Promise((r) => setTimeout(r, 200));
        }
        const pr = info.properties;
        assert.equal(pr.PROP_CONSUME_TYPE, 'CONSUME_PASSIVELY');
        assert.equal(pr.PROP_CONSUMEORDERLY, 'true');
        assert.equal(pr.PROP_THREADPOOL_CORE_SIZE, '3');
        assert.equal(pr.PROP_NAMESERVER_ADDR, `${ns};`);
        const started = Number(pr.PROP_CONSUMER_START_TIMESTAMP);
        assert.ok(started >= t0 - 1000 && started <= Date.now(), `start timestamp ${started}`);
        assert.match(pr.PROP_CLIENT_VERSION, /\S/);
        assert.equal(pr.consumerGroup, group);
        assert.equal(pr.messageModel, 'CLUSTERING');
        assert.equal(pr.consumeFromWhere, 'CONSUME_FROM_FIRST_OFFSET');
        assert.equal(info.jstack, '', 'jstack is there when asked for');

        const subs = Object.fromEntries(info.subscriptionSet.map((s) => [s.topic, s]));
        assert.deepEqual(Object.keys(subs).sort(), [`%RETRY%${group}`, topic].sort());
        assert.equal(subs[topic].subString, '*');
        assert.equal(subs[topic].expressionType, 'TAG');
        assert.deepEqual(Object.keys(info.statusTable).sort(), Object.keys(subs).sort());
        for (const k of ['pullRT', 'pullTPS', 'consumeRT', 'consumeOKTPS', 'consumeFailedTPS', 'consumeFailedMsgs'])
            assert.equal(typeof info.statusTable[topic][k], 'number', k);
        // The window of the rates opened at start: 20 messages pulled and consumed in it.
        const st = info.statusTable[topic];
        assert.ok(st.pullTPS > 0 && st.consumeOKTPS > 0, `rates ${JSON.stringify(st)}`);
        assert.ok(st.pullRT >= 0 && st.consumeRT >= 0, `round trips ${JSON.stringify(st)}`);
        assert.equal(st.consumeFailedMsgs, 0);
        assert.equal(st.consumeFailedTPS, 0);

        const rows = topicRows();
        // The only member holds every queue of the topic (4, the auto-created default).
        assert.deepEqual(rows.map(([mq]) => mq.queueId).sort(), [0, 1, 2, 3]);
        for (const [mq, q] of rows) {
            assert.equal(typeof mq.brokerName, 'string');
            assert.equal(typeof mq.queueId, 'number');
            assert.equal(q.locked, true, 'orderly clustering holds each queue\'s lock');
            assert.ok(q.lastLockTimestamp >= t0 - 1000 && q.lastLockTimestamp <= Date.now() + 1000,
                `lock timestamp ${q.lastLockTimestamp} is wall-clock ms`);
            assert.equal(q.droped, false);
            assert.equal(q.cachedMsgCount, 0, 'everything was consumed');
            assert.equal(q.transactionMsgCount, 0);
            assert.ok(q.lastPullTimestamp >= t0 - 1000, `last pull ${q.lastPullTimestamp}`);
            for (const k of ['cachedMsgMinOffset', 'cachedMsgMaxOffset', 'cachedMsgSizeInMiB',
                'transactionMsgMinOffset', 'transactionMsgMaxOffset', 'tryUnlockTimes', 'lastConsumeTimestamp'])
                assert.equal(typeof q[k], 'number', k);
        }
        assert.ok(rows.some(([, q]) => q.lastConsumeTimestamp >= t0 - 1000), 'a queue was consumed');

        // Without jstackEnable there is no jstack.
        assert.equal((await runningInfo(group, id, false)).jstack, undefined);
        // Another client id of the group is not online.
        assert.notEqual((await admin.request(307, { consumerGroup: group, clientId: 'nobody@1' })).code, 0);
    } finally {
        assert.equal(await c.stop(), 0, c.out);
    }
});
