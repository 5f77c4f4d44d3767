// TLS on the remoting ports (tls.server.mode and friends), with certificates made here by
// the openssl command (a CA, a server certificate for localhost/127.0.0.1, a client
// certificate, and a second CA with its own client certificate that nobody trusts):
// - enforcing: Node's tls module (an independent TLS client) and the C client (apogee
//   bench) send and pull over TLS, the broker registers with its NameServer over TLS; a
//   plaintext Node client and a plaintext C client are refused with a log line;
// - a garbage ClientHello is closed at once and a stalled one at the frame deadline, while
//   a TLS client on the same port keeps being answered; a TLS client stalling mid-frame is
//   closed at the frame deadline like a plaintext one;
// - permissive: plaintext and TLS clients on one port, Node and C;
// - mutual TLS (tls.server.trustCertPath set): a client with a certificate from the CA is
//   served, one without a certificate or with one from another CA is refused; the broker
//   presents its own certificate to the NameServer (tls.client.certPath);
// - standalone with enforcing (and with client certificates required) registers its broker
//   with no tls.enable and no client keys.
// ~25 s.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { freePort, runBench, startApogee } from '../lib/proc.mjs';
import { RemotingClient } from '../lib/remoting.mjs';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-tls-'));
const f = (n) => path.join(dir, n);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function openssl(...args) {
    execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

function makeCa(name) {
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out',
        `${name}.pem`, '-days', '2', '-subj', `/CN=apogee-test-${name}`);
}

function makeCert(name, ca, cn, ext) {
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`,
        '-subj', `/CN=${cn}`);
    fs.writeFileSync(f(`${name}.ext`), ext);
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`,
        '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`);
}

before(() => {
    makeCa('ca');
    makeCert('server', 'ca', 'localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
    makeCert('client', 'ca', 'apogee-test-client', 'extendedKeyUsage=clientAuth\n');
    makeCa('rogue');
    makeCert('rogueclient', 'rogue', 'apogee-test-rogue', 'extendedKeyUsage=clientAuth\n');
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const serverArgs = (mode) => [
    `--tls.server.mode=${mode}`,
    `--tls.server.certPath=${f('server.pem')}`,
    `--tls.server.keyPath=${f('server.key')}`,
];

// A RemotingClient over Node's TLS (trusting the test CA, checking the server's address).
function tlsConnect(port, opts = {}) {
    return new Promise((resolve, reject) => {
        const s = tls.connect({ port, host: '127.0.0.1', ca: fs.readFileSync(f('ca.pem')), ...opts });
        s.once('secureConnect', () => {
            s.removeListener('error', reject);
            s.setNoDelay(true);
            resolve(new RemotingClient(s));
        });
        s.once('error', reject);
    });
}

// Asks the NameServer for TBW102 over TLS until the broker's registration shows.
async function waitRouteTls(nsPort, opts = {}) {
    const until = Date.now() + 10000;
    for (;;) {
        const c = await tlsConnect(nsPort, opts);
        const r = await c.request(105, { topic: 'TBW102' });
        c.close();
        if (r.code === 0) return;
        if (Date.now() > until) throw new Error(`no route for TBW102: ${r.code} ${r.remark}`);
        await sleep(100);
    }
}

// A standalone broker with both ports under `args`' TLS settings.
async function startTls(args) {
    const nsPort = await freePort();
    const sa = await startApogee('standalone', args, { extraPorts: { namesrvListenPort: nsPort } });
    return { sa, nsPort, ns: `127.0.0.1:${nsPort}` };
}

// SEND_MESSAGE_V2 header (RocketMQ's short field names) and a PULL_MESSAGE header.
function sendHdr(topic) {
    return {
        a: 'PG_TLS', b: topic, c: 'TBW102', d: '4', e: '0', f: '0', g: String(Date.now()), h: '0',
        i: '', k: 'false',
    };
}
function pullHdr(topic, offset) {
    return {
        consumerGroup: 'CG_TLS', topic, queueId: '0', queueOffset: String(offset), maxMsgNums: '32',
        sysFlag: '0', commitOffset: '0', suspendTimeoutMillis: '0', subscription: '*',
        subVersion: '0', expressionType: 'TAG',
    };
}

async function sendAndPull(c, topic, text) {
    const s = await c.request(310, sendHdr(topic), Buffer.from(text));
    assert.equal(s.code, 0, s.remark);
    const p = await c.request(11, pullHdr(topic, Number(s.ext.queueOffset)));
    assert.equal(p.code, 0, p.remark);
    assert.ok(p.body.includes(Buffer.from(text)), 'the pulled record carries the body sent');
}

const tlsConf = (extra = []) => ['--tls.enable=true', `--tls.client.trustCertPath=${f('ca.pem')}`, ...extra];

async function benchRoundTrip(ns, topic, conf) {
    const p = await runBench(['produce', `--namesrvAddr=${ns}`, `--topic=${topic}`, '--messages=300',
        '--threads=2', '--size=1024', '--json', ...conf]);
    assert.equal(p.code, 0, p.out);
    assert.equal(p.json.sent, 300, p.out);
    assert.equal(p.json.failed, 0, p.out);
    const c = await runBench(['consume', `--namesrvAddr=${ns}`, `--topic=${topic}`, '--json', ...conf]);
    assert.equal(c.code, 0, c.out);
    assert.equal(c.json.received, 301, c.out); // bench sends one more message before it starts timing
}

async function refusedPlainBench(ns) {
    const r = await runBench(['produce', `--namesrvAddr=${ns}`, '--topic=PlainTopic', '--messages=1',
        '--sendMsgTimeout=1500', '--json']);
    assert.notEqual(r.code, 0, r.out);
    assert.ok(!r.json || r.json.sent === 0 || r.json.failed > 0, r.out);
}

// Resolves once s is closed by the other side (rejects after ms).
function closedWithin(s, ms) {
    return new Promise((resolve, reject) => {
        if (s.destroyed) return resolve();
        const t = setTimeout(() => reject(new Error(`not closed within ${ms} ms`)), ms);
        s.on('error', () => {});
        s.resume(); // EOF is seen only by a flowing socket
        s.once('close', () => {
            clearTimeout(t);
            resolve();
        });
    });
}

function rawConnect(port) {
    return new Promise((resolve, reject) => {
        const s = net.connect({ port, host: '127.0.0.1' });
        s.once('connect', () => resolve(s));
        s.once('error', reject);
    });
}

describe('enforcing', () => {
    let t;
    before(async () => {
        t = await startTls([...serverArgs('enforcing'), ...tlsConf(), '--serverFrameTimeoutMillis=2000']);
        await waitRouteTls(t.nsPort); // the broker registered over TLS
    });
    after(async () => t?.sa.stop());

    test('a Node TLS client sends and pulls; the NameServer answers over TLS', async () => {
        const c = await tlsConnect(t.sa.port);
        await sendAndPull(c, 'TlsTopic', 'hello over tls');
        c.close();
    });

    test('the C client sends and pulls over TLS (apogee bench)', async () => {
        await benchRoundTrip(t.ns, 'TlsBench', tlsConf());
    });

    test('plaintext clients are refused with a log line', async () => {
        const c = await RemotingClient.connect(t.sa.port);
        await assert.rejects(c.request(30, { topic: 'TBW102', queueId: '0' }, null, { timeoutMs: 3000 }));
        await t.sa.waitOutput(/plaintext connection refused: this port takes TLS only/);
        await refusedPlainBench(t.ns);
        // Both ports count their refusals in runtime info (the NameServer's is Apogee's own).
        for (const port of [t.sa.port, t.nsPort]) {
            const s = await tlsConnect(port);
            const r = await s.request(28, {});
            s.close();
            assert.equal(r.code, 0, r.remark);
            assert.ok(Number(JSON.parse(r.body.toString()).table.closedTlsRefused) >= 1, `port ${port}`);
        }
    });

    test('a garbage ClientHello is closed at once, a stalled one at the frame deadline; others are served', async () => {
        const good = await tlsConnect(t.sa.port);
        const junk = await rawConnect(t.sa.port);
        junk.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x68, 0x65, 0x6c, 0x6c, 0x6f]));
        await closedWithin(junk, 2000);
        await t.sa.waitOutput(/TLS handshake failed/);
        // A record header announcing a 512-byte ClientHello, then nothing more.
        const stalled = await rawConnect(t.sa.port);
        const t0 = Date.now();
        stalled.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]));
        const closed = closedWithin(stalled, 6000);
        for (let i = 0; i < 5; i++) {
            const r = await good.request(30, { topic: 'TBW102', queueId: '0' });
            assert.equal(typeof r.code, 'number');
            await sleep(200);
        }
        await closed;
        assert.ok(Date.now() - t0 >= 1500, `closed after ${Date.now() - t0} ms, before the 2000 ms deadline`);
        await t.sa.waitOutput(/TLS handshake not completed within 2000 ms/);
        await sendAndPull(good, 'TlsTopic', 'still served');
        good.close();
    });

    test('the frame deadline holds inside TLS: a TLS client that stalls mid-frame is closed', async () => {
        const c = await tlsConnect(t.sa.port);
        const head = Buffer.alloc(8 + 100, 0x61);
        head.writeUInt32BE(16 * 1024 * 1024, 0); // announces 16 MiB, sends 108 bytes of it
        head.writeUInt32BE(64, 4);
        const t0 = Date.now();
        c.writeRaw(head);
        await closedWithin(c.sock, 6000);
        assert.ok(Date.now() - t0 >= 1500, `closed after ${Date.now() - t0} ms`);
        await t.sa.waitOutput(/frame not completed within 2000 ms; 108 bytes of the frame received/);
    });
});

describe('permissive', () => {
    let t;
    before(async () => {
        t = await startTls(serverArgs('permissive'));
        await waitRouteTls(t.nsPort); // the broker registered in plaintext on the same port
    });
    after(async () => t?.sa.stop());

    test('plaintext and TLS Node clients on one port', async () => {
        const plain = await RemotingClient.connect(t.sa.port);
        const secure = await tlsConnect(t.sa.port);
        await sendAndPull(plain, 'MixTopic', 'plain text');
        await sendAndPull(secure, 'MixTopic', 'cipher text');
        plain.close();
        secure.close();
    });

    test('plaintext and TLS C clients on one port', async () => {
        await benchRoundTrip(t.ns, 'MixPlain', []);
        await benchRoundTrip(t.ns, 'MixTls', ['--tls', `--tls.client.trustCertPath=${f('ca.pem')}`]);
    });
});

describe('mutual TLS', () => {
    let t;
    const cert = () => ({ cert: fs.readFileSync(f('client.pem')), key: fs.readFileSync(f('client.key')) });
    before(async () => {
        t = await startTls([...serverArgs('enforcing'), `--tls.server.trustCertPath=${f('ca.pem')}`,
            ...tlsConf([`--tls.client.certPath=${f('client.pem')}`, `--tls.client.keyPath=${f('client.key')}`])]);
        await waitRouteTls(t.nsPort, cert());
    });
    after(async () => t?.sa.stop());

    test('a client certificate from the CA is served', async () => {
        const c = await tlsConnect(t.sa.port, cert());
        await sendAndPull(c, 'MtlsTopic', 'mutual');
        c.close();
        await benchRoundTrip(t.ns, 'MtlsBench',
            tlsConf([`--tls.client.certPath=${f('client.pem')}`, `--tls.client.keyPath=${f('client.key')}`]));
    });

    test('no client certificate, or one from another CA, is refused', async () => {
        for (const opts of [{}, { cert: fs.readFileSync(f('rogueclient.pem')), key: fs.readFileSync(f('rogueclient.key')) }]) {
            let refused = false;
            try {
                const c = await tlsConnect(t.sa.port, opts);
                await c.request(30, { topic: 'TBW102', queueId: '0' }, null, { timeoutMs: 3000 });
            } catch {
                refused = true;
            }
            assert.ok(refused, 'the request was answered');
        }
        await t.sa.waitOutput(/certificate/);
        const r = await runBench(['produce', `--namesrvAddr=${t.ns}`, '--topic=MtlsBench', '--messages=1',
            '--sendMsgTimeout=1500', '--json', ...tlsConf()]);
        assert.notEqual(r.code, 0, r.out);
    });
});

describe('standalone: the in-process hop needs no tls.enable or client keys', () => {
    test('enforcing, and enforcing with client certificates required, register and serve', async () => {
        const mtls = () => ({ cert: fs.readFileSync(f('client.pem')), key: fs.readFileSync(f('client.key')) });
        for (const [args, opts] of [[serverArgs('enforcing'), {}],
            [[...serverArgs('enforcing'), `--tls.server.trustCertPath=${f('ca.pem')}`], mtls()]]) {
            const t = await startTls(args);
            try {
                await waitRouteTls(t.nsPort, opts); // the broker registered over TLS
                assert.doesNotMatch(t.sa.output(), /REGISTER_BROKER with NameServer .* failed/);
                const c = await tlsConnect(t.sa.port, opts);
                await sendAndPull(c, 'TlsInner', 'registered without tls.enable');
                c.close();
            } finally {
                assert.equal((await t.sa.stop()).code, 0);
            }
        }
    });
});
