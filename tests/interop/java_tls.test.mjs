// The Apache RocketMQ 4.9.8 Java client over TLS against `apogee standalone
// --tls.server.mode=enforcing` (both ports TLS only), with a CA and a server certificate
// for 127.0.0.1 that the openssl command makes here. The client verifies the server
// (tls.test.mode.enable=false, tls.client.authServer=true, tls.client.trustCertPath): a
// producer and a push consumer send and receive (tests/interop/java/RefTls.java); the same
// client trusting another CA, and a plaintext client, cannot send. Skips (listed in
// tests/skips.txt) unless APOGEE_ROCKETMQ_REF names a build of scripts/rocketmq-ref.sh.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { javaSkip, runJava, startStandalone } from './java.mjs';

describe('the Apache RocketMQ 4.9.8 Java client over TLS against apogee standalone', { skip: javaSkip }, () => {
    let env;
    let dir;
    const f = (n) => path.join(dir, n);
    const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
    // -D options of a client that checks the server's certificate against ca.
    const verifying = (ca) => ['-Dtls.enable=true', '-Dtls.test.mode.enable=false',
        '-Dtls.client.authServer=true', `-Dtls.client.trustCertPath=${f(ca)}`,
        `-Dtls.config.file=${f('absent.properties')}`];

    before(async () => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-java-tls-'));
        for (const ca of ['ca', 'other-ca']) {
            openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.pem`,
                '-days', '2', '-subj', `/CN=apogee-java-${ca}`);
        }
        openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr',
            '-subj', '/CN=localhost');
        fs.writeFileSync(f('server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
        openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
            '-out', 'server.pem', '-days', '2', '-extfile', 'server.ext');
        env = await startStandalone(['--tlsServerMode=enforcing', `--tlsServerCertPath=${f('server.pem')}`,
            `--tlsServerKeyPath=${f('server.key')}`]); // the broker's hop to its NameServer goes over TLS by itself
        await env.srv.waitOutput(/new broker registered/, 10000);
    });
    after(async () => {
        await env?.srv.stop();
        if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    test('a producer and a push consumer verifying the server certificate send and receive', async () => {
        const r = await runJava('RefTls', [env.ns, 'JavaTlsTopic', 'CG_JAVA_TLS', '20'], 120000, verifying('ca.pem'));
        assert.equal(r.code, 0, `RefTls exited ${r.code}\n${r.out}\n${r.err}`);
        assert.equal(r.result.sent, '20', r.out);
        assert.equal(r.result.received, '20', r.out);
    });

    test('a client trusting another CA, and a plaintext client, cannot send', async () => {
        // Both fail at the NameServer, before any route: the handshake is refused by the
        // client (the certificate is not from the CA it trusts), the plaintext request by
        // the server.
        for (const [jvm, logged] of [[verifying('other-ca.pem'), /TLS handshake failed: .*certificate unknown/],
            [[], /plaintext connection refused: this port takes TLS only/]]) {
            const r = await runJava('RefTls', [env.ns, 'JavaTlsTopic', 'CG_JAVA_TLS', '1'], 120000, jvm);
            assert.equal(r.code, 0, `RefTls exited ${r.code}\n${r.out}\n${r.err}`);
            assert.match(r.result.sent, new RegExp(`^failed: .*${env.ns.replace(/\./g, '\\.')}`), r.out);
            await env.srv.waitOutput(logged, 10000);
        }
    });
});
