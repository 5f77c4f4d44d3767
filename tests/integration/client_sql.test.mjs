// The C client's SQL92 subscriptions end to end, through the programs in examples/ against
// `apogee standalone` (random ports, temp dirs): messages with user properties go in over the
// wire (SEND_MESSAGE_V2, four queues); the pull consumer (apg_pull_consumer_pull_sql92) and
// the push consumer (apg_push_consumer_subscribe_sql92) must receive exactly the matching
// ones. The client does not filter SQL92 itself, as RocketMQ's does not, so a broker that
// sent everything fails here. A bad expression is refused with its position before anything
// is sent, and a broker with enablePropertyFilter=false fails the push consumer's start
// (CHECK_CLIENT_CONFIG) with RocketMQ's remark.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { apogeeBin, freePort, startApogee } from '../lib/proc.mjs';
import { RemotingClient, waitForRoute } from '../lib/remoting.mjs';

const exDir = process.env.APOGEE_EXAMPLES_DIR || path.join(path.dirname(apogeeBin()), 'examples');
const skip = fs.existsSync(path.join(exDir, 'push_consumer')) ? false : `no examples in ${exDir}`;
const SEND_V2 = 310;
const TOPIC = 'CSqlTopic';
const N = 60;

function run(name, args, timeout = 30000) {
    const r = spawnSync(path.join(exDir, name), args, { encoding: 'utf8', timeout });
    return { code: r.status, out: `${r.stdout}${r.stderr}`, lines: r.stdout.split('\n') };
}

// Message i: price = i, region eu for i % 3 == 0, us otherwise; every seventh has no price.
function props(i) {
    const p = { region: i % 3 ? 'us' : 'eu' };
    if (i % 7 !== 6) p.price = String(i);
    return p;
}
const SQL = "price >= 20 AND region = 'eu'";
const want = [];
for (let i = 0; i < N; i++) {
    const p = props(i);
    if (p.price !== undefined && Number(p.price) >= 20 && p.region === 'eu') want.push(`sql-${i}`);
}

async function startWithMessages(args) {
    const nsPort = await freePort();
    const sa = await startApogee('standalone', args, { extraPorts: { namesrvListenPort: nsPort } });
    const cl = await RemotingClient.connect(sa.port);
    for (let i = 0; i < N; i++) {
        const p = Object.entries(props(i)).map(([k, v]) => `${k}\u0001${v}\u0002`).join('');
        const r = await cl.request(SEND_V2, {
            a: 'PG_CSQL', b: TOPIC, c: 'TBW102', d: '4', e: String(i % 4), f: '0',
            g: String(Date.now()), h: '0', i: p, j: '0', k: 'false',
        }, Buffer.from(`sql-${i}`));
        assert.equal(r.code, 0, r.remark);
    }
    await cl.close();
    await waitForRoute(nsPort, TOPIC);
    return { sa, ns: `127.0.0.1:${nsPort}` };
}

describe('C client SQL92 subscriptions', { skip }, () => {
    let sa;
    let ns;
    before(async () => {
        ({ sa, ns } = await startWithMessages(['--enablePropertyFilter=true']));
    });
    after(async () => {
        await sa?.stop();
    });

    test('the pull consumer receives exactly the matching messages', () => {
        const r = run('pull_consumer', [ns, TOPIC, 'CSqlPull', SQL, 'SQL92']);
        assert.equal(r.code, 0, r.out);
        const got = r.lines.filter((l) => l.startsWith('RECV ')).map((l) => l.split(' ')[4]);
        assert.deepEqual(got.sort(), [...want].sort(), r.out);
    });

    test('the push consumer receives exactly the matching messages', () => {
        const r = run('push_consumer', ['-n', ns, '-t', TOPIC, '-g', 'CSqlPush', '--sql', SQL,
            '--first', '--expect', String(want.length), '--seconds', '20']);
        assert.equal(r.code, 0, r.out);
        const got = r.lines.filter((l) => l.startsWith('RECV ')).map((l) => l.split(' ')[6]);
        assert.deepEqual(got.sort(), [...want].sort(), r.out);
    });

    test('an expression that does not compile is refused with its position', () => {
        let r = run('push_consumer', ['-n', ns, '-t', TOPIC, '-g', 'CSqlBad', '--sql', 'price >', '--seconds', '1']);
        assert.equal(r.code, 1, r.out);
        assert.match(r.out, /ERROR start position 8: expected a value/);
        r = run('pull_consumer', [ns, TOPIC, 'CSqlBad', "region IN ('eu'", 'SQL92']);
        assert.match(r.out, /ERROR pull position 16: expected ',' or '\)'/);
    });
});

describe('C client SQL92 against a broker with enablePropertyFilter=false', { skip }, () => {
    let sa;
    let ns;
    before(async () => {
        ({ sa, ns } = await startWithMessages([]));
    });
    after(async () => {
        await sa?.stop();
    });

    test('the push consumer does not start, with the broker\'s remark', () => {
        const r = run('push_consumer', ['-n', ns, '-t', TOPIC, '-g', 'CSqlOff', '--sql', SQL, '--seconds', '2']);
        assert.equal(r.code, 1, r.out);
        assert.match(r.out, /ERROR start SQL92 subscription to 'CSqlTopic' refused: The broker does not support consumer to filter message by SQL92/);
    });

    test('a pull is refused with the broker\'s remark', () => {
        const r = run('pull_consumer', [ns, TOPIC, 'CSqlOff', SQL, 'SQL92']);
        assert.match(r.out, /ERROR pull .*does not support consumer to filter message by SQL92/);
    });
});
