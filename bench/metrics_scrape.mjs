// GET /metrics scrape time on a broker with T topics x G consumer groups (the bar: <= 5 ms
// at 1,000 x 10). A fresh `apogee standalone` gets T topics of Q queues, M messages in every
// queue, and for every group a pull of every queue (so each (topic, group) has pulled-message
// counters) and a committed offset of `commit` on every queue (commit < M leaves every queue
// lagging, the costly case: the renderer then reads the store time of the first uncommitted
// message of each queue). Then three timed runs of S scrapes each, one scrape at a time over
// one keep-alive connection: node's http client with nothing changing between scrapes; the
// same with one more (topic, group) committing before each scrape (outside the timed window),
// so the renderer cannot keep its lag rows and recomputes them; and curl (one process
// fetching the URL S times over one connection, body to /dev/null) as a lean client, nothing
// changing. Each scrape is timed from the request to the first and to the last byte of the
// answer; the broker's CPU time (all its threads, from schedstat) over a run is divided by S.
//
// Side by side: with APOGEE_BINS=a,b[,...] every binary gets a broker set up by the same steps
// (at the same time), then ROUNDS (default 5) rounds run the three runs on each broker in
// turn, the order reversed every other round, so each comparison shares the machine's load;
// medians over the rounds close the output. Each broker's store takes several GB: two or
// three at once fit the disk.
//
// usage: node bench/metrics_scrape.mjs [T=1000] [G=10] [Q=4] [M=2] [commit=1] [S=200]
//        APOGEE_BIN (default build/apogee) picks the binary, or APOGEE_BINS several; data
//        directories are fresh temp directories, removed at the end.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import { execFileSync } from 'node:child_process';
import { freePort, startApogee } from '../tests/lib/proc.mjs';
import { RemotingClient } from '../tests/lib/remoting.mjs';

const [T, G, Q, M, commit, S] = [1000, 10, 4, 2, 1, 200].map((d, i) => Number(process.argv[2 + i] ?? d));
const bins = (process.env.APOGEE_BINS ?? '').split(',').filter(Boolean);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const topic = (i) => `MetricsBench${i}`;
const group = (g) => `MetricsBenchGroup${g}`;
const slow = { timeoutMs: 60000 }; // sends may wait on a busy disk during setup

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

// A broker with the data set; bin undefined: APOGEE_BIN's.
async function setup(bin) {
    if (bin) process.env.APOGEE_BIN = bin;
    const httpPort = await freePort();
    const srv = await startApogee('standalone', [`--httpListenPort=${httpPort}`],
        { extraPorts: { namesrvListenPort: await freePort() } });
    const br = await RemotingClient.connect(srv.port);
    await pool(T, 32, (i) => br.request(17, { topic: topic(i), readQueueNums: String(Q), writeQueueNums: String(Q), perm: '6' }));
    await pool(T * Q * M, 64, (k) => {
        const i = Math.floor(k / (Q * M));
        const q = Math.floor(k / M) % Q;
        return br.request(310, {
            a: 'PG_BENCH', b: topic(i), c: 'TBW102', d: String(Q), e: String(q), f: '0',
            g: String(Date.now()), h: '0', i: '', j: '0', k: 'false',
        }, Buffer.from(`m${k}`), slow);
    });
    await pool(T * Q * G, 64, async (k) => {
        const g = k % G;
        const i = Math.floor(k / (Q * G));
        const q = Math.floor(k / G) % Q;
        const p = await br.request(11, {
            consumerGroup: group(g), topic: topic(i), queueId: String(q), queueOffset: '0',
            maxMsgNums: '32', sysFlag: '0', commitOffset: '0', suspendTimeoutMillis: '0',
            subscription: '*', subVersion: '0', expressionType: 'TAG',
        }, null, slow);
        if (p.code !== 0) return p;
        return br.request(15, { consumerGroup: group(g), topic: topic(i), queueId: String(q), commitOffset: String(commit) });
    });
    const b = {
        name: (bin ?? process.env.APOGEE_BIN ?? 'build/apogee').split('/').pop(), srv, br, httpPort,
        agent: new http.Agent({ keepAlive: true, maxSockets: 1 }), churned: 0,
    };
    for (let i = 0; i < 10; i++) await scrape(b); // warm: scratch tables, connection buffers
    return b;
}

function scrape(b) {
    return new Promise((resolve, reject) => {
        const t0 = process.hrtime.bigint();
        http.get({ host: '127.0.0.1', port: b.httpPort, path: '/metrics', agent: b.agent }, (res) => {
            const ttfb = Number(process.hrtime.bigint() - t0) / 1e6;
            const parts = [];
            res.on('data', (d) => parts.push(d));
            res.on('end', () => resolve({ ms: Number(process.hrtime.bigint() - t0) / 1e6, ttfb, parts, status: res.statusCode }));
        }).on('error', reject);
    });
}

// Broker CPU in ms: the run time of every thread of the broker (schedstat, ns resolution);
// less sensitive to other load on the machine than the wall-clock times.
const cpuMsNow = (b) => fs.readdirSync(`/proc/${b.srv.proc.pid}/task`).reduce((s, t) => {
    try {
        return s + Number(fs.readFileSync(`/proc/${b.srv.proc.pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
    } catch {
        return s; // a thread that ended meanwhile
    }
}, 0);
const pct = (a, p) => [...a].sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(a.length * p))];

// node's client; with churn, before each scrape one more (topic, group) pair commits
// commit + 1 on queue 0, outside the timed window.
async function nodeRun(b, churn) {
    const ms = [];
    const ttfb = [];
    let last;
    let cpu = 0;
    for (let i = 0; i < S; i++) {
        if (churn) {
            const k = b.churned++;
            const r = await b.br.request(15, { consumerGroup: group(k % G), topic: topic(Math.floor(k / G) % T),
                queueId: '0', commitOffset: String(commit + 1) });
            if (r.code !== 0) throw new Error(`commit: code ${r.code}`);
        }
        const c0 = cpuMsNow(b);
        last = await scrape(b);
        cpu += cpuMsNow(b) - c0;
        if (last.status !== 200) throw new Error(`status ${last.status}`);
        ms.push(last.ms);
        ttfb.push(last.ttfb);
    }
    return { ms, ttfb, cpuMs: cpu / S, body: Buffer.concat(last.parts) };
}

function curlRun(b, minBytes) {
    const args = ['-s', '-w', '%{time_starttransfer} %{time_total} %{size_download}\\n'];
    for (let i = 0; i < S; i++) args.push('-o', '/dev/null', `http://127.0.0.1:${b.httpPort}/metrics`);
    const c0 = cpuMsNow(b);
    const rows = execFileSync('curl', args, { encoding: 'utf8', maxBuffer: 1 << 24 }).trim().split('\n')
        .map((l) => l.split(' ').map(Number));
    const cpuMs = (cpuMsNow(b) - c0) / S;
    if (rows.length !== S || rows.some((r) => r[2] < minBytes)) throw new Error('curl: short answers');
    return { ttfb: rows.map((r) => r[0] * 1000), ms: rows.map((r) => r[1] * 1000), cpuMs };
}

async function runs(b) {
    const still = await nodeRun(b, false);
    const churned = await nodeRun(b, true);
    const curl = curlRun(b, still.body.length / 2);
    return { still, churned, curl };
}

const line = (what, r) => `  ${what}: first byte p50 ${pct(r.ttfb, 0.5).toFixed(2)} ms, ` +
    `p99 ${pct(r.ttfb, 0.99).toFixed(2)} ms; last byte p50 ${pct(r.ms, 0.5).toFixed(2)} ms, ` +
    `p90 ${pct(r.ms, 0.9).toFixed(2)} ms, p99 ${pct(r.ms, 0.99).toFixed(2)} ms, max ${pct(r.ms, 1).toFixed(2)} ms; ` +
    `broker CPU ${r.cpuMs.toFixed(2)} ms per scrape`;
const load = () => os.loadavg().map((l) => l.toFixed(2)).join(' ');
const KINDS = [['still', 'node, nothing changes'], ['churned', 'node, a commit before each scrape'],
    ['curl', 'curl, nothing changes']];

const t0 = Date.now();
const brokers = bins.length ? await Promise.all(bins.map(setup)) : [await setup()];
const setupS = (Date.now() - t0) / 1000;
const first = await nodeRun(brokers[0], false);
let lines = 0;
for (const c of first.body) if (c === 10) lines++;
console.log(`${T} topics x ${G} groups (${Q} queues, ${M} messages each, committed ${commit}; setup ${setupS.toFixed(1)} s): ` +
    `${S} scrapes a run of ${(first.body.length / 1e6).toFixed(2)} MB, ${lines} lines`);
// First byte: the answer goes out in pieces while it is rendered, so this is the time to the
// first piece; last byte is the whole scrape as the client sees it.
if (!bins.length) {
    const r = await runs(brokers[0]);
    console.log(`load average ${load()}`);
    for (const [k, what] of KINDS) console.log(line(what, r[k]));
} else {
    const per = new Map(brokers.map((b) => [b, []]));
    for (let round = 0; round < ROUNDS; round++) {
        for (const b of round % 2 ? [...brokers].reverse() : brokers) {
            const la = load();
            const r = await runs(b);
            per.get(b).push(r);
            console.log(`round ${round} ${b.name} (load average ${la}):`);
            for (const [k, what] of KINDS) console.log(line(what, r[k]));
        }
    }
    console.log(`medians over ${ROUNDS} rounds (each round's p50 last byte and CPU per scrape):`);
    for (const b of brokers) {
        const rs = per.get(b);
        const med = (f) => pct(rs.map(f), 0.5).toFixed(2);
        console.log(`  ${b.name}: ` + KINDS.map(([k, what]) =>
            `${what}: last byte ${med((r) => pct(r[k].ms, 0.5))} ms, CPU ${med((r) => r[k].cpuMs)} ms`).join('; '));
    }
}
for (const b of brokers) {
    b.agent.destroy();
    b.br.close();
    await b.srv.stop();
}
