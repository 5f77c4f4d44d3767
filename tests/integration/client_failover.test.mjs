// C client: the broker dies under load. Sync senders write on their own
// threads (direct sends) and async ones queue for the I/O thread; when the
// connection breaks every pending send must still finish (error or retry),
// so `apogee bench` ends on time with failures counted, never hangs or
// crashes. 127.0.0.1 only, random ports, temp dirs cleaned up by proc.mjs.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';

import { apogeeBin, freePort, startApogee } from '../lib/proc.mjs';
import { waitForRoute } from '../lib/remoting.mjs';

const probe = spawnSync(apogeeBin(), ['bench', '--help'], { encoding: 'utf8' });
const skip = probe.status === 0 && /--rate=N/.test(probe.stdout) ? false : '`apogee bench` without --rate';

function runBench(args) {
    const p = spawn(apogeeBin(), ['bench', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    const done = new Promise((res) => p.on('exit', (code, signal) => res({ code, signal, out: () => out })));
    return { p, done, out: () => out };
}

async function waitFor(fn, ms) {
    const end = Date.now() + ms;
    while (Date.now() < end) {
        if (fn()) return true;
        await new Promise((r) => setTimeout(r, 20));
    }
    return false;
}

describe('C client when the broker goes away', { skip }, () => {
    for (const [name, args] of [
        ['16 sync threads', ['--mode=sync', '--threads=16']],
        ['async', ['--mode=async', '--threads=2', '--inflight=2000']],
        ['oneway', ['--mode=oneway', '--threads=2']],
    ]) {
        test(`${name}: every send finishes and bench exits`, async () => {
            const nsPort = await freePort();
            const sa = await startApogee('standalone', [], { extraPorts: { namesrvListenPort: nsPort } });
            let b;
            try {
                await waitForRoute(nsPort);
                b = runBench(['produce', `--namesrvAddr=127.0.0.1:${nsPort}`, '--topic=Failover', '--duration=4', ...args]);
                // Under load: at least one per-second report line with sends.
                assert.ok(await waitFor(() => /\[  1s\] sent +[1-9]/.test(b.out()), 8000), b.out());
                await sa.stop('SIGKILL');
                const started = Date.now();
                const r = await Promise.race([
                    b.done,
                    new Promise((res) => setTimeout(() => res(null), 20000)),
                ]);
                assert.ok(r, `bench still running 20 s after the broker died:\n${b.out()}`);
                assert.equal(r.signal, null, r.out());
                assert.ok(r.code === 0 || r.code === 1, r.out());
                assert.ok(Date.now() - started < 20000);
                assert.match(r.out(), /produced: \d+ msgs/);
                if (name !== 'oneway') assert.match(r.out(), /errors [1-9]\d*/, r.out());
            } finally {
                if (b && b.p.exitCode === null) b.p.kill('SIGKILL');
                await sa.stop('SIGKILL');
            }
        });
    }
});
