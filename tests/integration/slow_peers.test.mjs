// Slow and partial frames against a standalone broker: memory stays bounded and normal
// clients keep being served.
// - N connections (1,000; APOGEE_SLOW_PEERS=N for another count) each announce a 16 MiB frame,
//   send 1 KiB of it and then trickle one byte a second. The broker's VmRSS stays under
//   RSS_BOUND_MB (the bar: 64 MB at 1,000 connections) while a normal client's requests
//   are answered; once serverFrameTimeoutMillis passes, all of them are closed with a
//   rate-limited WARN line.
// - Connections that each send 4 MiB of an announced 16 MiB frame until the buffered total
//   passes serverMaxPendingFrameBytes (32 MiB here): the oldest are closed first and RSS
//   stays near the cap.
// One event loop (serverSelectorThreads=1), so "oldest first" is one exact order. ~13 s.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { freePort, startApogee } from '../lib/proc.mjs';
import { RemotingClient } from '../lib/remoting.mjs';

const N = Number(process.env.APOGEE_SLOW_PEERS ?? 1000);
const RSS_BOUND_MB = 64;
const FRAME_TIMEOUT_MS = 8000;
const CAP = 32 * 1024 * 1024;

let srv;
let client;
before(async () => {
    const nsPort = await freePort();
    srv = await startApogee('standalone', [
        `--serverFrameTimeoutMillis=${FRAME_TIMEOUT_MS}`,
        `--serverMaxPendingFrameBytes=${CAP}`,
        '--serverSelectorThreads=1',
    ], { extraPorts: { namesrvListenPort: nsPort } });
    client = await RemotingClient.connect(srv.port);
});
after(async () => {
    client?.close();
    await srv?.stop();
});

function rssMB() {
    const s = fs.readFileSync(`/proc/${srv.proc.pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+) kB/.exec(s)[1]) / 1024;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A frame header announcing a 16 MiB frame, followed by `extra` bytes of it.
function announce(extra) {
    const b = Buffer.alloc(8 + extra, 0x61);
    b.writeUInt32BE(16 * 1024 * 1024, 0);
    b.writeUInt32BE(64, 4); // JSON header of 64 bytes (never completed)
    return b;
}

function open(port) {
    return new Promise((resolve, reject) => {
        const s = net.connect({ port, host: '127.0.0.1' });
        s.once('connect', () => resolve(s));
        s.once('error', reject);
    });
}

function watchClose(s) {
    s.closedAt = null;
    s.on('error', () => {});
    s.once('close', () => (s.closedAt = Date.now()));
}

// A request any broker answers (GET_MAX_OFFSET); resolves with the round trip in ms.
async function normalRequest() {
    const t0 = Date.now();
    const r = await client.request(30, { topic: 'TBW102', queueId: '0' }, null, { timeoutMs: 3000 });
    assert.ok(r && typeof r.code === 'number');
    return Date.now() - t0;
}

test(`${N} trickling connections: RSS bounded, normal requests served, closed at the frame deadline`, async () => {
    await normalRequest();
    const base = rssMB();
    const socks = [];
    for (let i = 0; i < N; i++) {
        const s = await open(srv.port);
        watchClose(s);
        s.write(announce(1024));
        s.sentAt = Date.now(); // its frame deadline runs from here
        socks.push(s);
    }
    const opened = Date.now();
    let off = 0;
    const trickle = setInterval(() => {
        off++;
        for (const s of socks) if (!s.closedAt) s.write(Buffer.from('a'));
    }, 1000);
    try {
        let worstRtt = 0;
        for (let i = 0; i < 10; i++) {
            worstRtt = Math.max(worstRtt, await normalRequest());
            await sleep(100);
        }
        const rss = rssMB();
        const open_ = socks.filter((s) => !s.closedAt).length;
        console.log(`# ${N} trickling connections: VmRSS ${rss.toFixed(1)} MB (before ${base.toFixed(1)} MB), ` +
            `${open_} open, worst normal round trip ${worstRtt} ms, opened in ${opened - socks[0].sentAt} ms`);
        // On a loaded machine opening them all can take seconds, so the first
        // ones may reach their deadline by now; none may go before it.
        const early = socks.filter((s) => s.closedAt && s.closedAt - s.sentAt < FRAME_TIMEOUT_MS - 1000);
        assert.equal(early.length, 0, `${early.length} tricklers closed before their frame deadline`);
        assert.ok(rss <= RSS_BOUND_MB, `VmRSS ${rss.toFixed(1)} MB > ${RSS_BOUND_MB} MB`);
        // The frame deadline closes every one of them, trickling or not.
        const until = opened + FRAME_TIMEOUT_MS + 5000;
        while (socks.some((s) => !s.closedAt) && Date.now() < until) await sleep(100);
        const left = socks.filter((s) => !s.closedAt).length;
        assert.equal(left, 0, `${left} trickling connections still open after the frame deadline`);
        const first = Math.min(...socks.map((s) => s.closedAt - s.sentAt));
        assert.ok(first >= FRAME_TIMEOUT_MS - 1000, `closed after ${first} ms, before the deadline`);
        const out = await srv.waitOutput(/frame not completed within/);
        const lines = out.split('\n').filter((l) => /frame not completed within/.test(l));
        assert.ok(lines.length < N / 4, `${lines.length} WARN lines for ${N} closes: not rate-limited`);
        assert.match(lines[0], /WARN/);
        assert.match(lines[0], /received, 16777220 announced/);
        assert.match(await srv.waitOutput(/closed \d+ more connections for slow or incomplete frames/, 3000),
            /closed \d+ more connections/);
        await normalRequest();
    } finally {
        clearInterval(trickle);
        for (const s of socks) s.destroy();
    }
});

test('past serverMaxPendingFrameBytes the oldest incomplete frames are closed first', async () => {
    await sleep(1100); // past the WARN rate limit of the closes above
    const base = rssMB();
    const part = 4 * 1024 * 1024;
    const socks = [];
    for (let i = 0; i < 16; i++) {
        const s = await open(srv.port);
        watchClose(s);
        s.index = i;
        await new Promise((r) => s.write(announce(part), r));
        socks.push(s);
        await sleep(30);
    }
    await sleep(500);
    await normalRequest();
    const rss = rssMB();
    const closed = socks.filter((s) => s.closedAt);
    const open_ = socks.filter((s) => !s.closedAt);
    console.log(`# 16 x 4 MiB partial frames, cap 32 MiB: ${closed.length} closed ` +
        `(${closed.map((s) => s.index).join(',')}), VmRSS ${rss.toFixed(1)} MB (before ${base.toFixed(1)} MB)`);
    assert.ok(closed.length >= 8, `only ${closed.length} closed; 64 MiB buffered against a 32 MiB cap`);
    // One loop (serverSelectorThreads=1): exactly the oldest ones went, in order.
    assert.deepEqual(closed.map((s) => s.index), [...Array(closed.length).keys()]);
    assert.ok(rss <= base + 48, `VmRSS ${rss.toFixed(1)} MB with a 32 MiB cap (before ${base.toFixed(1)} MB)`);
    await srv.waitOutput(/oldest incomplete frame while \d+ bytes of them are buffered/);
    for (const s of open_) s.destroy();
});
