// The test harness's own guarantees (tests/lib/proc.mjs): a server stopped with SIGTERM must
// exit with status 0, or stop() rejects and the test that stopped it fails. A sanitizer abort
// or crash during shutdown, or a shutdown that hangs until SIGKILL, would otherwise pass.
// tests/lib/fake_server.mjs stands in for apogee and exits as told.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { startApogee } from '../lib/proc.mjs';

const fake = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'lib', 'fake_server.mjs');

async function withFake(env, opts, fn) {
    const saved = process.env.APOGEE_BIN;
    process.env.APOGEE_BIN = fake;
    try {
        return await fn(await startApogee('namesrv', [], { env, ...opts }));
    } finally {
        if (saved === undefined) delete process.env.APOGEE_BIN;
        else process.env.APOGEE_BIN = saved;
    }
}

test('SIGTERM and exit 0: stop() resolves with code 0', async () => {
    const r = await withFake({}, {}, (s) => s.stop());
    assert.equal(r.code, 0);
});

for (const [what, env] of [
    ['exit 1', { FAKE_EXIT_CODE: '1' }],
    ['an abort (SIGABRT)', { FAKE_EXIT_SIGNAL: 'SIGABRT' }],
    ['a hang until SIGKILL', { FAKE_IGNORE_TERM: '1' }],
]) {
    test(`SIGTERM and ${what}: stop() rejects`, async () => {
        await withFake(env, { stopTimeoutMs: 500 }, async (s) => {
            await assert.rejects(s.stop(), /after SIGTERM/);
        });
    });
}

test('anyExit accepts a non-zero exit; SIGKILL is never checked', async () => {
    const r = await withFake({ FAKE_EXIT_CODE: '3' }, { anyExit: true }, (s) => s.stop());
    assert.equal(r.code, 3);
    const k = await withFake({}, {}, (s) => s.stop('SIGKILL'));
    assert.equal(k.sig, 'SIGKILL');
});
