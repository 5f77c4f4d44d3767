// The gRPC port (grpcServerPort) of apogee standalone, driven by node's own http2 client:
// unary calls get gRPC answers in trailers (UNIMPLEMENTED for MessagingService methods not
// served, also before the client ends a streaming call; DEADLINE_EXCEEDED for a grpc-timeout already spent, INTERNAL for a bad message
// prefix), a non-gRPC request gets HTTP 415, many concurrent streams on one connection are
// all answered, a remoting request on the port is answered SYSTEM_ERROR with a remark
// naming listenPort and the connection closed at once (one log line), and an HTTP/2
// frame left incomplete is cut at serverFrameTimeoutMillis like a remoting frame.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { apogeeBin, freePort, startApogee, waitForPort } from '../lib/proc.mjs';
import { decodeFrame, encodeFrame } from '../lib/remoting.mjs';

const FRAME_TIMEOUT_MS = 1500;
const SVC = '/apache.rocketmq.v2.MessagingService';
let srv;
let grpcPort;

before(async () => {
    grpcPort = await freePort();
    srv = await startApogee('standalone', [
        `--grpcServerPort=${grpcPort}`,
        `--serverFrameTimeoutMillis=${FRAME_TIMEOUT_MS}`,
    ], { extraPorts: { namesrvListenPort: await freePort() } });
    await waitForPort(grpcPort); // opened after the broker registered
});
after(async () => {
    await srv?.stop();
});

function grpcMessage(payload, flag = 0) {
    const b = Buffer.alloc(5 + payload.length);
    b[0] = flag;
    b.writeUInt32BE(payload.length, 1);
    payload.copy(b, 5);
    return b;
}

// One call on session s: resolves { status, headers, trailers, grpcStatus, grpcMessage, body }.
function call(s, path, body, extraHeaders = {}) {
    return new Promise((resolve, reject) => {
        const req = s.request({
            ':method': 'POST',
            ':path': path,
            'content-type': 'application/grpc',
            te: 'trailers',
            ...extraHeaders,
        });
        let headers;
        let trailers = {};
        const chunks = [];
        req.on('response', (h) => (headers = h));
        req.on('trailers', (t) => (trailers = t));
        req.on('data', (d) => chunks.push(d));
        req.on('error', reject);
        req.on('end', () => resolve({
            status: headers[':status'],
            headers,
            trailers,
            grpcStatus: trailers['grpc-status'] ?? headers['grpc-status'],
            grpcMessage: trailers['grpc-message'] ?? headers['grpc-message'],
            body: Buffer.concat(chunks),
        }));
        req.end(body);
    });
}

function connect() {
    return new Promise((resolve, reject) => {
        const s = http2.connect(`http://127.0.0.1:${grpcPort}`);
        s.once('connect', () => resolve(s));
        s.once('error', reject);
    });
}

test('MessagingService methods not built answer UNIMPLEMENTED in a trailers-only response', async () => {
    const s = await connect();
    try {
        for (const m of ['PullMessage', 'RecallMessage', 'SyncLiteSubscription']) {
            const r = await call(s, `${SVC}/${m}`, grpcMessage(Buffer.alloc(0)));
            assert.equal(r.status, 200);
            assert.equal(r.headers['content-type'], 'application/grpc');
            assert.equal(r.grpcStatus, '12', m);
            assert.match(decodeURIComponent(r.grpcMessage), new RegExp(`${m} is not implemented`));
            assert.equal(r.body.length, 0);
        }
        const r = await call(s, '/no.such.Service/Method', grpcMessage(Buffer.from([1, 2, 3])));
        assert.equal(r.grpcStatus, '12');
    } finally {
        s.close();
    }
});

test('a streaming call to a method not served is refused before the client ends its side', async () => {
    const s = await connect();
    try {
        const req = s.request({ ':method': 'POST', ':path': '/no.such.Service/Stream',
            'content-type': 'application/grpc', te: 'trailers' });
        req.write(grpcMessage(Buffer.alloc(0))); // and never end()
        const h = await new Promise((resolve, reject) => {
            req.on('response', resolve);
            req.on('error', reject);
        });
        assert.equal(h['grpc-status'], '12');
        req.close();
    } finally {
        s.close();
    }
});

test('grpc-timeout: a deadline already spent is DEADLINE_EXCEEDED; a long one is kept', async () => {
    const s = await connect();
    try {
        const r = await call(s, `${SVC}/Heartbeat`, grpcMessage(Buffer.alloc(0)),
            { 'grpc-timeout': '0m' });
        assert.equal(r.grpcStatus, '4');
        const r2 = await call(s, `${SVC}/Heartbeat`, grpcMessage(Buffer.alloc(0)),
            { 'grpc-timeout': '30S' });
        assert.equal(r2.grpcStatus, '0');
        assert.ok(r2.body.length >= 5, 'a HeartbeatResponse message');
    } finally {
        s.close();
    }
});

test('a bad message prefix is INTERNAL, a compressed one UNIMPLEMENTED, non-gRPC is HTTP 415', async () => {
    const s = await connect();
    try {
        const bad = grpcMessage(Buffer.from('abc'));
        bad.writeUInt32BE(10, 1); // announces more than is sent
        assert.equal((await call(s, `${SVC}/Heartbeat`, bad)).grpcStatus, '13');
        assert.equal((await call(s, `${SVC}/Heartbeat`, grpcMessage(Buffer.from('x'), 1))).grpcStatus,
            '12');
        const r = await call(s, `${SVC}/Heartbeat`, Buffer.from('{}'),
            { 'content-type': 'application/json' });
        assert.equal(r.status, 415);
    } finally {
        s.close();
    }
});

test('200 concurrent calls on one connection are all answered', async () => {
    const s = await connect();
    try {
        const rs = await Promise.all(Array.from({ length: 200 },
            (_, i) => call(s, `${SVC}/${i % 2 ? 'Heartbeat' : 'PullMessage'}`,
                grpcMessage(Buffer.alloc(0)))));
        assert.equal(rs.length, 200);
        rs.forEach((r, i) => assert.equal(r.grpcStatus, i % 2 ? '0' : '12'));
    } finally {
        s.close();
    }
});

function closedWithin(sock, ms) {
    return new Promise((resolve) => {
        const t0 = Date.now();
        const timer = setTimeout(() => resolve(null), ms);
        sock.on('error', () => {});
        sock.resume(); // read (and drop) what the server sends, so its close is seen
        sock.on('close', () => {
            clearTimeout(timer);
            resolve(Date.now() - t0);
        });
    });
}

for (const serialize of ['JSON', 'ROCKETMQ']) {
    test(`a remoting request (${serialize} header) on the gRPC port is answered SYSTEM_ERROR naming listenPort, then closed`, async () => {
        const sock = net.connect(grpcPort, '127.0.0.1');
        await new Promise((r) => sock.once('connect', r));
        const chunks = [];
        sock.on('data', (d) => chunks.push(d));
        sock.write(encodeFrame({ code: 105, opaque: 4242, flag: 0, extFields: { topic: 'T' } }, null, serialize));
        const took = await closedWithin(sock, 3000);
        assert.ok(took !== null && took < 1000, `closed after ${took} ms`);
        const resp = decodeFrame(Buffer.concat(chunks));
        assert.equal(resp.code, 1, 'SYSTEM_ERROR');
        assert.equal(resp.opaque, 4242);
        assert.equal(resp.flag & 1, 1, 'a response');
        assert.equal(resp.serialize, serialize);
        assert.match(resp.remark, /grpcServerPort.*listenPort/);
    });
}

test('the refusals are logged once, rate-limited', async () => {
    await srv.waitOutput(/not an HTTP\/2 client \(a 4\.x remoting client on grpcServerPort\?\); answered SYSTEM_ERROR naming listenPort/);
    const lines = srv.output().split('\n').filter((l) => /not an HTTP\/2 client \(a 4\.x/.test(l));
    assert.equal(lines.length, 1, lines.join('\n'));
});

test('a remoting client sending a frame in pieces is closed at once', async () => {
    const sock = net.connect(grpcPort, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    const f = encodeFrame({ code: 105, opaque: 1, flag: 0, extFields: { topic: 'T' } });
    sock.write(f.subarray(0, 12));
    const took = await closedWithin(sock, 3000);
    assert.ok(took !== null && took < 1000, `closed after ${took} ms`);
});

test('an HTTP/2 frame left incomplete is cut at the frame deadline', async () => {
    const sock = net.connect(grpcPort, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    sock.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    sock.write(Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])); // empty SETTINGS
    sock.write(Buffer.from([0, 0x10, 0, 0, 0, 0, 0, 0, 1, 1, 2])); // 4 KiB DATA, 2 bytes sent
    const took = await closedWithin(sock, FRAME_TIMEOUT_MS + 5000);
    assert.ok(took !== null && took >= FRAME_TIMEOUT_MS - 200, `closed after ${took} ms`);
});

test('a gRPC port already taken stops the start with an error naming grpcServerPort', async () => {
    const holder = net.createServer();
    await new Promise((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const taken = holder.address().port;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-grpc-taken-'));
    try {
        const r = spawnSync(apogeeBin(), ['standalone', `--storePathRootDir=${dir}`,
            '--bindAddress=127.0.0.1', `--listenPort=${await freePort()}`,
            `--namesrvListenPort=${await freePort()}`, `--grpcServerPort=${taken}`],
        { encoding: 'utf8', timeout: 20000 });
        assert.notEqual(r.status, 0);
        assert.match(r.stderr + r.stdout, /Address already in use.*--grpcServerPort/);
    } finally {
        holder.close();
        fs.rmSync(dir, { recursive: true, force: true });
    }
});

test('an HTTP/2 client on the remoting port is closed at once, the log naming grpcServerPort', async () => {
    const t0 = Date.now();
    const s = http2.connect(`http://127.0.0.1:${srv.port}`);
    s.on('error', () => {});
    const closed = new Promise((resolve) => s.on('close', resolve));
    const req = s.request({ ':method': 'POST', ':path': `${SVC}/QueryRoute`,
        'content-type': 'application/grpc' });
    req.on('error', () => {});
    req.end();
    await closed;
    assert.ok(Date.now() - t0 < 3000, 'no hang');
    await srv.waitOutput(/HTTP\/2 client .* on the remoting port; 5\.x clients connect to grpcServerPort/);
});
