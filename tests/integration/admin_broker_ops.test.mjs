// Broker housekeeping through `apogee admin` against `apogee standalone`, checked against
// the files and tables the broker really holds:
//   - producer (GET_ALL_PRODUCER_INFO 328) lists a producer that heartbeated;
//   - cleanUnusedTopic (316) removes the consume queues of a topic the topic table lost
//     (its table files removed while the broker was down) and keeps the others;
//   - deleteExpiredCommitLog (329) deletes expired commit-log segments outside deleteWhen
//     (the first offset moves up), cleanExpiredCQ (306) answers success.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { freePort, runAdmin, startApogee } from '../lib/proc.mjs';
import { RemotingClient, waitForRoute } from '../lib/remoting.mjs';

async function standalone(dir, extra = []) {
    const nsPort = await freePort();
    const sa = await startApogee('standalone', extra, { dir, keepDir: true,
        extraPorts: { namesrvListenPort: nsPort } });
    await waitForRoute(nsPort, 'TBW102', 10000);
    return { sa, ns: ['-n', `127.0.0.1:${nsPort}`], b: ['-b', `127.0.0.1:${sa.port}`] };
}

async function admin(args) {
    const r = await runAdmin(args);
    assert.equal(r.code, 0, `apogee admin ${args.join(' ')}\n${r.out}`);
    return r;
}

async function runtime(port) {
    const c = await RemotingClient.connect(port);
    try {
        const r = await c.request(28, {});
        assert.equal(r.code, 0, r.remark);
        return JSON.parse(r.body.toString()).table;
    } finally {
        c.close();
    }
}

test('producer lists the instances of every producer group', async () => {
    const t = await standalone(fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-ops-')));
    const c = await RemotingClient.connect(t.sa.port);
    try {
        const hb = await c.request(34, {}, JSON.stringify({
            clientID: '127.0.0.1@ops-producer', producerDataSet: [{ groupName: 'PG_OPS' }],
            consumerDataSet: [],
        }));
        assert.equal(hb.code, 0, hb.remark);
        const j = JSON.parse((await admin(['producer', ...t.b, ...t.ns, '--json'])).out);
        const mine = j.producers.filter((p) => p.group === 'PG_OPS');
        assert.equal(mine.length, 1, JSON.stringify(j));
        assert.equal(mine[0].clientId, '127.0.0.1@ops-producer');
        assert.match(mine[0].remoteIP, /^\/127\.0\.0\.1:\d+$/);
        assert.ok(Math.abs(mine[0].lastUpdateTimestamp - Date.now()) < 60000);
        const tab = await admin(['producer', ...t.b, ...t.ns]);
        assert.match(tab.out, /PG_OPS +127\.0\.0\.1@ops-producer +\/127\.0\.0\.1:\d+/);
        const none = await runAdmin(['producer', ...t.ns]);
        assert.equal(none.code, 2, none.out); // -b is required, as in mqadmin
    } finally {
        c.close();
        await t.sa.stop();
        fs.rmSync(t.sa.dir, { recursive: true, force: true });
    }
});

test('cleanUnusedTopic removes the queues of a topic the table lost; cleanExpiredCQ answers', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-ops-'));
    let t = await standalone(dir);
    for (const topic of ['T_KEEP', 'T_LOST']) {
        await admin(['updateTopic', '-t', topic, '-c', 'DefaultCluster', ...t.ns]);
        await admin(['sendMessage', '-t', topic, '-p', 'body', ...t.ns]);
    }
    await t.sa.stop();
    // The topic table forgets every topic it was told about; the store keeps their queues.
    for (const f of fs.readdirSync(path.join(dir, 'config')).filter((n) => n.startsWith('topics.json'))) {
        fs.rmSync(path.join(dir, 'config', f));
    }
    t = await standalone(dir);
    try {
        await admin(['updateTopic', '-t', 'T_KEEP', '-c', 'DefaultCluster', ...t.ns]);
        assert.ok(fs.existsSync(path.join(dir, 'consumequeue', 'T_LOST')));
        const j = JSON.parse((await admin(['cleanUnusedTopic', ...t.b, ...t.ns, '--json'])).out);
        assert.deepEqual(j.brokers, [{ addr: `127.0.0.1:${t.sa.port}`, result: 'success' }]);
        assert.ok(!fs.existsSync(path.join(dir, 'consumequeue', 'T_LOST')), 'T_LOST queues removed');
        assert.ok(fs.existsSync(path.join(dir, 'consumequeue', 'T_KEEP')), 'T_KEEP queues kept');
        await t.sa.waitOutput(/CLEAN_UNUSED_TOPIC from 127\.0\.0\.1:\d+: 1 topic\(s\) not in the topic table removed/);
        const cq = await admin(['cleanExpiredCQ', ...t.ns]); // every master, as mqadmin without -b/-c
        assert.match(cq.out, /127\.0\.0\.1:\d+ +success/);
    } finally {
        await t.sa.stop();
        fs.rmSync(dir, { recursive: true, force: true });
    }
});

test('deleteExpiredCommitLog deletes expired segments outside deleteWhen', async () => {
    const hour = String((new Date().getHours() + 12) % 24).padStart(2, '0');
    const t = await standalone(fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-ops-')),
        ['--mappedFileSizeCommitLog=65536', '--fileReservedTime=0', `--deleteWhen=${hour}`,
            '--flushDiskType=SYNC_FLUSH']);
    try {
        await admin(['updateTopic', '-t', 'T_ROLL', '-c', 'DefaultCluster', ...t.ns]);
        for (let i = 0; i < 12; i++) {
            // Random text: the broker compresses bodies above 4 KiB, and these must stay large.
            await admin(['sendMessage', '-t', 'T_ROLL', '-p', crypto.randomBytes(12000).toString('base64'), ...t.ns]);
        }
        await new Promise((r) => setTimeout(r, 1100)); // segment mtimes fall behind "now"
        const before = Number((await runtime(t.sa.port)).commitLogMinOffset);
        assert.equal(before, 0);
        const r = await admin(['deleteExpiredCommitLog', ...t.b, ...t.ns]);
        assert.match(r.out, /success/);
        const after = Number((await runtime(t.sa.port)).commitLogMinOffset);
        assert.ok(after >= 65536, `commitLogMinOffset ${after}`);
        await t.sa.waitOutput(/DELETE_EXPIRED_COMMITLOG from 127\.0\.0\.1:\d+: [1-9]\d* expired commit log segment\(s\) removed/);
    } finally {
        await t.sa.stop();
        fs.rmSync(t.sa.dir, { recursive: true, force: true });
    }
});
