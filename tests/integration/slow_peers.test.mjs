// Slow and partial frames against a standalone broker: memory stays bounded and normal
// clients keep being served.
// - N connections (1,000; APOGEE_SLOW_PEERS=N for another count) each announce a 16 MiB frame,
//   send 1 KiB of it and then trickle one byte a second. The broker's VmRSS stays under
//   RSS_BOUND_MB (the bar: 64 MB at 1,000 connections) while a normal client's requests
//   are answered; once serverFrameTimeoutMillis passes, all of them are closed with a
//   rate-limited WARN line (the minimum-rate rule is off on this broker).
// - Connections that each send 4 MiB of an announced 16 MiB frame until the buffered total
//   passes serverMaxPendingFrameBytes (32 MiB here): the oldest are closed first and RSS
//   stays near the cap. Once with one event loop, once with four: the oldest of the whole
//   server go first, whichever loop holds them.
// - serverFrameMinBytesPerSecond: a frame trickling in is cut after one 4 s window, long
//   before the frame deadline; a frame sent at 4x the minimum rate completes and is answered.
// ~30 s.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { freePort, startApogee } from '../lib/proc.mjs';
import { decodeFrame, encodeFrame, RemotingClient } from '../lib/remoting.mjs';

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
        '--serverFrameMinBytesPerSecond=0',
        `--serverMaxPendingFrameBytes=${CAP}`,
        '--serverSelectorThreads=1',
    ], { extraPorts: { namesrvListenPort: nsPort } });
    client = await RemotingClient.connect(srv.port);
});
after(async () => {
    client?.close();
    await srv?.stop();
});

function rssOf(pid) {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+) kB/.exec(s)[1]) / 1024;
}
const rssMB = () => rssOf(srv.proc.pid);

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
        // Measured after two trickled bytes have been read: a read after the first one is
        // where a buffer would grow (a doubling copies, and so touches, the whole old one).
        while (off < 2) await sleep(50);
        await sleep(300);
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

// 16 connections, one after the other, each send 4 MiB of an announced 16 MiB frame to
// `port` (a server with a 32 MiB cap): at least 8 must be closed, exactly the oldest ones.
async function oldestFirst(port, rss, what) {
    const base = rss();
    const part = 4 * 1024 * 1024;
    const socks = [];
    for (let i = 0; i < 16; i++) {
        const s = await open(port);
        watchClose(s);
        s.index = i;
        await new Promise((r) => s.write(announce(part), r));
        socks.push(s);
        await sleep(30);
    }
    await sleep(500);
    const after_ = rss();
    const closed = socks.filter((s) => s.closedAt).sort((a, b) => a.closedAt - b.closedAt);
    console.log(`# ${what}: 16 x 4 MiB partial frames, cap 32 MiB: ${closed.length} closed ` +
        `(${closed.map((s) => s.index).join(',')}), VmRSS ${after_.toFixed(1)} MB (before ${base.toFixed(1)} MB)`);
    try {
        assert.ok(closed.length >= 8, `only ${closed.length} closed; 64 MiB buffered against a 32 MiB cap`);
        assert.deepEqual(closed.map((s) => s.index).sort((a, b) => a - b), [...Array(closed.length).keys()],
            'the connections closed are the oldest ones');
        assert.ok(after_ <= base + 48, `VmRSS ${after_.toFixed(1)} MB with a 32 MiB cap (before ${base.toFixed(1)} MB)`);
    } finally {
        for (const s of socks) s.destroy();
    }
}

test('past serverMaxPendingFrameBytes the oldest incomplete frames are closed first', async () => {
    // Past the WARN rate limit of the closes above: no line for 1.5 s (a late close of the
    // test above may still print a "closed N more" line at the next tick).
    for (let len = -1; len !== srv.output().length;) {
        len = srv.output().length;
        await sleep(1500);
    }
    await oldestFirst(srv.port, rssMB, 'one loop');
    await normalRequest();
    await srv.waitOutput(/oldest incomplete frame while \d+ bytes of them are buffered/);
});

test('with four event loops the oldest incomplete frames of the whole server go first', async () => {
    const nsPort = await freePort();
    const four = await startApogee('standalone', [
        '--serverFrameMinBytesPerSecond=0',
        `--serverMaxPendingFrameBytes=${CAP}`,
        '--serverSelectorThreads=4',
    ], { extraPorts: { namesrvListenPort: nsPort } });
    try {
        await oldestFirst(four.port, () => rssOf(four.proc.pid), 'four loops');
    } finally {
        await four.stop();
    }
});

// One request frame (GET_MAX_OFFSET with a body the broker ignores) written in `chunk`-byte
// pieces every `everyMs` on a socket of its own; resolves with the response's code, or with
// 'closed' if the broker closes the connection first.
function slowRequest(port, bodyBytes, chunk, everyMs) {
    return new Promise((resolve, reject) => {
        const frame = encodeFrame({ code: 30, opaque: 7, ext: { topic: 'TBW102', queueId: '0' } },
            Buffer.alloc(bodyBytes, 0x62));
        const s = net.connect({ port, host: '127.0.0.1' });
        let got = Buffer.alloc(0);
        let timer = null;
        s.on('error', () => {});
        s.on('data', (d) => {
            got = Buffer.concat([got, d]);
            if (got.length >= 4 && got.length >= 4 + got.readInt32BE(0)) {
                clearInterval(timer);
                s.destroy();
                resolve(decodeFrame(got).code);
            }
        });
        s.once('close', () => { clearInterval(timer); resolve('closed'); });
        s.once('connect', () => {
            let off = 0;
            timer = setInterval(() => {
                s.write(frame.subarray(off, off + chunk));
                off += chunk;
                if (off >= frame.length) clearInterval(timer);
            }, everyMs);
        });
        s.once('error', reject);
    });
}

test('serverFrameMinBytesPerSecond cuts a trickling frame long before its deadline, not a slow honest one', async () => {
    const nsPort = await freePort();
    const rate = await startApogee('standalone', [
        '--serverFrameTimeoutMillis=60000',
        '--serverFrameMinBytesPerSecond=8192',
        '--serverSelectorThreads=2',
    ], { extraPorts: { namesrvListenPort: nsPort } });
    const trickler = await open(rate.port);
    watchClose(trickler);
    const t0 = Date.now();
    trickler.write(announce(1024));
    const drip = setInterval(() => { if (!trickler.closedAt) trickler.write(Buffer.from('a')); }, 1000);
    try {
        // 256 KiB at 32 KiB/s (8 KiB every 250 ms): 8 s, two rate windows, 4x the minimum.
        const honest = slowRequest(rate.port, 256 * 1024, 8 * 1024, 250);
        // A normal client's big frame at full speed meanwhile.
        const fast = await slowRequest(rate.port, 4 * 1024 * 1024, 4 * 1024 * 1024 + 4096, 1);
        assert.equal(fast, 0, 'a 4 MiB request at full speed is answered');
        while (!trickler.closedAt && Date.now() - t0 < 20000) await sleep(100);
        assert.ok(trickler.closedAt, 'the trickler is still open after 20 s');
        const took = trickler.closedAt - t0;
        console.log(`# trickler at 1 byte/s closed after ${took} ms (minimum rate 8192 bytes/s, deadline 60 s)`);
        assert.ok(took >= 3500 && took <= 12000, `closed after ${took} ms`);
        assert.equal(await honest, 0, 'a frame arriving at 32 KiB/s is answered, not cut');
        const line = (await rate.waitOutput(/frame arriving at \d+ bytes\/s/)).split('\n')
            .find((l) => /frame arriving at/.test(l));
        assert.match(line, /WARN.*frame arriving at \d+ bytes\/s over \d+ ms, under 8192; 10\d\d bytes of the frame received, 16777220 announced/);
    } finally {
        clearInterval(drip);
        trickler.destroy();
        await rate.stop();
    }
});
