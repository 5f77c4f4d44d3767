// Topic and group tables: an acknowledged admin change is on disk (the reply waits for the
// coalesced write of topics.json / subscriptionGroup.json), concurrent changes all land, and
// a created topic reaches the NameServer's routes.
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
