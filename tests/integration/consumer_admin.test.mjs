// Offsets administration against a running C push consumer (examples/push_consumer):
// INVOKE_BROKER_TO_RESET_OFFSET (222) by timestamp writes the new offsets and pushes
// RESET_CONSUMER_CLIENT_OFFSET (220) to the live consumer, which drops what it held and
// consumes again from there; GET_CONSUME_STATS shows the lag; the consumer connection
// list names the C client. GET_CONSUMER_RUNNING_INFO (307) is forwarded to the client
// with that clientId and its answer relayed (a raw-protocol client plays the consumer
// here, to script refusals; client_running_info.test.mjs asks a real C consumer). ali-ons ignores 220 (it has no handler for
// server-initiated requests), so the reset is checked with the C client.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { exDir, startExample } from '../lib/examples.mjs';
import { freePort, startApogee } from '../lib/proc.mjs';
import { parseFastjson } from '../lib/fastjson.mjs';
import { RemotingClient, waitForRoute } from '../lib/remoting.mjs';

const skip = fs.existsSync(path.join(exDir, 'push_consumer')) ? false : `no examples in ${exDir}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let srv;
let admin;
let ns;
before(async () => {
    const nsPort = await freePort();
    srv = await startApogee('standalone', [], { extraPorts: { namesrvListenPort: nsPort } });
    ns = `127.0.0.1:${nsPort}`;
    await waitForRoute(nsPort);
    admin = await RemotingClient.connect(srv.port);
});
after(async () => {
    admin?.close();
    await srv?.stop();
});

function produce(topic, n) {
    const r = spawnSync(path.join(exDir, 'producer_sync'), [ns, topic, String(n)], { encoding: 'utf8', timeout: 30000 });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
}

// A running push_consumer; recv() as [queueId, queueOffset] of every message received.
function startConsumer(args) {
    const st = startExample('push_consumer', args);
    const lines = st.recv;
    st.recv = () => lines().map((f) => [Number(f[3]), Number(f[4])]);
    return st;
}

async function until(pred, ms, what) {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
        if (await pred()) return;
        await sleep(50);
    }
    throw new Error(`timed out waiting for ${typeof what === 'function' ? what() : what}`);
}

async function stats(group, topic) {
    const r = await admin.request(208, { consumerGroup: group, topic });
    assert.equal(r.code, 0, r.remark);
    const v = parseFastjson(r.body.toString());
    return (Array.isArray(v.offsetTable) ? v.offsetTable : []).map(([mq, w]) => ({ ...mq, ...w }));
}
const lag = (rows) => rows.reduce((s, r) => s + r.brokerOffset - r.consumerOffset, 0);

test('reset by timestamp: a running C push consumer consumes again from that time', { skip }, async () => {
    const topic = 'T_RESET';
    const group = 'CG_RESET';
    produce(topic, 20);
    await sleep(100);
    const mid = Date.now();
    await sleep(100);
    produce(topic, 20);

    const c = startConsumer(['-n', ns, '-t', topic, '-g', group, '--first', '--seconds', '60']);
    try {
        await until(() => c.recv().length >= 40, 20000, () => `40 messages (${c.recv().length})`);
        let rows = [];
        await until(async () => (rows = await stats(group, topic)).length > 0 && lag(rows) === 0,
            10000, () => `lag 0: ${JSON.stringify(rows)}`);
        assert.equal(rows.reduce((n, r) => n + r.brokerOffset, 0), 40);

        // The connection list names the C client.
        const cl = await admin.request(203, { consumerGroup: group });
        assert.equal(cl.code, 0, cl.remark);
        assert.deepEqual(JSON.parse(cl.body.toString()).connectionSet.map((x) => x.clientId), [c.clientId()]);

        // Reset to `mid`: every queue goes back to its first message stored after it.
        const r = await admin.request(222, { topic, group, timestamp: String(mid), isForce: 'false' });
        assert.equal(r.code, 0, r.remark);
        const table = parseFastjson(r.body.toString()).offsetTable.map(([mq, off]) => ({ ...mq, off }));
        assert.equal(table.length, rows.length);
        const back = table.reduce((n, x) => n + (rows.find((y) => y.queueId === x.queueId).brokerOffset - x.off), 0);
        assert.equal(back, 20, `offsets after the reset ${JSON.stringify(table)}`);

        // The consumer gets exactly the 20 messages stored after `mid` again.
        await until(() => c.recv().length >= 60, 20000, () => `20 messages again (${c.recv().length})`);
        await sleep(500);
        const again = c.recv().slice(40);
        assert.equal(again.length, 20);
        for (const [q, off] of again) {
            const from = table.find((x) => x.queueId === q).off;
            assert.ok(off >= from, `queue ${q} offset ${off} is before the reset point ${from}`);
        }
        assert.equal(new Set(again.map(([q, off]) => `${q}:${off}`)).size, 20);
        await until(async () => lag(rows = await stats(group, topic)) === 0, 10000,
            () => `lag 0 after the reset: ${JSON.stringify(rows)}`);

        // Forced to a later time than the committed offsets: only with isForce.
        const late = await admin.request(222, { topic, group, timestamp: '-1', isForce: 'true' });
        assert.equal(late.code, 0, late.remark);
    } finally {
        assert.equal(await c.stop(), 0, c.out);
    }
    // Nobody online: CONSUMER_NOT_ONLINE, offsets untouched.
    const before = await stats(group, topic);
    const r = await admin.request(222, { topic, group, timestamp: '0', isForce: 'true' });
    assert.equal(r.code, 206, r.remark);
    assert.deepEqual(await stats(group, topic), before);
    assert.notEqual((await admin.request(222, { topic: 'NO_SUCH', group, timestamp: '0' })).code, 0);
});

test('GET_CONSUMER_RUNNING_INFO is forwarded to the client and its answer relayed', async () => {
    const group = 'CG_RUNINFO';
    const fake = await RemotingClient.connect(srv.port);
    try {
        const seen = [];
        fake.onRequest = (req) => {
            if (req.code !== 307) return;
            seen.push(req.ext);
            fake.respond(req, 0, {}, Buffer.from('{"properties":{"PROP_CLIENT_VERSION":"V4_9_8"}}'));
        };
        const hb = {
            clientID: 'fake@1',
            consumerDataSet: [{
                groupName: group, consumeType: 'CONSUME_PASSIVELY', messageModel: 'CLUSTERING',
                consumeFromWhere: 'CONSUME_FROM_LAST_OFFSET', unitMode: false,
                subscriptionDataSet: [{ topic: 'T_RUNINFO', subString: '*', tagsSet: [], codeSet: [], subVersion: 1 }],
            }],
            producerDataSet: [],
        };
        assert.equal((await fake.request(34, {}, Buffer.from(JSON.stringify(hb)))).code, 0);
        const r = await admin.request(307, { consumerGroup: group, clientId: 'fake@1', jstackEnable: 'false' });
        assert.equal(r.code, 0, r.remark);
        assert.deepEqual(JSON.parse(r.body.toString()), { properties: { PROP_CLIENT_VERSION: 'V4_9_8' } });
        assert.equal(seen.length, 1);
        assert.equal(seen[0].clientId, 'fake@1');
        assert.equal(seen[0].consumerGroup, group);
        const other = await admin.request(307, { consumerGroup: group, clientId: 'other@2' });
        assert.notEqual(other.code, 0);
        // The client's code and remark come back as they were.
        fake.onRequest = (req) => fake.respond(req, 1, {}, null, 'no running info');
        const bad = await admin.request(307, { consumerGroup: group, clientId: 'fake@1' });
        assert.equal(bad.code, 1);
        assert.equal(bad.remark, 'no running info');
    } finally {
        fake.close();
    }
});
