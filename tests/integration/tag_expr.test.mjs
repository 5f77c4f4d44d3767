// Tag subscriptions end to end: messages tagged "A", "B", "A|B" and "*" are
// stored by `apogee standalone`, then read back by the C pull consumer
// (examples/pull_consumer) with several subscription strings. The broker
// filters each pull by tag hash and exact tag, the client filters what it
// receives again; both parse the string as RocketMQ's FilterAPI does, so
// "A|B" is one tag, "A || B" and "A||B" are two, " * " is the tag "*" and ""
// is everything.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { apogeeBin, freePort, startApogee } from '../lib/proc.mjs';
import { RemotingClient } from '../lib/remoting.mjs';

const exDir = process.env.APOGEE_EXAMPLES_DIR || path.join(path.dirname(apogeeBin()), 'examples');
const skip = fs.existsSync(path.join(exDir, 'pull_consumer')) ? false : `no examples in ${exDir}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function run(name, args, timeout = 30000) {
    const r = spawnSync(path.join(exDir, name), args, { encoding: 'utf8', timeout });
    return { code: r.status, out: `${r.stdout}${r.stderr}`, lines: r.stdout.split('\n') };
}

describe('tag subscriptions mean the same to broker and client', { skip }, () => {
    let sa;
    let ns;
    before(async () => {
        const nsPort = await freePort();
        sa = await startApogee('standalone', [], { extraPorts: { namesrvListenPort: nsPort } });
        ns = `127.0.0.1:${nsPort}`;
        const c = await RemotingClient.connect(nsPort);
        try {
            for (let i = 0; i < 200; i++) {
                if ((await c.request(105, { topic: 'TBW102' })).code === 0) break;
                await sleep(50);
            }
        } finally {
            c.close();
        }
        for (const tag of ['A', 'B', 'A|B', '*']) {
            const r = run('producer_sync', [ns, 'TagExpr', '3', '0', tag]);
            assert.equal(r.code, 0, r.out);
        }
    });
    after(async () => {
        await sa?.stop();
    });

    const cases = [
        ['A|B', { 'A|B': 3 }],
        ['A || B', { A: 3, B: 3 }],
        ['A||B', { A: 3, B: 3 }],
        [' * ', { '*': 3 }],
        ['', { A: 3, B: 3, 'A|B': 3, '*': 3 }],
        ['*', { A: 3, B: 3, 'A|B': 3, '*': 3 }],
    ];
    for (const [expr, want] of cases) {
        test(`subscription '${expr}'`, () => {
            const r = run('pull_consumer', [ns, 'TagExpr', `TagExprG${cases.findIndex((c) => c[0] === expr)}`, expr]);
            assert.equal(r.code, 0, r.out);
            const got = {};
            for (const l of r.lines.filter((x) => x.startsWith('RECV '))) {
                const tag = l.split(' ')[3];
                got[tag] = (got[tag] ?? 0) + 1;
            }
            assert.deepEqual(got, want, r.out);
        });
    }
});
