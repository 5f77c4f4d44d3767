// The C client's transactional producer (examples/producer_transaction.c) against a real
// `apogee standalone` (random ports, temp dirs): the local transaction's commit delivers,
// rollback never does, unknown is settled by the check listener; a producer killed with
// kill -9 before it commits (and a broker killed after it) leaves a half that a new
// producer of the group is asked about and commits, delivered once.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { apogeeBin, freePort, runBench, startApogee } from '../lib/proc.mjs';
import { RemotingClient, waitForRoute } from '../lib/remoting.mjs';
import { pullAll } from '../lib/records.mjs';

const exDir = process.env.APOGEE_EXAMPLES_DIR || path.join(path.dirname(apogeeBin()), 'examples');
const skip = fs.existsSync(path.join(exDir, 'producer_transaction')) ? false : `no examples in ${exDir}`;
const FAST = ['--transactionTimeOut=500', '--transactionCheckInterval=500'];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function run(args, timeout = 30000) {
    const r = spawnSync(path.join(exDir, 'producer_transaction'), args, { encoding: 'utf8', timeout });
    return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

function start(args) {
    const proc = spawn(path.join(exDir, 'producer_transaction'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const st = { proc, out: '' };
    proc.stdout.on('data', (d) => (st.out += d));
    proc.stderr.on('data', (d) => (st.out += d));
    st.exited = new Promise((res) => proc.once('exit', (code, sig) => res({ code, sig })));
    return st;
}

async function until(pred, ms, what) {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
        if (await pred()) return;
        await sleep(50);
    }
    assert.fail(`timed out waiting for ${typeof what === 'function' ? what() : what}`);
}

// Bodies of every message in topic (all queues).
async function bodies(port, topic) {
    const cl = await RemotingClient.connect(port);
    try {
        const out = [];
        for (let q = 0; q < 8; q++) out.push(...(await pullAll(cl, topic, q)).map((m) => m.body));
        return out.sort();
    } finally {
        cl.close();
    }
}

describe('C client transactional producer', { skip }, () => {
    let srv;
    let ns;
    let opts;
    before(async () => {
        const nsPort = await freePort();
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-ctxn-'));
        opts = { dir, keepDir: true, port: await freePort(), extraPorts: { namesrvListenPort: nsPort } };
        srv = await startApogee('standalone', FAST, opts);
        ns = `127.0.0.1:${nsPort}`;
        await waitForRoute(nsPort);
    });
    after(async () => {
        await srv?.stop();
        fs.rmSync(opts.dir, { recursive: true, force: true });
    });

    test('commit delivers, rollback never, unknown is settled by the check listener', async () => {
        let r = run([ns, 'CTxCommit', 'PG_C_COMMIT', '3', 'commit', 'rollback']);
        assert.equal(r.code, 0, r.out);
        assert.match(r.out, /DONE sent=3 failed=0/);
        const sent = [...r.out.matchAll(/^HALF \S+ (\S+)$/gm)].map((m) => m[1]).sort();
        assert.equal(sent.length, 3);
        await until(async () => (await bodies(srv.port, 'CTxCommit')).length === 3, 5000, 'the commits');
        assert.deepEqual(await bodies(srv.port, 'CTxCommit'), sent);

        r = run([ns, 'CTxRollback', 'PG_C_ROLLBACK', '3', 'rollback', 'commit', '1500']);
        assert.equal(r.code, 0, r.out);
        assert.doesNotMatch(r.out, /^CHECK /m, 'rolled back halves are not checked');
        assert.deepEqual(await bodies(srv.port, 'CTxRollback'), []);

        // Unknown: the broker asks the check listener, which commits.
        r = run([ns, 'CTxUnknown', 'PG_C_UNKNOWN', '2', 'unknown', 'commit', '4000']);
        assert.equal(r.code, 0, r.out);
        const checked = [...r.out.matchAll(/^CHECK \S+ (\S+) -> commit$/gm)].map((m) => m[1]);
        assert.equal(new Set(checked).size, 2, r.out);
        await until(async () => (await bodies(srv.port, 'CTxUnknown')).length === 2, 5000, 'the checked commits');
        await sleep(1000);
        assert.equal((await bodies(srv.port, 'CTxUnknown')).length, 2, 'delivered once');
    });

    test('apogee bench produce --mode=transaction: every transaction commits, delivered once', async () => {
        const r = await runBench(['produce', `--namesrvAddr=${ns}`, '--topic=CTxBench', '--group=PG_C_BENCH',
            '--threads=2', '--messages=300', '--mode=transaction', '--json']);
        assert.equal(r.code, 0, r.out);
        assert.equal(r.json?.sent, 300, r.out);
        assert.equal(r.json?.failed, 0, r.out);
        assert.match(r.out, /transaction/);
        // 300 committed transactions plus bench's plain warm-up send.
        await until(async () => (await bodies(srv.port, 'CTxBench')).length === 301, 5000, 'the commits');
        const cl = await RemotingClient.connect(srv.port);
        const t = JSON.parse((await cl.request(28, {})).body.toString()).table;
        cl.close();
        assert.ok(Number(t.transactionCommitted) >= 300, t.transactionCommitted);
    });

    test('a producer killed before committing: a new producer of the group is checked back after a broker restart and commits', async () => {
        const topic = 'CTxCrash';
        const group = 'PG_C_CRASH';
        // The first producer stores its half and hangs in its local transaction.
        // (Its check listener answers unknown, should a check-back reach it before the kill.)
        const first = start([ns, topic, group, '1', 'hang', 'unknown']);
        await until(() => /^HALF /m.test(first.out), 10000, () => `the half\n${first.out}`);
        const body = /^HALF \S+ (\S+)$/m.exec(first.out)[1];
        first.proc.kill('SIGKILL');
        await first.exited;
        // The broker dies too, with the half open.
        await sleep(1000); // flushed (flushIntervalCommitLog)
        await srv.stop('SIGKILL');
        srv = await startApogee('standalone', FAST, opts);
        await waitForRoute(opts.extraPorts.namesrvListenPort, topic);
        assert.deepEqual((await bodies(srv.port, topic)).filter((b) => b === body), [], 'not delivered yet');
        // A new producer of the group (it sends one transaction of its own) is asked.
        const second = start([ns, topic, group, '1', 'commit', 'commit', '6000']);
        try {
            await until(() => new RegExp(`^CHECK \\S+ ${body} -> commit$`, 'm').test(second.out), 15000, () => `the check-back\n${second.out}\n--- broker ---\n${srv.output().slice(-3000)}`);
            await until(async () => (await bodies(srv.port, topic)).includes(body), 5000, 'the commit');
        } finally {
            await second.exited;
        }
        assert.match(second.out, /DONE sent=1 failed=0/, second.out);
        const got = await bodies(srv.port, topic);
        assert.equal(got.filter((b) => b === body).length, 1, 'the crashed producer\'s message once');
        assert.equal(got.length, 2);
    });
});
