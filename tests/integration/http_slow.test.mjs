// The broker's HTTP port fed slow, garbage and oversized requests: each gets a precise answer
// or is cut at the request deadline, the broker stays up, and other clients (remoting on the
// broker port, HTTP scrapes on the same port) keep being served throughout. ~10 s.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { freePort, startApogee, waitForPort } from '../lib/proc.mjs';
import { RemotingClient } from '../lib/remoting.mjs';

const TIMEOUT_MS = 1500; // serverFrameTimeoutMillis: a request must be complete this long after its first byte

let srv;
let httpPort;
let remoting;
before(async () => {
    httpPort = await freePort();
    srv = await startApogee('standalone', [
        `--httpListenPort=${httpPort}`,
        `--serverFrameTimeoutMillis=${TIMEOUT_MS}`,
        '--serverFrameMinBytesPerSecond=0',
    ], { extraPorts: { namesrvListenPort: await freePort() } });
    // The HTTP port opens just after the broker port that startApogee waits for.
    await waitForPort(httpPort, 10000, srv.proc).catch((e) => {
        throw new Error(`${e.message}\n--- output ---\n${srv.output()}`);
    });
    remoting = await RemotingClient.connect(srv.port);
});
after(async () => {
    remoting?.close();
    await srv?.stop(); // exits 0, or the test fails
});

// Sends chunks (with pauses) on a fresh connection; resolves with what came back and how long
// until the server closed.
function raw(chunks, { gapMs = 0, waitMs = 10000 } = {}) {
    return new Promise((resolve, reject) => {
        const t0 = Date.now();
        const s = net.connect(httpPort, '127.0.0.1');
        let out = Buffer.alloc(0);
        let closed = false;
        const timer = setTimeout(() => {
            s.destroy();
            resolve({ out: out.toString('latin1'), closedAfterMs: null });
        }, waitMs);
        s.on('data', (d) => (out = Buffer.concat([out, d])));
        s.on('error', () => {}); // a reset after the server closed is fine
        s.on('close', () => {
            closed = true;
            clearTimeout(timer);
            resolve({ out: out.toString('latin1'), closedAfterMs: Date.now() - t0 });
        });
        s.on('connect', async () => {
            try {
                for (const c of chunks) {
                    if (closed) return;
                    s.write(c);
                    if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
                }
            } catch (e) {
                reject(e);
            }
        });
    });
}

function scrape() {
    return new Promise((resolve, reject) => {
        http.get({ host: '127.0.0.1', port: httpPort, path: '/metrics', agent: false }, (res) => {
            let n = 0;
            res.on('data', (d) => (n += d.length));
            res.on('end', () => resolve({ status: res.statusCode, n }));
        }).on('error', reject);
    });
}

async function othersServed() {
    const r = await remoting.request(28, {}); // GET_BROKER_RUNTIME_INFO on the remoting port
    assert.equal(r.code, 0);
    const s = await scrape();
    assert.equal(s.status, 200);
    assert.ok(s.n > 1000);
}

test('garbage, oversized and unsupported requests get their 4xx and the connection closes', async () => {
    const cases = [
        [[Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00])], 400],
        [['NOT HTTP AT ALL\r\n\r\n'], 400],
        [['GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab'], 400],
        [['GET /metrics HTTP/1.1\r\nX: ' + 'a'.repeat(20000) + '\r\n\r\n'], 431],
        [['GET /metrics HTTP/1.1\r\n' + 'X-A: b\r\n'.repeat(100) + '\r\n'], 431],
        [['GET /' + 'a'.repeat(9000) + ' HTTP/1.1\r\n\r\n'], 414],
        [['POST /metrics HTTP/1.1\r\nContent-Length: 1000000000\r\n\r\n'], 413],
        [['POST /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n'], 411],
        [['POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n'], 405],
    ];
    for (const [chunks, status] of cases) {
        const r = await raw(chunks, { waitMs: 5000 });
        assert.match(r.out, new RegExp(`^HTTP/1\\.1 ${status} `), `${JSON.stringify(chunks[0]).slice(0, 60)}: ${r.out.slice(0, 80)}`);
        if (status !== 405) {
            assert.match(r.out, /\r\nConnection: close\r\n/);
            assert.notEqual(r.closedAfterMs, null, 'the server closed the connection');
        }
    }
    // A valid request pipelined after garbage is never read.
    const r = await raw(['BAD\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n'], { waitMs: 5000 });
    assert.equal(r.out.match(/HTTP\/1\.1 /g).length, 1);
    await othersServed();
});

test('slow clients are cut at the request deadline while others are served', async () => {
    // A stalled request, a trickling one, a half-sent body, and a flood of garbage connections.
    const stalled = raw(['GET /metr'], { waitMs: 15000 });
    const trickle = raw('GET /metrics HTTP/1.1\r\nHost: x\r\n'.split(''), { gapMs: 150, waitMs: 15000 });
    const body = raw(['POST /metrics HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc'], { waitMs: 15000 });
    const flood = Array.from({ length: 100 }, (_, i) => raw([Buffer.from(`\x00garbage ${i}\r\n\r\n`)], { waitMs: 10000 }));
    for (let i = 0; i < 5; i++) {
        await othersServed();
        await new Promise((res) => setTimeout(res, 200));
    }
    for (const p of [stalled, trickle, body]) {
        const r = await p;
        assert.notEqual(r.closedAfterMs, null, 'a slow client is closed');
        assert.ok(r.closedAfterMs >= TIMEOUT_MS - 100 && r.closedAfterMs < TIMEOUT_MS + 3000,
            `closed after ${r.closedAfterMs} ms`);
        assert.equal(r.out, '', 'no answer to an incomplete request');
    }
    for (const r of await Promise.all(flood)) assert.match(r.out, /^HTTP\/1\.1 400 /);
    await srv.waitOutput(/closing connection .*frame/);
    assert.equal(srv.proc.exitCode, null, 'the broker is up');
    await othersServed();
});
