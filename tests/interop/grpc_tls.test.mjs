// TLS on the gRPC port (grpcServerPort) with the remoting port's tlsServer* keys, using a CA
// and a server certificate for 127.0.0.1 made here with the openssl command:
// - permissive: node:http2 over TLS (ALPN h2, the server certificate checked against the CA)
//   makes a gRPC QueryRoute call and gets OK with the topic's queues; an h2c client is
//   still served on the same port; a TLS client offering only ALPN http/1.1 is refused in
//   the handshake; the npm rocketmq-client-nodejs Producer with sslEnabled sends over TLS;
// - enforcing: the TLS call is served, an h2c client is closed.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { freePort, startApogee, waitForPort } from '../lib/proc.mjs';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-grpc-tls-'));
const f = (n) => path.join(dir, n);
const SVC = '/apache.rocketmq.v2.MessagingService';
const quiet = { info() {}, warn() {}, error() {}, debug() {}, trace() {} };

function openssl(...args) {
    execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

// grpc-js reads GRPC_DEFAULT_SSL_ROOTS_FILE_PATH when it loads: the client is imported after.
process.env.GRPC_DEFAULT_SSL_ROOTS_FILE_PATH = f('ca.pem');
process.on('uncaughtException', (e) => {
    if (e && e.code === 14 && (/telemetry/i.test(String(e.stack)) || /server shutting down/.test(e.message))) return; // see grpc_simple_consumer
    throw e;
});

before(() => {
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem',
        '-days', '2', '-subj', '/CN=apogee-test-grpc-ca');
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr',
        '-subj', '/CN=localhost');
    fs.writeFileSync(f('server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
    openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key',
        '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'server.ext');
});
after(() => {
    fs.rmSync(dir, { recursive: true, force: true });
    // grpc-js keeps channel handles after shutdown; the runner judges the subtests it reported.
    setImmediate(() => process.exit(0));
});

async function start(mode) {
    const grpcPort = await freePort();
    const srv = await startApogee('standalone', [`--grpcServerPort=${grpcPort}`,
        `--tlsServerMode=${mode}`, `--tlsServerCertPath=${f('server.pem')}`,
        `--tlsServerKeyPath=${f('server.key')}`], { extraPorts: { namesrvListenPort: await freePort() } });
    await waitForPort(grpcPort);
    return { srv, grpcPort };
}

// Protobuf: a length-delimited field, and the fields of a message as [number, value] pairs.
function ld(field, bytes) {
    return Buffer.concat([Buffer.from([(field << 3) | 2, bytes.length]), bytes]);
}
function fields(buf) {
    const out = [];
    let p = 0;
    const varint = () => {
        let v = 0;
        for (let shift = 0; ; shift += 7) {
            const b = buf[p++];
            v += (b & 0x7f) * 2 ** shift;
            if (b < 0x80) return v;
        }
    };
    while (p < buf.length) {
        const key = varint();
        if ((key & 7) === 0) out.push([key >>> 3, varint()]);
        else if ((key & 7) === 2) {
            const n = varint();
            out.push([key >>> 3, buf.subarray(p, p + n)]);
            p += n;
        } else throw new Error(`wire type ${key & 7}`);
    }
    return out;
}

// QueryRoute for TBW102 on an HTTP/2 session: { grpcStatus, code, queues }.
function queryRoute(s) {
    const msg = ld(1, ld(2, Buffer.from('TBW102')));
    const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, msg.length]), msg]);
    return new Promise((resolve, reject) => {
        const req = s.request({ ':method': 'POST', ':path': `${SVC}/QueryRoute`,
            'content-type': 'application/grpc', te: 'trailers' });
        const chunks = [];
        let trailers = {};
        req.on('trailers', (t) => (trailers = t));
        req.on('data', (d) => chunks.push(d));
        req.on('error', reject);
        req.on('end', () => {
            const body = Buffer.concat(chunks);
            const resp = fields(body.subarray(5, 5 + body.readUInt32BE(1)));
            const status = fields(resp.find(([n]) => n === 1)[1]);
            resolve({
                grpcStatus: trailers['grpc-status'],
                code: status.find(([n]) => n === 1)?.[1],
                queues: resp.filter(([n]) => n === 2).length,
            });
        });
        req.end(frame);
    });
}

// QueryRoute on a new session (TLS, the CA trusted, or h2c), then closed: the result plus
// the session's ALPN protocol and whether it was encrypted.
async function routeOn(port, secure) {
    const s = secure
        ? http2.connect(`https://127.0.0.1:${port}`, { ca: fs.readFileSync(f('ca.pem')) })
        : http2.connect(`http://127.0.0.1:${port}`);
    try {
        await new Promise((resolve, reject) => {
            s.once('connect', resolve);
            s.once('error', reject);
        });
        return { ...(await queryRoute(s)), alpn: s.alpnProtocol, encrypted: s.encrypted };
    } finally {
        s.close();
    }
}

describe('permissive', () => {
    let t;
    before(async () => (t = await start('permissive')));
    after(async () => t?.srv.stop());

    test('node:http2 over TLS (ALPN h2) gets QueryRoute answered', async () => {
        const r = await routeOn(t.grpcPort, true);
        assert.equal(r.alpn, 'h2');
        assert.equal(r.encrypted, true);
        assert.equal(r.grpcStatus, '0');
        assert.equal(r.code, 20000, 'Code.OK');
        assert.ok(r.queues > 0);
        await t.srv.waitOutput(/TLS permissive on the listening port \(certificate .*, ALPN h2\)/);
    });

    test('h2c is still served on the same port', async () => {
        assert.equal((await routeOn(t.grpcPort, false)).code, 20000);
    });

    test('a TLS client offering only ALPN http/1.1 is refused in the handshake', async () => {
        const err = await new Promise((resolve) => {
            const c = tls.connect({ port: t.grpcPort, host: '127.0.0.1', ca: fs.readFileSync(f('ca.pem')),
                ALPNProtocols: ['http/1.1'] });
            c.once('secureConnect', () => {
                c.destroy();
                resolve(null);
            });
            c.once('error', resolve);
        });
        assert.ok(err, 'the handshake completed');
        assert.match(String(err.message), /no application protocol|alert number 120/i);
    });

    test('rocketmq-client-nodejs Producer with sslEnabled sends over TLS', async () => {
        const { Producer } = await import('rocketmq-client-nodejs');
        const p = new Producer({ endpoints: `127.0.0.1:${t.grpcPort}`, sslEnabled: true, logger: quiet });
        await p.startup();
        try {
            const r = await p.send({ topic: 'TBW102', tag: 'T', body: Buffer.from('over TLS') });
            assert.ok(r.messageId, 'a receipt with a message id');
        } finally {
            await p.shutdown().catch(() => {});
        }
    });
});

describe('enforcing', () => {
    let t;
    before(async () => (t = await start('enforcing')));
    after(async () => t?.srv.stop());

    test('TLS is served, h2c is closed', async () => {
        assert.equal((await routeOn(t.grpcPort, true)).code, 20000);
        const plain = http2.connect(`http://127.0.0.1:${t.grpcPort}`);
        plain.on('error', () => {});
        const req = plain.request({ ':method': 'POST', ':path': `${SVC}/QueryRoute`,
            'content-type': 'application/grpc' });
        req.on('error', () => {});
        req.end();
        const t0 = Date.now();
        await new Promise((resolve) => plain.on('close', resolve));
        assert.ok(Date.now() - t0 < 3000, 'closed at once');
        await t.srv.waitOutput(/plaintext connection refused/);
    });
});
