// C client end to end: `apogee bench` (built on libapogee) against a real
// `apogee standalone` on 127.0.0.1 (random ports, temp dir, always cleaned up).
// The producer runs in every mode; the consumer then reads from offset 0 and
// must see at least what was produced, with no errors.
//
// `apogee bench` exists once src/main.c dispatches to apg_cli_bench_main; until
// then these tests are skipped with that reason.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';

import { apogeeBin, freePort, startApogee } from '../lib/proc.mjs';
import { RemotingClient } from '../lib/remoting.mjs';

// The broker registers with the NameServer shortly after its port opens: wait
// until the auto-create template route (TBW102) is served.
async function waitForRoute(nsPort, topic = 'TBW102', timeoutMs = 10000) {
    const c = await RemotingClient.connect(nsPort);
    try {
        const deadline = Date.now() + timeoutMs;
        while (Date.now() < deadline) {
            const r = await c.request(105, { topic });
            if (r.code === 0) return;
            await new Promise((res) => setTimeout(res, 50));
        }
        throw new Error(`no route for ${topic} within ${timeoutMs} ms`);
    } finally {
        c.close();
    }
}

const probe = spawnSync(apogeeBin(), ['bench', '--help'], { encoding: 'utf8' });
const benchWired = probe.status === 0 && /bench producer\|consumer/.test(probe.stdout);
const skip = benchWired ? false : '`apogee bench` is not wired into src/main.c yet';

function bench(args) {
    const r = spawnSync(apogeeBin(), ['bench', ...args], { encoding: 'utf8', timeout: 30000 });
    return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

function produced(out) {
    const m = /(produced|consumed): (\d+) msgs in [\d.]+ s = (\d+) msgs\/s, [\d.]+ MB\/s, errors (\d+)/.exec(out);
    assert.ok(m, `no summary line in:\n${out}`);
    return { n: Number(m[2]), rate: Number(m[3]), errors: Number(m[4]) };
}

describe('C client via apogee bench', { skip }, () => {
    let sa;
    let ns;
    before(async () => {
        const nsPort = await freePort();
        sa = await startApogee('standalone', [], { extraPorts: { namesrvListenPort: nsPort } });
        ns = `127.0.0.1:${nsPort}`;
        await waitForRoute(nsPort);
    });
    after(async () => {
        await sa?.stop();
    });

    let total = 0;
    for (const [name, args] of [
        ['sync', ['-m', 'sync', '-c', '2']],
        ['async', ['-m', 'async', '-c', '1']],
        ['oneway', ['-m', 'oneway', '-c', '1']],
        ['batch', ['-b', '16', '-c', '1']],
        ['compressed 8 KiB bodies', ['-m', 'sync', '-c', '1', '-s', '8192']],
    ]) {
        test(`producer ${name}`, () => {
            const r = bench(['producer', '-n', ns, '-t', 'ClientBench', '-d', '1', ...args]);
            assert.equal(r.code, 0, r.out);
            const s = produced(r.out);
            assert.equal(s.errors, 0, r.out);
            assert.ok(s.n > 100, r.out);
            if (name !== 'oneway') assert.match(r.out, /latency us: p50 \d+ p90 \d+ p99 \d+/);
            total += s.n;
        });
    }

    test('consumer reads everything back', () => {
        const r = bench(['consumer', '-n', ns, '-t', 'ClientBench', '-d', '3', '--from-start']);
        assert.equal(r.code, 0, r.out);
        const s = produced(r.out);
        assert.equal(s.errors, 0, r.out);
        // Oneway sends are unacknowledged but were flushed before the producer exited;
        // +1 per producer run for the warm-up message.
        assert.ok(s.n >= total, `consumed ${s.n} < produced ${total}\n${r.out}`);
    });

    test('unknown NameServer gives a clear error and exit 1', () => {
        const r = bench(['producer', '-n', '127.0.0.1:1', '-t', 'X', '-d', '1']);
        assert.equal(r.code, 1);
        assert.match(r.out, /first send failed: no NameServer answered for topic 'X'/);
    });
});
