// The C client's query by key and lookup by unique id (apg_pull_consumer_query_by_key,
// apg_pull_consumer_lookup_unique) through examples/query_message against a real
// `apogee standalone` (random ports, temp dirs, cleaned up).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { apogeeBin, startStandaloneRouted } from '../lib/proc.mjs';

const exDir = process.env.APOGEE_EXAMPLES_DIR || path.join(path.dirname(apogeeBin()), 'examples');
const skip = fs.existsSync(path.join(exDir, 'query_message')) ? false : `no examples in ${exDir}`;

function run(args) {
    const r = spawnSync(path.join(exDir, 'query_message'), args, { encoding: 'utf8', timeout: 30000 });
    return { code: r.status, out: `${r.stdout}${r.stderr}`, lines: r.stdout.split('\n') };
}

describe('C client: query by key and by unique id', { skip }, () => {
    let sa;
    let ns;
    before(async () => {
        ({ sa, ns } = await startStandaloneRouted());
    });
    after(async () => {
        await sa?.stop();
    });

    test('messages sent with keys are found by key and by the id the send returned', () => {
        const s = run([ns, 'T_CQUERY', 'send', '20']);
        assert.equal(s.code, 0, s.out);
        const sent = s.lines.filter((l) => l.startsWith('SENT ')).map((l) => l.split(' '));
        assert.equal(sent.length, 20);

        let r = run([ns, 'T_CQUERY', 'key', 'order-7']);
        assert.equal(r.code, 0, r.out);
        let found = r.lines.filter((l) => l.startsWith('FOUND '));
        assert.deepEqual(found, [`FOUND ${sent[7][1]} order-7 batch msg-7`]);

        // A key every message carries: all 20, spread over the topic's queues.
        r = run([ns, 'T_CQUERY', 'key', 'batch']);
        assert.equal(r.code, 0, r.out);
        found = r.lines.filter((l) => l.startsWith('FOUND '));
        assert.equal(found.length, 20);
        assert.deepEqual(new Set(found.map((l) => l.split(' ')[1])), new Set(sent.map((x) => x[1])));

        for (const i of [0, 13, 19]) {
            r = run([ns, 'T_CQUERY', 'id', sent[i][1]]);
            assert.equal(r.code, 0, r.out);
            assert.match(r.out, new RegExp(`FOUND ${sent[i][1]} order-${i} batch msg-${i}\\n`));
        }

        // Not found: a key nobody used, a key only a part of a word, an unknown id.
        for (const args of [['key', 'order-99'], ['key', 'order'], ['id', '7F0000010000000000000000000000FF']]) {
            r = run([ns, 'T_CQUERY', ...args]);
            assert.equal(r.code, 3, r.out);
            assert.match(r.out, /DONE found=0/);
        }
    });
});
