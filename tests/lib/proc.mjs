// Process helpers for integration and interop tests (node ESM, no npm deps).
//
//   freePort()                         -> Promise<number> a currently free TCP port on 127.0.0.1
//   waitForPort(port, timeoutMs)       -> Promise<void> resolves once 127.0.0.1:port accepts
//   startApogee(subcommand, args, opts) -> Promise<{proc, port, dir, stop, output, waitOutput, exited}>
//   waitOutput(re, ms = 5000): resolves with the output once it matches re (log lines can reach us
//   after the port accepts), rejects with the output after ms.
//   runSub(sub, args, killMs)          -> Promise<{code, out}> runs `apogee <sub> ...args` to its end
//   runBench(args)                     -> Promise<{code, out, json}> runs `apogee bench ...args`;
//   json is its last output line parsed (the --json summary), null when there is none.
//
// startApogee spawns process.env.APOGEE_BIN (default ./build/apogee) as
//   apogee <subcommand> --storePathRootDir=<dir> --bindAddress=127.0.0.1 --<portArg>=<port> ...args
// where <dir> is a fresh mkdtemp directory (or opts.dir to reuse one, e.g. for restart tests)
// and waits until the port accepts connections. stop() sends SIGTERM (then SIGKILL after
// opts.stopTimeoutMs), waits for exit and removes the temp dir (unless opts.keepDir); after
// SIGTERM it rejects unless the process exited with status 0 (opts.anyExit accepts any exit),
// so a crash or sanitizer abort at shutdown fails the test that stops the server. Every
// process still running when node exits is killed and its dir removed.
//
// opts: { port, portArg = 'listenPort', dir, keepDir, env, startTimeoutMs = 10000,
//         stopTimeoutMs = 5000, extraPorts: { argName: port }, anyExit }
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { waitForRoute } from './remoting.mjs';

const live = new Set();

process.on('exit', () => {
    for (const p of live) {
        try {
            p.proc.kill('SIGKILL');
        } catch {}
        if (!p.keepDir) {
            try {
                fs.rmSync(p.dir, { recursive: true, force: true });
            } catch {}
        }
    }
});

function kernelPort() {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.unref();
        srv.on('error', reject);
        srv.listen(0, '127.0.0.1', () => {
            const { port } = srv.address();
            srv.close(() => resolve(port));
        });
    });
}

// Ports handed out by this process. The kernel may give a closed port out again at
// once, so two freePort() calls made before either server binds (a broker port and a
// NameServer port) could return the same number; a port next to one handed out is
// skipped too (a broker may listen on its port + 1 for HA).
const handedOut = new Set();

export async function freePort() {
    for (let i = 0; i < 50; i++) {
        const port = await kernelPort();
        if (handedOut.has(port) || handedOut.has(port - 1) || handedOut.has(port + 1)) continue;
        handedOut.add(port);
        return port;
    }
    throw new Error('no free port that this process has not handed out already');
}

export function tryConnect(port, host = '127.0.0.1') {
    return new Promise((resolve) => {
        const s = net.connect({ port, host });
        s.once('connect', () => {
            s.destroy();
            resolve(true);
        });
        s.once('error', () => resolve(false));
    });
}

export async function waitForPort(port, timeoutMs = 10000, proc = null) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
        if (proc && proc.exitCode !== null) throw new Error(`process exited with ${proc.exitCode}`);
        if (await tryConnect(port)) return;
        await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`port ${port} did not accept connections within ${timeoutMs} ms`);
}

export function apogeeBin() {
    return process.env.APOGEE_BIN || path.resolve('build/apogee');
}

export async function startApogee(subcommand, args = [], opts = {}) {
    const port = opts.port ?? (await freePort());
    const portArg = opts.portArg ?? 'listenPort';
    const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), `apogee-${subcommand}-`));
    const argv = [
        subcommand,
        // `apogee proxy` has no store (the temp dir is made and removed all the same).
        ...(subcommand === 'proxy' ? [] : [`--storePathRootDir=${dir}`]),
        '--bindAddress=127.0.0.1',
        `--${portArg}=${port}`,
    ];
    for (const [k, v] of Object.entries(opts.extraPorts ?? {})) argv.push(`--${k}=${v}`);
    // The gRPC port (8081) and the HTTP port (8080) have fixed defaults; suites run side by
    // side, so each is off unless the test asks for it.
    const wants = (k) => k in (opts.extraPorts ?? {}) || args.some((a) => String(a).startsWith(`--${k}=`));
    if (subcommand === 'standalone' || subcommand === 'broker') {
        if (!wants('grpcServerPort')) argv.push('--grpcServerPort=0');
        if (!wants('httpListenPort')) argv.push('--httpListenPort=0');
    }
    argv.push(...args);
    const proc = spawn(apogeeBin(), argv, {
        env: { ...process.env, ...(opts.env ?? {}) },
        stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout.on('data', (d) => (out += d));
    proc.stderr.on('data', (d) => (out += d));
    const exited = new Promise((resolve) => proc.once('exit', (code, sig) => resolve({ code, sig })));
    const entry = { proc, dir, keepDir: !!opts.keepDir };
    live.add(entry);

    let stopped = null;
    const stop = (signal = 'SIGTERM') => {
        if (stopped) return stopped;
        stopped = (async () => {
            if (proc.exitCode === null && proc.signalCode === null) {
                proc.kill(signal);
                const t = setTimeout(() => proc.kill('SIGKILL'), opts.stopTimeoutMs ?? 5000);
                const r = await exited;
                clearTimeout(t);
                live.delete(entry);
                if (!entry.keepDir) fs.rmSync(dir, { recursive: true, force: true });
                // A graceful stop that does not end in exit 0 (a sanitizer abort or a crash
                // during shutdown, a hang that needed SIGKILL) fails the caller.
                if (signal === 'SIGTERM' && !opts.anyExit && r.code !== 0) {
                    throw new Error(`apogee ${argv.join(' ')}: exited with code ${r.code} signal ` +
                        `${r.sig} after SIGTERM\n--- output ---\n${out.slice(-4000)}`);
                }
                return r;
            }
            live.delete(entry);
            if (!entry.keepDir) fs.rmSync(dir, { recursive: true, force: true });
            return exited;
        })();
        return stopped;
    };

    try {
        await waitForPort(port, opts.startTimeoutMs ?? 10000, proc);
    } catch (e) {
        await stop('SIGKILL');
        throw new Error(`apogee ${argv.join(' ')}: ${e.message}\n--- output ---\n${out}`);
    }
    const waitOutput = async (re, ms = 5000) => {
        const until = Date.now() + ms;
        while (!re.test(out)) {
            if (Date.now() > until) throw new Error(`output did not match ${re} within ${ms} ms:\n${out.slice(-3000)}`);
            await new Promise((r) => setTimeout(r, 20));
        }
        return out;
    };
    return { proc, port, dir, stop, output: () => out, waitOutput, exited, argv };
}

// Runs `apogee <sub> args...` to its end: { code, out } (stdout and stderr together); with
// killMs > 0 it is killed (SIGKILL) after that long, e.g. a server expected not to start.
export function runSub(sub, args, killMs = 0) {
    return new Promise((resolve) => {
        const p = spawn(apogeeBin(), [sub, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        p.stdout.on('data', (d) => (out += d));
        p.stderr.on('data', (d) => (out += d));
        const t = killMs > 0 ? setTimeout(() => p.kill('SIGKILL'), killMs) : null;
        p.on('close', (code) => {
            if (t) clearTimeout(t);
            resolve({ code, out });
        });
    });
}

export const runAdmin = (args) => runSub('admin', args);

export async function runBench(args) {
    const { code, out } = await runSub('bench', args);
    let json = null;
    try {
        json = JSON.parse(out.trim().split('\n').pop());
    } catch {
        // no summary (e.g. the first send failed)
    }
    return { code, out, json };
}

// `apogee standalone` with its NameServer on a free port, returned once the broker's
// registration gave TBW102 a route: { sa, nsPort, ns: '127.0.0.1:<nsPort>' }.
export async function startStandaloneRouted(args = [], opts = {}) {
    const nsPort = await freePort();
    const extraPorts = { ...(opts.extraPorts ?? {}), namesrvListenPort: nsPort };
    const sa = await startApogee('standalone', args, { ...opts, extraPorts });
    await waitForRoute(nsPort);
    return { sa, nsPort, ns: `127.0.0.1:${nsPort}` };
}
