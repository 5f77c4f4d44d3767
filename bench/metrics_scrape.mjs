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
// changing; and a lean client in this process (one keep-alive socket, the answer's bytes
// counted to the last chunk, no HTTP parsing), without and with a commit before each scrape. Each scrape is timed from the request to the first and to the last byte of the
// answer; the broker's CPU time (all its threads, from schedstat) over a run is divided by S,
// and so is the client's own (node's process.cpuUsage; curl's from this process's children
// times in /proc/self/stat, 10 ms ticks).
//
// Floor: besides the brokers (and in side-by-side mode, in each round's rotation), a trivial
// server (a child node process that answers each request on a connection with the bytes of
// one whole answer taken from the first broker, head and chunks, in one socket write) is
// scraped the same way by node and curl: the time a client takes to receive those 9.6 MB from
// a server that does no work, the least a scrape can take on this machine with that client.
//
// Side by side: with APOGEE_BINS=a,b[,...] every binary gets a broker set up by the same steps
// (at the same time), then ROUNDS (default 5) rounds run the three runs on each broker in
// turn, the order reversed every other round, so each comparison shares the machine's load;
// medians over the rounds close the output. Each broker's store takes about 100 MB (small
// segment files, SMALL_FILES).
//
// usage: node bench/metrics_scrape.mjs [T=1000] [G=10] [Q=4] [M=2] [commit=1] [S=200]
//        APOGEE_BIN (default build/apogee) picks the binary, or APOGEE_BINS several; data
//        directories are fresh temp directories, removed at the end.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import { execFileSync, spawn } from 'node:child_process';
import net from 'node:net';
import { freePort, startApogee } from '../tests/lib/proc.mjs';
import { RemotingClient } from '../tests/lib/remoting.mjs';

const [T, G, Q, M, commit, S] = [1000, 10, 4, 2, 1, 200].map((d, i) => Number(process.argv[2 + i] ?? d));
const bins = (process.env.APOGEE_BINS ?? '').split(',').filter(Boolean);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const topic = (i) => `MetricsBench${i}`;
const group = (g) => `MetricsBenchGroup${g}`;
const slow = { timeoutMs: 60000 }; // sends may wait on a busy disk during setup
// Small segment files: 4,000 queues of default 5.7 MiB consume-queue files would take 23 GB of
// disk per broker; the exposition and its cost do not depend on the file sizes.
const SMALL_FILES = ['--mappedFileSizeConsumeQueue=6000', '--mappedFileSizeCommitLog=67108864'];

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
    const srv = await startApogee('standalone', [`--httpListenPort=${httpPort}`, ...SMALL_FILES],
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
        pid: srv.proc.pid,
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
const cpuMsNow = (b) => fs.readdirSync(`/proc/${b.pid}/task`).reduce((s, t) => {
    try {
        return s + Number(fs.readFileSync(`/proc/${b.pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
    } catch {
        return s; // a thread that ended meanwhile
    }
}, 0);
const pct = (a, p) => [...a].sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(a.length * p))];

// S timed scrapes, each by once() (answering { ms, ttfb }); with churn, before each one more
// (topic, group) pair commits commit + 1 on queue 0, outside the timed window. The broker's CPU
// is summed over the timed windows only; the client's over the whole run.
async function timedRun(b, churn, once) {
    const ms = [];
    const ttfb = [];
    let last;
    let cpu = 0;
    const own0 = process.cpuUsage();
    for (let i = 0; i < S; i++) {
        if (churn)
            await churnOnce(b);
        const c0 = cpuMsNow(b);
        last = await once();
        cpu += cpuMsNow(b) - c0;
        ms.push(last.ms);
        ttfb.push(last.ttfb);
    }
    const own = process.cpuUsage(own0);
    return { ms, ttfb, cpuMs: cpu / S, clientMs: (own.user + own.system) / 1000 / S, last };
}

// node's http client (it keeps each body).
async function nodeRun(b, churn) {
    const r = await timedRun(b, churn, async () => {
        const x = await scrape(b);
        if (x.status !== 200) throw new Error(`status ${x.status}`);
        return x;
    });
    return { ...r, body: Buffer.concat(r.last.parts) };
}

// CPU of this process's reaped children (curl) in ms, from clock ticks.
function childrenMs() {
    const f = fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
    return (Number(f[13]) + Number(f[14])) * 10; // cutime, cstime (fields 16, 17), USER_HZ 100
}

const CURL_ARGS = ['-s', '-w', '%{time_starttransfer} %{time_total} %{size_download}\\n'];
const curlRows = (out) => out.trim().split('\n').map((l) => l.split(' ').map(Number));

// One commit as nodeRun's churn makes it (outside the timed window).
async function churnOnce(b) {
    const k = b.churned++;
    const r = await b.br.request(15, { consumerGroup: group(k % G), topic: topic(Math.floor(k / G) % T),
        queueId: '0', commitOffset: String(commit + 1) });
    if (r.code !== 0) throw new Error(`commit: code ${r.code}`);
}

// curl: one process fetching the URL S times over one connection.
function curlRun(b, minBytes) {
    const args = [...CURL_ARGS];
    for (let i = 0; i < S; i++) args.push('-o', '/dev/null', `http://127.0.0.1:${b.httpPort}/metrics`);
    const c0 = cpuMsNow(b);
    const k0 = childrenMs();
    const rows = curlRows(execFileSync('curl', args, { encoding: 'utf8', maxBuffer: 1 << 24 }));
    const cpuMs = (cpuMsNow(b) - c0) / S;
    const clientMs = (childrenMs() - k0) / S;
    if (rows.length !== S || rows.some((r) => r[2] < minBytes)) throw new Error('curl: short answers');
    return { ttfb: rows.map((r) => r[0] * 1000), ms: rows.map((r) => r[1] * 1000), cpuMs, clientMs };
}

// A lean keep-alive client in this process: one TCP connection, each scrape a request written
// and the answer's bytes counted (not kept, no HTTP parsing) until the chunked body's last
// chunk; with churn a commit before each scrape, outside the timed window.
async function rawRun(b, minBytes, churn) {
    const sock = net.connect(b.httpPort, '127.0.0.1');
    await new Promise((resolve, reject) => sock.once('connect', resolve).once('error', reject));
    sock.setNoDelay(true);
    let failed = null;
    sock.on('error', (e) => failed?.(e));
    const r = await timedRun(b, churn, () => new Promise((resolve, reject) => {
        const t0 = process.hrtime.bigint();
        let first = 0;
        let n = 0;
        let tail = Buffer.alloc(0);
        const onData = (d) => {
            if (!first) first = Number(process.hrtime.bigint() - t0) / 1e6;
            n += d.length;
            tail = Buffer.concat([tail, d.subarray(Math.max(0, d.length - 7))]).subarray(-7);
            if (tail.toString('latin1') !== '\r\n0\r\n\r\n') return;
            sock.off('data', onData);
            if (n < minBytes) reject(new Error('raw client: short answer'));
            else resolve({ ms: Number(process.hrtime.bigint() - t0) / 1e6, ttfb: first });
        };
        failed = reject;
        sock.on('data', onData);
        sock.write('GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    }));
    sock.destroy();
    return r;
}

async function runs(b) {
    const still = await nodeRun(b, false);
    const min = still.body.length / 2;
    if (!b.br)
        return { still, curl: curlRun(b, min), raw: await rawRun(b, min, false) };
    const churned = await nodeRun(b, true);
    const curl = curlRun(b, min);
    const raw = await rawRun(b, min, false);
    const rawChurned = await rawRun(b, min, true);
    return { still, churned, curl, raw, rawChurned };
}

const line = (what, r, srv) => `  ${what}: first byte p50 ${pct(r.ttfb, 0.5).toFixed(2)} ms, ` +
    `p99 ${pct(r.ttfb, 0.99).toFixed(2)} ms; last byte p50 ${pct(r.ms, 0.5).toFixed(2)} ms, ` +
    `p90 ${pct(r.ms, 0.9).toFixed(2)} ms, p99 ${pct(r.ms, 0.99).toFixed(2)} ms, max ${pct(r.ms, 1).toFixed(2)} ms; ` +
    `${srv} CPU ${r.cpuMs.toFixed(2)} ms per scrape, client CPU ${r.clientMs.toFixed(2)} ms`;
const load = () => os.loadavg().map((l) => l.toFixed(2)).join(' ');
const KINDS = [['still', 'node, nothing changes'], ['churned', 'node, a commit before each scrape'],
    ['curl', 'curl, nothing changes'], ['raw', 'lean node socket, nothing changes'],
    ['rawChurned', 'lean node socket, a commit before each scrape']];

// One whole answer as it comes off the socket (head and chunked body).
async function rawAnswer(b) {
    const s = net.connect(b.httpPort, '127.0.0.1');
    const parts = [];
    await new Promise((resolve, reject) => {
        s.on('connect', () => s.write('GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'));
        s.on('data', (d) => {
            parts.push(d);
            if (d.length >= 7 ? d.subarray(-7).toString() === '\r\n0\r\n\r\n'
                : Buffer.concat(parts).subarray(-7).toString() === '\r\n0\r\n\r\n') resolve();
        });
        s.on('error', reject);
    });
    s.destroy();
    return Buffer.concat(parts);
}

// The trivial server: a child process answering every request with the prepared bytes.
const FLOOR_SERVER = `
const buf = require('fs').readFileSync(process.argv[1]);
const srv = require('net').createServer((s) => {
    s.setNoDelay(true);
    let acc = '';
    s.on('data', (d) => {
        acc += d.toString('latin1');
        for (let i; (i = acc.indexOf('\\r\\n\\r\\n')) >= 0;) { acc = acc.slice(i + 4); s.write(buf); }
    });
    s.on('error', () => {});
});
srv.listen(0, '127.0.0.1', () => console.log(srv.address().port));`;

async function floorServer(b) {
    const file = `${fs.mkdtempSync(`${os.tmpdir()}/metrics-floor-`)}/answer`;
    fs.writeFileSync(file, await rawAnswer(b));
    const proc = spawn(process.execPath, ['-e', FLOOR_SERVER, file], { stdio: ['ignore', 'pipe', 'inherit'] });
    const port = await new Promise((resolve) => proc.stdout.once('data', (d) => resolve(Number(d))));
    process.on('exit', () => proc.kill()); // also when the bench fails on the way
    return {
        name: 'floor (trivial server)', pid: proc.pid, httpPort: port, proc, file,
        agent: new http.Agent({ keepAlive: true, maxSockets: 1 }),
    };
}

const t0 = Date.now();
const brokers = bins.length ? await Promise.all(bins.map(setup)) : [await setup()];
const setupS = (Date.now() - t0) / 1000;
const first = await nodeRun(brokers[0], false);
let lines = 0;
for (const c of first.body) if (c === 10) lines++;
console.log(`${T} topics x ${G} groups (${Q} queues, ${M} messages each, committed ${commit}; setup ${setupS.toFixed(1)} s): ` +
    `${S} scrapes a run of ${(first.body.length / 1e6).toFixed(2)} MB, ${lines} lines`);
const floor = await floorServer(brokers[0]);
const all = [...brokers, floor];
const print = (b, r) => {
    for (const [k, what] of KINDS) if (r[k]) console.log(line(what, r[k], b.br ? 'broker' : 'server'));
};
// First byte: the answer goes out in pieces while it is rendered, so this is the time to the
// first piece; last byte is the whole scrape as the client sees it.
const per = new Map(all.map((b) => [b, []]));
const rounds = bins.length ? ROUNDS : 1;
for (let round = 0; round < rounds; round++) {
    for (const b of round % 2 ? [...all].reverse() : all) {
        const la = load();
        const r = await runs(b);
        per.get(b).push(r);
        console.log(`${bins.length ? `round ${round} ` : ''}${b.name} (load average ${la}):`);
        print(b, r);
    }
}
if (bins.length) {
    console.log(`medians over ${ROUNDS} rounds (each round's p50 last byte, server and client CPU per scrape):`);
    for (const b of all) {
        const rs = per.get(b);
        const med = (f) => pct(rs.map(f), 0.5).toFixed(2);
        console.log(`  ${b.name}: ` + KINDS.filter(([k]) => rs[0][k]).map(([k, what]) =>
            `${what}: last byte ${med((r) => pct(r[k].ms, 0.5))} ms, CPU ${med((r) => r[k].cpuMs)} / ` +
            `${med((r) => r[k].clientMs)} ms`).join('; '));
    }
}
for (const b of all) b.agent.destroy();
floor.proc.kill();
fs.rmSync(floor.file.replace(/\/answer$/, ''), { recursive: true, force: true });
for (const b of brokers) {
    b.br.close();
    await b.srv.stop();
}
