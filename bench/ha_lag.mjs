// Replication throughput and lag: a NameServer, a master (ASYNC_MASTER, or SYNC_MASTER with
// `sync`) and a slave on fresh temp dirs; `apogee bench produce` against the master; the
// slave's commit-log end is sampled every 50 ms against the master's (GET_BROKER_RUNTIME_INFO)
// for the largest lag in bytes, and after the run for how long the slave takes to catch up.
//
// usage: node bench/ha_lag.mjs [async|sync] [threads=64] [seconds=5] [size=128]
//        APOGEE_BIN (default build/apogee) picks the binary.
import { spawn } from 'node:child_process';

import { apogeeBin, freePort, startApogee } from '../tests/lib/proc.mjs';
import { RemotingClient } from '../tests/lib/remoting.mjs';

const mode = process.argv[2] ?? 'async';
const threads = process.argv[3] ?? '64';
const secs = process.argv[4] ?? '5';
const size = process.argv[5] ?? '128';

const ns = await startApogee('namesrv', []);
const nsAddr = `127.0.0.1:${ns.port}`;
const common = [`--namesrvAddr=${nsAddr}`, '--brokerName=bench-ha', '--allowLoopbackAdvertise=true'];
const haPort = await freePort();
const master = await startApogee('broker', [...common, `--haListenPort=${haPort}`,
    `--brokerRole=${mode === 'sync' ? 'SYNC_MASTER' : 'ASYNC_MASTER'}`]);
const slave = await startApogee('broker', [...common, '--brokerRole=SLAVE', '--brokerId=1']);

async function end(port) {
    const c = await RemotingClient.connect(port);
    try {
        const r = await c.request(28);
        return Number(JSON.parse(r.body.toString()).table.commitLogMaxOffset);
    } finally {
        c.close();
    }
}

const adm = await RemotingClient.connect(master.port);
await adm.request(17, { topic: 'HaBench', readQueueNums: '8', writeQueueNums: '8', perm: '6' });
adm.close();
for (let i = 0; i < 300; i++) {
    const c = await RemotingClient.connect(ns.port);
    const r = await c.request(105, { topic: 'HaBench' });
    c.close();
    if (r.code === 0 && Object.keys(JSON.parse(r.body.toString()).brokerDatas[0].brokerAddrs).length === 2) break;
    await new Promise((res) => setTimeout(res, 50));
}

let maxLag = 0, sampling = true;
const sampler = (async () => {
    while (sampling) {
        const m = await end(master.port), s = await end(slave.port);
        if (m - s > maxLag) maxLag = m - s;
        await new Promise((res) => setTimeout(res, 50));
    }
})();
const out = await new Promise((res) => {
    const p = spawn(apogeeBin(), ['bench', 'produce', `--namesrvAddr=${nsAddr}`, '--topic=HaBench',
        `--threads=${threads}`, `--size=${size}`, `--duration=${secs}`, '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let o = '';
    p.stdout.on('data', (d) => (o += d));
    p.on('close', () => res(o));
});
const t0 = Date.now();
const target = await end(master.port);
while ((await end(slave.port)) < target) await new Promise((res) => setTimeout(res, 5));
const catchUp = Date.now() - t0;
sampling = false;
await sampler;
const sum = JSON.parse(out.trim().split('\n').at(-1));
console.log(JSON.stringify({ mode, threads: Number(threads), size: Number(size), sent: sum.sent,
    failed: sum.failed, msgsPerSec: Math.round(sum.sent / Number(secs)), p99us: sum.p99_us ?? sum.p99,
    logBytes: target, maxLagBytes: maxLag, catchUpMs: catchUp }));
await slave.stop();
await master.stop();
await ns.stop();
