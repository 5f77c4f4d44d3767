// C client: the broker dies under load. Sync senders write on their own
// threads (direct sends) and async ones queue for the I/O thread; when the
// connection breaks every pending send must still finish (error or retry),
// so `apogee bench` ends on time with failures counted, never hangs or
// crashes. 127.0.0.1 only, random ports, temp dirs cleaned up by proc.mjs.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';

import { apogeeBin, freePort, startApogee } from '../lib/proc.mjs';
import { RemotingClient, waitForRoute } from '../lib/remoting.mjs';

const probe = spawnSync(apogeeBin(), ['bench', '--help'], { encoding: 'utf8' });
const skip = probe.status === 0 && /--rate=N/.test(probe.stdout) ? false : '`apogee bench` without --rate';

function runBench(args) {
    const p = spawn(apogeeBin(), ['bench', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    const done = new Promise((res) => p.on('exit', (code, signal) => res({ code, signal, out: () => out })));
    return { p, done, out: () => out };
}

async function waitFor(fn, ms) {
    const end = Date.now() + ms;
    while (Date.now() < end) {
        if (await fn()) return true;
        await new Promise((r) => setTimeout(r, 20));
    }
    return false;
}

describe('C client when the broker goes away', { skip }, () => {
    for (const [name, args] of [
        ['16 sync threads', ['--mode=sync', '--threads=16']],
        ['async', ['--mode=async', '--threads=2', '--inflight=2000']],
        ['oneway', ['--mode=oneway', '--threads=2']],
    ]) {
        test(`${name}: every send finishes and bench exits`, async () => {
            const nsPort = await freePort();
            const sa = await startApogee('standalone', [], { extraPorts: { namesrvListenPort: nsPort } });
            let b;
            try {
                await waitForRoute(nsPort);
                b = runBench(['produce', `--namesrvAddr=127.0.0.1:${nsPort}`, '--topic=Failover', '--duration=4', ...args]);
                // Under load: at least one per-second report line with sends.
                assert.ok(await waitFor(() => /\[  1s\] sent +[1-9]/.test(b.out()), 8000), b.out());
                await sa.stop('SIGKILL');
                const started = Date.now();
                const r = await Promise.race([
                    b.done,
                    new Promise((res) => setTimeout(() => res(null), 20000)),
                ]);
                assert.ok(r, `bench still running 20 s after the broker died:\n${b.out()}`);
                assert.equal(r.signal, null, r.out());
                assert.ok(r.code === 0 || r.code === 1, r.out());
                assert.ok(Date.now() - started < 20000);
                assert.match(r.out(), /produced: \d+ msgs/);
                if (name !== 'oneway') assert.match(r.out(), /errors [1-9]\d*/, r.out());
            } finally {
                if (b && b.p.exitCode === null) b.p.kill('SIGKILL');
                await sa.stop('SIGKILL');
            }
        });
    }
});

// A send refused with a retriable code (here SERVICE_NOT_AVAILABLE from a broker whose
// disk guard pretends the disk is 99 % full) is sent again to a queue of another broker,
// not to the next queue of the same one: with broker-a refusing every write, all sync
// sends of `apogee bench` land on broker-b and none fails.
describe('C client: a send one broker refuses is sent again to another broker', { skip }, () => {
    test('broker-a refuses writes (disk full): every sync send lands on broker-b', async () => {
        const ns = await startApogee('namesrv', []);
        const nsAddr = `127.0.0.1:${ns.port}`;
        const brokers = [];
        let cl;
        try {
            for (const [name, env] of [
                ['broker-a', { APOGEE_STORE_FAULTS: '1', APOGEE_STORE_FAULT_DISK_RATIO: '99' }],
                ['broker-b', {}],
            ]) {
                brokers.push(await startApogee('broker', [`--namesrvAddr=${nsAddr}`,
                    `--brokerName=${name}`, '--allowLoopbackAdvertise=true'], { env }));
            }
            for (const b of brokers) {
                const c = await RemotingClient.connect(b.port);
                const r = await c.request(17, { topic: 'Twin', readQueueNums: '4', writeQueueNums: '4', perm: '6' });
                c.close();
                assert.equal(r.code, 0, r.remark);
            }
            cl = await RemotingClient.connect(ns.port);
            assert.ok(await waitFor(async () => {
                const r = await cl.request(105, { topic: 'Twin' });
                return r.code === 0 && JSON.parse(r.body.toString()).brokerDatas.length === 2;
            }, 10000), 'the route of Twin through both brokers');
            // broker-a really refuses: a direct send gets SERVICE_NOT_AVAILABLE (14).
            const ca = await RemotingClient.connect(brokers[0].port);
            const refused = await ca.request(310, {
                a: 'PG_TWIN', b: 'Twin', c: 'TBW102', d: '4', e: '0', f: '0',
                g: String(Date.now()), h: '0', i: '', k: 'false',
            }, Buffer.from('x'));
            ca.close();
            assert.equal(refused.code, 14, refused.remark);

            const b = runBench(['produce', `--namesrvAddr=${nsAddr}`, '--topic=Twin', '--mode=sync',
                '--threads=1', '--messages=200', '--duration=30', '--json']);
            const r = await b.done;
            assert.equal(r.code, 0, r.out());
            const sum = JSON.parse(r.out().trim().split('\n').at(-1));
            assert.equal(sum.failed, 0, r.out());
            assert.equal(sum.sent, 200, r.out());
            // All of them on broker-b, and bench's warm-up send with them.
            const cb = await RemotingClient.connect(brokers[1].port);
            let stored = 0;
            for (let q = 0; q < 4; q++) {
                const m = await cb.request(30, { topic: 'Twin', queueId: String(q) });
                stored += Number(m.ext.offset);
            }
            cb.close();
            assert.equal(stored, 201);
        } finally {
            cl?.close();
            for (const b of brokers) await b.stop();
            await ns.stop();
        }
    });
});
