// Process-level tests of the configuration surface and the safe defaults: what `apogee`
// prints for keys it does not read (the same on the command line and in a file, and the
// exit status agrees with the words), which key a port-in-use error names, where
// `apogee standalone` listens by default and the warning a server beyond loopback without
// ACL logs.
//
//   APOGEE_BIN=$PWD/build/apogee node --test tests/integration/cli_config.test.mjs
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { apogeeBin, freePort, tryConnect, waitForPort } from '../lib/proc.mjs';

// Runs apogee to completion (or kills it after ms): {code, out} with stdout+stderr.
function run(args, ms = 10000) {
    return new Promise((resolve) => {
        const p = spawn(apogeeBin(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        p.stdout.on('data', (d) => (out += d));
        p.stderr.on('data', (d) => (out += d));
        const t = setTimeout(() => p.kill('SIGKILL'), ms);
        p.on('exit', (code) => {
            clearTimeout(t);
            resolve({ code, out });
        });
    });
}

function tmpDir() {
    return fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-cli-'));
}

// Starts a long-running apogee; returns {proc, output(), stop()}.
function startRaw(args) {
    const proc = spawn(apogeeBin(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout.on('data', (d) => (out += d));
    proc.stderr.on('data', (d) => (out += d));
    const exited = new Promise((res) => proc.once('exit', (code) => res(code)));
    return {
        proc,
        output: () => out,
        async stop() {
            if (proc.exitCode === null) proc.kill('SIGTERM');
            return exited;
        },
    };
}

// Resolves once a started process's output matches re (log lines can reach us after its
// port accepts); fails with the output after ms.
async function waitOut(p, re, ms = 5000) {
    const deadline = Date.now() + ms;
    while (!re.test(p.output())) {
        if (Date.now() > deadline) assert.fail(`no ${re} in:\n${p.output()}`);
        await new Promise((res) => setTimeout(res, 20));
    }
    return p.output();
}

// Local addresses of listening TCP sockets on port, from /proc/net/tcp (IPv4, hex), each
// once (a broker has one listening socket per loop, SO_REUSEPORT).
function listenAddrs(port) {
    const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
    const addrs = [];
    for (const line of fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
        const f = line.trim().split(/\s+/);
        if (f.length < 4 || f[3] !== '0A') continue; // 0A = LISTEN
        const [ip, p] = f[1].split(':');
        if (p !== hexPort) continue;
        const b = Buffer.from(ip, 'hex');
        addrs.push(`${b[3]}.${b[2]}.${b[1]}.${b[0]}`);
    }
    return [...new Set(addrs)];
}

function nonLoopbackIPv4() {
    for (const list of Object.values(os.networkInterfaces())) {
        for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
    }
    return null;
}

test('a key of another role and a RocketMQ key Apogee lacks: same words on the command line and in a file, ignored, exit 0', async () => {
    const dir = tmpDir();
    try {
        const conf = path.join(dir, 'namesrv.conf');
        fs.writeFileSync(conf, 'enablePropertyFilter=true\ndLegerGroup=g1\n');
        const cli = await run(['namesrv', '--enablePropertyFilter=true', '--dLegerGroup=g1', '-p']);
        const file = await run(['namesrv', '-c', conf, '-p']);
        for (const r of [cli, file]) {
            assert.equal(r.code, 0, r.out);
            assert.match(r.out, /config key 'enablePropertyFilter' is a broker setting; `apogee namesrv` does not use it \(ignored\)/);
            assert.match(r.out, /config key 'dLegerGroup' is a RocketMQ setting Apogee does not implement \(ignored\)/);
            assert.match(r.out, /^listenPort=9876/m); // -p ran: the process went on
        }
        // The broker does read enablePropertyFilter: no warning there.
        const br = await run(['broker', '--enablePropertyFilter=true', '-p']);
        assert.equal(br.code, 0, br.out);
        assert.match(br.out, /^enablePropertyFilter=true {2}# command line$/m);
        assert.doesNotMatch(br.out, /WARN/);
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
});

test('a typo on the command line is an error that does not claim to be ignored; in a file a warning', async () => {
    const r = await run(['standalone', '--listenPrt=10911', '-p']);
    assert.equal(r.code, 1);
    assert.match(r.out, /unknown config key 'listenPrt': neither an Apogee nor a RocketMQ setting; see `apogee standalone --help-config`/);
    assert.doesNotMatch(r.out, /ignored/);
    const dir = tmpDir();
    try {
        fs.writeFileSync(path.join(dir, 'b.conf'), 'listenPrt=10911\n');
        const f = await run(['standalone', '-c', path.join(dir, 'b.conf'), '-p']);
        assert.equal(f.code, 0, f.out);
        assert.match(f.out, /WARN .*unknown config key 'listenPrt': neither an Apogee nor a RocketMQ setting \(ignored\)/);
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
});

test('replication Apogee lacks (DLedger, controller) is refused, a slave needs brokerId > 0, in a file as on the command line', async () => {
    const r = await run(['broker', '--enableDLegerCommitLog=true', '-p']);
    assert.equal(r.code, 1);
    assert.match(r.out, /config enableDLegerCommitLog=true: Apogee has no DLedger commit log/);
    const ok = await run(['broker', '--enableDLegerCommitLog=false', '-p']);
    assert.equal(ok.code, 0, ok.out);
    const dir = tmpDir();
    try {
        fs.writeFileSync(path.join(dir, 'b.conf'), 'enableControllerMode = true\n');
        const f = await run(['broker', '-c', path.join(dir, 'b.conf'), '-p']);
        assert.equal(f.code, 1);
        assert.match(f.out, /enableControllerMode=true: Apogee has no controller-based failover/);
        // A 4.x slave's broker.conf is taken as it is.
        fs.writeFileSync(path.join(dir, 's.conf'), 'brokerName = broker-a\nbrokerId = 1\nbrokerRole = SLAVE\n');
        const sl = await run(['broker', '-c', path.join(dir, 's.conf'), '-p']);
        assert.equal(sl.code, 0, sl.out);
        assert.match(sl.out, /brokerRole=SLAVE/);
        assert.match(sl.out, /haListenPort=0/);
        // A slave with the master's id: refused with what to change. SYNC_MASTER runs.
        fs.writeFileSync(path.join(dir, 's0.conf'), 'brokerName = broker-a\nbrokerRole = SLAVE\n');
        const s0 = await run(['broker', '-c', path.join(dir, 's0.conf'), '-p']);
        assert.equal(s0.code, 1);
        assert.match(s0.out, /brokerRole=SLAVE needs brokerId > 0 .*set brokerId=1/);
        fs.writeFileSync(path.join(dir, 'sm.conf'), 'brokerRole = SYNC_MASTER\n');
        const sm = await run(['broker', '-c', path.join(dir, 'sm.conf'), '-p']);
        assert.equal(sm.code, 0, sm.out);
        assert.match(sm.out, /brokerRole=SYNC_MASTER/);
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
});

test('a port in use names the key that sets it', async () => {
    const busy = net.createServer();
    await new Promise((res) => busy.listen(0, '127.0.0.1', res));
    const port = busy.address().port;
    const dir = tmpDir();
    try {
        const free = await freePort();
        const nsBusy = await run(['standalone', `--storePathRootDir=${dir}`, '--bindAddress=127.0.0.1',
            `--namesrvListenPort=${port}`, `--listenPort=${free}`]);
        assert.equal(nsBusy.code, 1);
        assert.match(nsBusy.out, new RegExp(`NameServer failed to start: cannot listen on 127\\.0\\.0\\.1:${port}: .*pick another with --namesrvListenPort\\)`));
        const brBusy = await run(['standalone', `--storePathRootDir=${dir}`, '--bindAddress=127.0.0.1',
            `--namesrvListenPort=${free}`, `--listenPort=${port}`]);
        assert.equal(brBusy.code, 1);
        assert.match(brBusy.out, new RegExp(`broker failed to start: cannot listen on 127\\.0\\.0\\.1:${port}: .*pick another with --listenPort\\)`));
        const httpBusy = await run(['standalone', `--storePathRootDir=${dir}`, '--bindAddress=127.0.0.1',
            `--namesrvListenPort=${free}`, `--listenPort=${await freePort()}`, `--httpListenPort=${port}`]);
        assert.equal(httpBusy.code, 1);
        assert.match(httpBusy.out, new RegExp(`HTTP port failed to start: cannot listen on 127\\.0\\.0\\.1:${port}: .*pick another with --httpListenPort\\)`));
        const nsOnly = await run(['namesrv', `--storePathRootDir=${dir}`, '--bindAddress=127.0.0.1', `--listenPort=${port}`]);
        assert.equal(nsOnly.code, 1);
        assert.match(nsOnly.out, /pick another with --listenPort\)/);
    } finally {
        busy.close();
        fs.rmSync(dir, { recursive: true, force: true });
    }
});

test('apogee standalone listens on 127.0.0.1 unless told otherwise, and says so', async () => {
    const dir = tmpDir();
    const nsPort = await freePort();
    const brPort = await freePort();
    const httpPort = await freePort();
    const s = startRaw(['standalone', `--storePathRootDir=${dir}`, `--namesrvListenPort=${nsPort}`, `--listenPort=${brPort}`,
        `--httpListenPort=${httpPort}`]);
    try {
        await waitForPort(nsPort, 10000, s.proc);
        await waitForPort(brPort, 10000, s.proc);
        await waitForPort(httpPort, 10000, s.proc);
        assert.deepEqual(listenAddrs(httpPort), ['127.0.0.1']);
        await waitOut(s, /INFO {2}\[main\] listening on 127\.0\.0\.1 only: clients on other hosts cannot connect; --bindAddress=0\.0\.0\.0 listens on every interface/);
        assert.doesNotMatch(s.output(), /without access control/);
        assert.deepEqual(listenAddrs(nsPort), ['127.0.0.1']);
        assert.deepEqual(listenAddrs(brPort), ['127.0.0.1']);
        const ip = nonLoopbackIPv4();
        if (ip) {
            assert.equal(await tryConnect(nsPort, ip), false, `NameServer reachable on ${ip}`);
            assert.equal(await tryConnect(brPort, ip), false, `broker reachable on ${ip}`);
        }
        // The broker advertises the address it listens on.
        await waitOut(s, new RegExp(`advertised as 127\\.0\\.0\\.1:${brPort}`));
    } finally {
        assert.equal(await s.stop(), 0);
        fs.rmSync(dir, { recursive: true, force: true });
    }
});

test('beyond loopback without ACL: one WARN line; the broker advertises a reachable address', async () => {
    const dir = tmpDir();
    const nsPort = await freePort();
    const brPort = await freePort();
    const s = startRaw(['standalone', `--storePathRootDir=${dir}`, '--bindAddress=0.0.0.0',
        `--namesrvListenPort=${nsPort}`, `--listenPort=${brPort}`, '--httpListenPort=0']);
    const soloPort = await freePort();
    const ns = startRaw(['namesrv', `--storePathRootDir=${dir}/ns`, `--listenPort=${soloPort}`]);
    try {
        await waitForPort(soloPort, 10000, ns.proc);
        await waitForPort(nsPort, 10000, s.proc);
        await waitForPort(brPort, 10000, s.proc);
        assert.deepEqual(listenAddrs(nsPort), ['0.0.0.0']);
        await waitOut(s, /advertised as/);
        const warns = s.output().match(/WARN .*without access control.*/g) ?? [];
        assert.equal(warns.length, 1, s.output());
        assert.match(warns[0], /apogee standalone listens on every interface without access control \(aclEnable=false\)/);
        const ip = nonLoopbackIPv4();
        if (ip) {
            await waitOut(s, new RegExp(`advertised as ${ip.replace(/\./g, '\\.')}:${brPort}`));
            assert.equal(await tryConnect(brPort, ip), true);
        }
        await waitOut(ns, /WARN .*apogee namesrv listens on every interface without access control/);
    } finally {
        assert.equal(await s.stop(), 0);
        assert.equal(await ns.stop(), 0);
        fs.rmSync(dir, { recursive: true, force: true });
    }
});
