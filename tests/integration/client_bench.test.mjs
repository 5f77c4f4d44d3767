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

import { apogeeBin, startStandaloneRouted } from '../lib/proc.mjs';

const probe = spawnSync(apogeeBin(), ['bench', '--help'], { encoding: 'utf8' });
const benchWired = probe.status === 0 && /bench produce\|consume\|e2e/.test(probe.stdout);
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
        ({ sa, ns } = await startStandaloneRouted());
    });
    after(async () => {
        await sa?.stop();
    });

    let total = 0;
    for (const [name, args] of [
        ['sync', ['--mode=sync', '--threads=2']],
        ['async', ['--mode=async', '--threads=1', '--inflight=500']],
        ['oneway', ['--mode=oneway', '--threads=1']],
        ['batch', ['--batch=16', '--threads=1']],
        ['compressed 8 KiB bodies', ['--mode=sync', '--threads=1', '--size=8192']],
        ['old spelling (producer -m -c)', ['-m', 'sync', '-c', '1']],
    ]) {
        test(`produce ${name}`, () => {
            const cmd = name.startsWith('old') ? 'producer' : 'produce';
            const r = bench([cmd, `--namesrvAddr=${ns}`, '--topic=ClientBench', '--duration=1', ...args]);
            assert.equal(r.code, 0, r.out);
            const s = produced(r.out);
            assert.equal(s.errors, 0, r.out);
            assert.ok(s.n > 100, r.out);
            assert.match(r.out, /\[  1s\] sent +\d+ msgs\/s +[\d.]+ MB\/s \| lat us p50 \d+ p99 \d+ p999 \d+ max \d+ \| failed 0/);
            if (name !== 'oneway') assert.match(r.out, /latency us: p50 \d+ p90 \d+ p99 \d+ p999 \d+ max \d+/);
            total += s.n + 1; // + the warm-up message
        });
    }

    test('produce --messages stops after N and --json prints one JSON summary last', () => {
        const r = bench(['produce', `--namesrvAddr=${ns}`, '--topic=ClientBench', '--messages=3000', '--threads=3', '--json']);
        assert.equal(r.code, 0, r.out);
        const last = r.out.trim().split('\n').pop();
        const j = JSON.parse(last);
        assert.equal(j.sent, 3000);
        assert.equal(j.failed, 0);
        for (const k of ['tps', 'mbps', 'p50_us', 'p99_us', 'p999_us', 'max_us']) assert.equal(typeof j[k], 'number', k);
        assert.ok(j.p50_us <= j.p99_us && j.p99_us <= j.p999_us && j.p999_us <= j.max_us);
        total += 3001;
    });

    test('produce --rate keeps a fixed send rate and reports latency from the schedule', () => {
        const r = bench(['produce', `--namesrvAddr=${ns}`, '--topic=ClientBench', '--rate=2000', '--duration=2', '--threads=2', '--json']);
        assert.equal(r.code, 0, r.out);
        assert.match(r.out, /fixed rate: 2000 msgs\/s/);
        const j = JSON.parse(r.out.trim().split('\n').pop());
        assert.equal(j.failed, 0, r.out);
        // 2 s at 2000/s: about 4000 sends, never far more (the schedule caps them).
        assert.ok(j.sent >= 3000 && j.sent <= 4200, r.out);
        assert.ok(j.p50_us <= j.p99_us && j.p99_us <= j.max_us, r.out);
        total += j.sent + 1;
        const bad = bench(['produce', `--namesrvAddr=${ns}`, '--rate=-5']);
        assert.equal(bad.code, 2, bad.out);
    });

    test('consume drains the topic from the first offset', () => {
        const r = bench(['consume', `--namesrvAddr=${ns}`, '--topic=ClientBench', '--threads=2', '--json']);
        assert.equal(r.code, 0, r.out);
        const s = produced(r.out);
        assert.equal(s.errors, 0, r.out);
        // Oneway sends are unacknowledged but were flushed before the producer exited.
        assert.equal(s.n, total, `consumed ${s.n} != produced ${total}\n${r.out}`);
        const j = JSON.parse(r.out.trim().split('\n').pop());
        assert.equal(j.received, total);
    });

    test('e2e measures producer-to-consumer latency', () => {
        const r = bench(['e2e', `--namesrvAddr=${ns}`, '--topic=ClientBenchE2E', '--duration=2', '--threads=2', '--json']);
        assert.equal(r.code, 0, r.out);
        const j = JSON.parse(r.out.trim().split('\n').pop());
        assert.ok(j.sent > 100, r.out);
        assert.equal(j.received, j.sent, r.out);
        assert.ok(j.p50_us > 0 && j.p50_us < 1000000, r.out);
        assert.match(r.out, /latency us \(producer to consumer\)/);
    });

    test('bad options are refused', () => {
        const r = bench(['produce', '--nosuch=1']);
        assert.equal(r.code, 2);
        assert.match(r.out, /unknown option 'nosuch'/);
    });

    test('unknown NameServer gives a clear error and exit 1', () => {
        const r = bench(['produce', '--namesrvAddr=127.0.0.1:1', '--topic=X', '--duration=1']);
        assert.equal(r.code, 1);
        assert.match(r.out, /first send failed: no NameServer answered for topic 'X'/);
    });
});
