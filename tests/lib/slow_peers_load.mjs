// Measurement (not a test): a normal producer's throughput and the broker's memory with and
// without N slow peers alongside.
//
//   APOGEE_BIN=build/apogee node tests/lib/slow_peers_load.mjs [--conns=1000] [--seconds=10]
//       [--rounds=3] [--threads=4] [apogee standalone flags...]
//
// Starts `apogee standalone` (default settings plus the flags given) and alternates, round
// after round, `apogee bench produce --threads=T --duration=S` alone and the same run while N
// connections each announce a 16 MiB frame, send 1 KiB of it and trickle a byte a second;
// a trickler the broker closes (frame deadline, minimum rate) is replaced at once, so N stay
// open. VmRSS and RssAnon of the broker are sampled every 200 ms. Prints one line per run and
// a summary: median msgs/s of each kind, their ratio, the broker's CPU time per message sent
// (less sensitive than msgs/s to other load on the machine), the highest VmRSS and RssAnon
// with the slow peers, and the tricklers replaced.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';

import { apogeeBin, freePort, startApogee } from './proc.mjs';
import { waitForRoute } from './remoting.mjs';

const opt = { conns: 1000, seconds: 10, rounds: 3, threads: 4 };
const extra = [];
for (const a of process.argv.slice(2)) {
    const m = /^--(conns|seconds|rounds|threads)=(\d+)$/.exec(a);
    if (m) opt[m[1]] = Number(m[2]);
    else extra.push(a);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// VmRSS and its anonymous part (RssAnon: heap, buffers) in MB. The rest (RssFile) is
// mapped store files the broker has touched: page cache the kernel can reclaim.
function rss(pid) {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)[1]) / 1024;
    return { total: kb('VmRSS'), anon: kb('RssAnon') };
}

// CPU seconds the process used so far (utime + stime; clock ticks of 10 ms).
function cpuSeconds(pid) {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
}

function bench(ns) {
    return new Promise((resolve, reject) => {
        const p = spawn(apogeeBin(), ['bench', 'produce', '-n', ns, '--topic=SlowLoad',
            `--threads=${opt.threads}`, `--duration=${opt.seconds}`, '--json'],
        { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        p.stdout.on('data', (d) => (out += d));
        p.once('exit', (code) => {
            const line = out.trim().split('\n').pop();
            if (code !== 0) reject(new Error(`bench exited ${code}: ${line}`));
            else resolve(JSON.parse(line));
        });
    });
}

// Keeps `n` trickling connections open to port until stop() is called.
function tricklers(port, n) {
    const head = Buffer.alloc(8 + 1024, 0x61);
    head.writeUInt32BE(16 * 1024 * 1024, 0);
    head.writeUInt32BE(64, 4);
    const live = new Set();
    let stopped = false;
    let replaced = 0;
    const one = () => {
        if (stopped) return;
        const s = net.connect({ port, host: '127.0.0.1' });
        s.on('error', () => {});
        s.once('connect', () => s.write(head));
        s.once('close', () => {
            live.delete(s);
            if (!stopped) {
                replaced++;
                setTimeout(one, 10);
            }
        });
        live.add(s);
    };
    for (let i = 0; i < n; i++) one();
    const drip = setInterval(() => {
        for (const s of live) if (s.writable) s.write('a');
    }, 1000);
    return {
        open: () => live.size,
        replaced: () => replaced,
        stop() {
            stopped = true;
            clearInterval(drip);
            for (const s of live) s.destroy();
        },
    };
}

const nsPort = await freePort();
const srv = await startApogee('standalone', extra, { extraPorts: { namesrvListenPort: nsPort } });
const ns = `127.0.0.1:${nsPort}`;
const pid = srv.proc.pid;
try {
    await waitForRoute(nsPort);
    await bench(ns); // warm-up: creates the topic, fills the first pages
    const alone = [];
    const loaded = [];
    const aloneCpu = [];
    const loadedCpu = [];
    const peak = { total: 0, anon: 0 };
    let replaced = 0;
    for (let r = 0; r < opt.rounds; r++) {
        for (const withPeers of r % 2 ? [true, false] : [false, true]) {
            let t = null;
            if (withPeers) {
                t = tricklers(srv.port, opt.conns);
                while (t.open() < opt.conns) await sleep(50);
                await sleep(500);
            }
            const runPeak = { total: 0, anon: 0 };
            const sample = () => {
                const m = rss(pid);
                runPeak.total = Math.max(runPeak.total, m.total);
                runPeak.anon = Math.max(runPeak.anon, m.anon);
            };
            const sampler = setInterval(sample, 200);
            const cpu0 = cpuSeconds(pid);
            const res = await bench(ns);
            const cpu = cpuSeconds(pid) - cpu0;
            const usPerMsg = (cpu * 1e6) / res.sent;
            clearInterval(sampler);
            sample();
            if (t) {
                replaced += t.replaced();
                t.stop();
                peak.total = Math.max(peak.total, runPeak.total);
                peak.anon = Math.max(peak.anon, runPeak.anon);
                loaded.push(res.tps);
                loadedCpu.push(usPerMsg);
            } else {
                alone.push(res.tps);
                aloneCpu.push(usPerMsg);
            }
            console.log(`round ${r + 1} ${withPeers ? `with ${opt.conns} slow peers` : 'alone'}: ` +
                `${res.tps} msgs/s, p99 ${res.p99_us} us, failed ${res.failed}, ` +
                `broker CPU ${cpu.toFixed(2)} s (${usPerMsg.toFixed(1)} us per message), ` +
                `VmRSS peak ${runPeak.total.toFixed(1)} MB (RssAnon ${runPeak.anon.toFixed(1)} MB)` +
                (t ? `, ${t.replaced()} tricklers closed by the broker and replaced` : ''));
            await sleep(1000);
        }
    }
    const a = median(alone);
    const l = median(loaded);
    console.log(`summary: alone ${a} msgs/s, with ${opt.conns} slow peers ${l} msgs/s ` +
        `(${((l / a - 1) * 100).toFixed(1)} %); broker CPU per message ${median(aloneCpu).toFixed(1)} ` +
        `us alone, ${median(loadedCpu).toFixed(1)} us with the slow peers; broker peak with the slow peers VmRSS ` +
        `${peak.total.toFixed(1)} MB, RssAnon ${peak.anon.toFixed(1)} MB; ${replaced} tricklers replaced`);
} finally {
    await srv.stop();
}
