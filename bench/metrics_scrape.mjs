// GET /metrics scrape time on a broker with T topics x G consumer groups (the bar: <= 5 ms
// at 1,000 x 10). A fresh `apogee standalone` gets T topics of Q queues, M messages in every
// queue, and for every group a pull of every queue (so each (topic, group) has pulled-message
// counters) and a committed offset of `commit` on every queue (commit < M leaves every queue
// lagging, the costly case: the renderer then reads the store time of the first uncommitted
// message of each queue). Then S scrapes over one keep-alive connection, one at a time; each
// is timed from the request to the last byte of the answer, and the broker's CPU time over
// them is divided by S.
//
// usage: node bench/metrics_scrape.mjs [T=1000] [G=10] [Q=4] [M=2] [commit=1] [S=200]
//        APOGEE_BIN (default build/apogee) picks the binary; the data directory is a fresh
//        temp directory, removed at the end.
import fs from 'node:fs';
import http from 'node:http';
import { freePort, startApogee } from '../tests/lib/proc.mjs';
import { RemotingClient } from '../tests/lib/remoting.mjs';

const [T, G, Q, M, commit, S] = [1000, 10, 4, 2, 1, 200].map((d, i) => Number(process.argv[2 + i] ?? d));
const httpPort = await freePort();
const srv = await startApogee('standalone', [`--httpListenPort=${httpPort}`],
    { extraPorts: { namesrvListenPort: await freePort() } });
const br = await RemotingClient.connect(srv.port);

async function pool(n, inflight, fn) {
    let next = 0;
    await Promise.all(Array.from({ length: inflight }, async () => {
        while (next < n) {
            const i = next++;
            const r = await fn(i);
            if (r.code !== 0) throw new Error(`request ${i}: code ${r.code} ${r.remark ?? ''}`);
        }
    }));
}

const topic = (i) => `MetricsBench${i}`;
const group = (g) => `MetricsBenchGroup${g}`;
let t = Date.now();
await pool(T, 32, (i) => br.request(17, { topic: topic(i), readQueueNums: String(Q), writeQueueNums: String(Q), perm: '6' }));
await pool(T * Q * M, 64, (k) => {
    const i = Math.floor(k / (Q * M));
    const q = Math.floor(k / M) % Q;
    return br.request(310, {
        a: 'PG_BENCH', b: topic(i), c: 'TBW102', d: String(Q), e: String(q), f: '0',
        g: String(Date.now()), h: '0', i: '', j: '0', k: 'false',
    }, Buffer.from(`m${k}`));
});
await pool(T * Q * G, 64, async (k) => {
    const g = k % G;
    const i = Math.floor(k / (Q * G));
    const q = Math.floor(k / G) % Q;
    const p = await br.request(11, {
        consumerGroup: group(g), topic: topic(i), queueId: String(q), queueOffset: '0',
        maxMsgNums: '32', sysFlag: '0', commitOffset: '0', suspendTimeoutMillis: '0',
        subscription: '*', subVersion: '0', expressionType: 'TAG',
    });
    if (p.code !== 0) return p;
    return br.request(15, { consumerGroup: group(g), topic: topic(i), queueId: String(q), commitOffset: String(commit) });
});
const setupS = (Date.now() - t) / 1000;

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
function scrape() {
    return new Promise((resolve, reject) => {
        const t0 = process.hrtime.bigint();
        http.get({ host: '127.0.0.1', port: httpPort, path: '/metrics', agent }, (res) => {
            const ttfb = Number(process.hrtime.bigint() - t0) / 1e6;
            const parts = [];
            res.on('data', (d) => parts.push(d));
            res.on('end', () => resolve({ ms: Number(process.hrtime.bigint() - t0) / 1e6, ttfb, parts, status: res.statusCode }));
        }).on('error', reject);
    });
}
for (let i = 0; i < 10; i++) await scrape(); // warm: scratch tables, connection buffers
// Broker CPU (user + system, clock ticks of 10 ms) over the timed scrapes: less sensitive to
// other load on the machine than the wall-clock times.
const cpuTicks = () => fs.readFileSync(`/proc/${srv.proc.pid}/stat`, 'utf8').split(') ')[1].split(' ')
    .slice(11, 13).reduce((s, v) => s + Number(v), 0);
const cpu0 = cpuTicks();
const ms = [];
const ttfb = [];
let last;
for (let i = 0; i < S; i++) {
    last = await scrape();
    if (last.status !== 200) throw new Error(`status ${last.status}`);
    ms.push(last.ms);
    ttfb.push(last.ttfb);
}
const cpuMs = (cpuTicks() - cpu0) * 10 / S;
const body = Buffer.concat(last.parts);
let lines = 0;
for (const b of body) if (b === 10) lines++;
const pct = (a, p) => a.sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(a.length * p))].toFixed(2);
// First byte: the answer is written whole once rendered, so this is the render time plus a
// loopback round trip; last byte adds moving the body through the kernel into node.
console.log(`${T} topics x ${G} groups (${Q} queues, ${M} messages each, committed ${commit}; setup ${setupS.toFixed(1)} s): ` +
    `${S} scrapes of ${(body.length / 1e6).toFixed(2)} MB, ${lines} lines: first byte p50 ${pct(ttfb, 0.5)} ms, ` +
    `p99 ${pct(ttfb, 0.99)} ms; last byte p50 ${pct(ms, 0.5)} ms, p90 ${pct(ms, 0.9)} ms, p99 ${pct(ms, 0.99)} ms, max ${pct(ms, 1)} ms; broker CPU ${cpuMs.toFixed(2)} ms per scrape`);
agent.destroy();
br.close();
await srv.stop();
