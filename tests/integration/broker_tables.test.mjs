// Topic and group tables: an acknowledged admin change is on disk (the reply waits for the
// coalesced append to topics.json.log / subscriptionGroup.json.log, or a write of the whole
// file), concurrent changes all land, a kill -9 in the middle of a storm of creates, updates
// and deletes loses no acknowledged one, and a created topic reaches the NameServer's routes.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, startApogee } from '../lib/proc.mjs';
import { RemotingClient } from '../lib/remoting.mjs';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-tables-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

async function start(nsPort) {
    const srv = await startApogee('standalone', [], { dir, keepDir: true, extraPorts: { namesrvListenPort: nsPort } });
    return { srv, br: await RemotingClient.connect(srv.port) };
}

test('acknowledged topic and group changes survive a kill -9', async () => {
    const nsPort = await freePort();
    let { srv, br } = await start(nsPort);
    const N = 300;
    const rs = await Promise.all(Array.from({ length: N }, (_, i) =>
        br.request(17, { topic: `Durable${i}`, readQueueNums: '2', writeQueueNums: '2', perm: '6' })));
    for (const r of rs) assert.equal(r.code, 0, r.remark);
    const group = { groupName: 'DurableGroup', consumeEnable: true, retryQueueNums: 1, retryMaxTimes: 3 };
    const g = await br.request(200, {}, Buffer.from(JSON.stringify(group)));
    assert.equal(g.code, 0, g.remark);
    // Deleting is a change too.
    assert.equal((await br.request(215, { topic: 'Durable0' })).code, 0);
    br.close();
    await srv.stop('SIGKILL');

    ({ srv, br } = await start(nsPort));
    try {
        const all = JSON.parse((await br.request(21, {})).body.toString()).topicConfigTable;
        for (let i = 1; i < N; i++) assert.ok(all[`Durable${i}`], `Durable${i} lost`);
        assert.equal(all.Durable0, undefined, 'the deleted topic came back');
        assert.ok(all['%RETRY%DurableGroup'], 'the group\'s retry topic was lost');
        const groups = JSON.parse((await br.request(201, {})).body.toString()).subscriptionGroupTable;
        assert.equal(groups.DurableGroup?.retryMaxTimes, 3);
        // The NameServer routes a topic created now.
        assert.equal((await br.request(17, { topic: 'Routed', readQueueNums: '4', writeQueueNums: '4', perm: '6' })).code, 0);
        const ns = await RemotingClient.connect(nsPort);
        let code = -1;
        for (let i = 0; i < 100 && code !== 0; i++) {
            code = (await ns.request(105, { topic: 'Routed' })).code;
            if (code !== 0) await new Promise((r) => setTimeout(r, 20));
        }
        ns.close();
        assert.equal(code, 0, 'no route for a created topic');
    } finally {
        br.close();
        await srv.stop();
    }
});

test('a kill -9 during a storm of creates and deletes loses no acknowledged change', async () => {
    const nsPort = await freePort();
    const sdir = fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-storm-'));
    after(() => fs.rmSync(sdir, { recursive: true, force: true }));
    const boot = async () => {
        const srv = await startApogee('standalone', [], { dir: sdir, keepDir: true, extraPorts: { namesrvListenPort: nsPort } });
        return { srv, br: await RemotingClient.connect(srv.port) };
    };
    let { srv, br } = await boot();
    const acked = new Map(); // topic -> {readQueueNums, writeQueueNums, perm} of its last acknowledged create
    const deleted = new Set(); // acknowledged deletes, with no create of the same name after
    const uncertain = new Set(); // a request for it was in flight at the kill
    let stop = false;
    const create = async (topic, q, perm) => {
        const fields = { readQueueNums: q, writeQueueNums: q, perm };
        uncertain.add(topic);
        const r = await br.request(17, { topic, readQueueNums: String(q), writeQueueNums: String(q), perm: String(perm) });
        assert.equal(r.code, 0, r.remark);
        acked.set(topic, fields);
        deleted.delete(topic);
        uncertain.delete(topic);
    };
    const remove = async (topic) => {
        uncertain.add(topic);
        const r = await br.request(215, { topic });
        assert.equal(r.code, 0, r.remark);
        acked.delete(topic);
        deleted.add(topic);
        uncertain.delete(topic);
    };
    // One at a time: creates, an update of an earlier topic and a delete every few steps.
    const sequential = (async () => {
        for (let i = 0; !stop; i++) {
            await create(`Seq${i}`, 1 + (i % 7), i % 2 ? 6 : 4);
            if (i % 5 === 4) await create(`Seq${i - 2}`, 9, 2);
            if (i % 10 === 9) await remove(`Seq${i - 6}`);
        }
    })();
    // 32 in flight; each worker deletes only topics it created itself, so the order of the
    // replies is the order of the changes.
    let next = 0;
    const concurrent = Array.from({ length: 32 }, async () => {
        const mine = [];
        while (!stop) {
            const i = next++;
            await create(`Par${i}`, 1 + (i % 5), 6);
            mine.push(`Par${i}`);
            if (i % 4 === 3) await remove(mine.shift());
        }
    });
    const settled = Promise.allSettled([sequential, ...concurrent]);
    // Kill while requests are in flight, once a few thousand changes are acknowledged.
    for (let t = 0; t < 200 && acked.size + deleted.size < 3000; t++)
        await new Promise((r) => setTimeout(r, 25));
    await srv.stop('SIGKILL');
    stop = true;
    for (const r of await settled)
        if (r.status === 'rejected') assert.match(r.reason.message, /connection closed|timed out/);
    br.close();
    const before = { acked: acked.size, deleted: deleted.size };
    assert.ok(before.acked > 100, `only ${before.acked} topics acknowledged before the kill`);
    // The journal may be empty here: a compaction (every 1,000 records) can come just
    // before the kill. What counts is the check after the restart below.
    assert.ok(fs.existsSync(path.join(sdir, 'config/topics.json.log')), 'no journal file after the kill');

    ({ srv, br } = await boot());
    const check = (all) => {
        for (const [topic, f] of acked) {
            if (uncertain.has(topic)) continue;
            const got = all[topic];
            assert.ok(got, `${topic} lost`);
            assert.deepEqual({ readQueueNums: got.readQueueNums, writeQueueNums: got.writeQueueNums, perm: got.perm }, f, topic);
        }
        for (const topic of deleted)
            if (!uncertain.has(topic)) assert.equal(all[topic], undefined, `deleted ${topic} came back`);
    };
    try {
        check(JSON.parse((await br.request(21, {})).body.toString()).topicConfigTable);
    } finally {
        br.close();
        await srv.stop();
    }
    // After a clean stop the whole table is in topics.json (RocketMQ's format) and the journal
    // is empty.
    assert.equal(fs.statSync(path.join(sdir, 'config/topics.json.log')).size, 0);
    check(JSON.parse(fs.readFileSync(path.join(sdir, 'config/topics.json'), 'utf8')).topicConfigTable);
    console.log(`storm: ${before.acked} topics and ${before.deleted} deletes acknowledged before the kill`);
});
