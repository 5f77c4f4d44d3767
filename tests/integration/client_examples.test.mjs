// The C client library's API, exercised through the programs in examples/
// (built into <build>/examples next to APOGEE_BIN) against a real
// `apogee standalone` on 127.0.0.1 (random ports, temp dirs, always cleaned up):
// every producer mode, the pull consumer, push consumers (clustering, tag
// filter, orderly, RECONSUME_LATER, broadcasting with a local offsets file,
// rebalance when a third consumer joins and one leaves) and the error paths
// (no NameServer, no answer, too large, unknown topic without auto-create).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { done, run, skipExamples as skip, sleep, start, until } from '../lib/examples.mjs';
import { freePort, startApogee } from '../lib/proc.mjs';
import { queueOffsets, RemotingClient, waitForRoute } from '../lib/remoting.mjs';

// APOGEE_TEST_NAMESRV=host:port runs the first suite against a NameServer that is
// already running (Apache RocketMQ, say) instead of starting `apogee standalone`;
// topics and groups then get a per-run suffix, as that broker keeps its state.
const external = process.env.APOGEE_TEST_NAMESRV || '';
const sfx = external ? `_${process.pid}_${Date.now() % 1e6}` : '';
const N = (name) => `${name}${sfx}`;
// Tests that talk to the broker itself need its port (APOGEE_TEST_BROKER=host:port with an
// external NameServer).
const externalBroker = process.env.APOGEE_TEST_BROKER || '';
const brokerSkip = external && !externalBroker ? 'APOGEE_TEST_BROKER not set' : false;
// messageDelayLevel of the broker the first suite starts (an external broker: RocketMQ's).
const LEVELS = external ? ['1s', '5s', '10s'] : ['1s', '2s', '3s', '4s', '5s'];


describe(`C client examples against ${external || 'apogee standalone'}`, { skip }, () => {
    let sa;
    let ns;
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-client-'));
    before(async () => {
        if (external) {
            ns = external;
            await waitForRoute(Number(external.split(':')[1]));
            return;
        }
        const nsPort = await freePort();
        // Short delay levels: retries (level 3 + reconsumeTimes) and the delayed producer
        // below wait seconds, not RocketMQ's default 10 s and more.
        sa = await startApogee('standalone', [`--messageDelayLevel=${LEVELS.join(' ')}`], {
            extraPorts: { namesrvListenPort: nsPort },
        });
        ns = `127.0.0.1:${nsPort}`;
        await waitForRoute(nsPort);
    });
    after(async () => {
        await sa?.stop();
        fs.rmSync(tmp, { recursive: true, force: true });
    });
    const brokerPort = () => (external ? Number(externalBroker.split(':')[1]) : sa.port);

    test('sync producer: one result per message, offsets grow per queue', () => {
        const r = run('producer_sync', [ns, N('ExSync'), '40']);
        assert.equal(r.code, 0, r.out);
        assert.deepEqual(done(r), { n: 40, failed: 0 });
        const sent = r.lines.filter((l) => l.startsWith('SENT ')).map((l) => l.split(' '));
        assert.equal(new Set(sent.map((s) => s[1])).size, 40, 'message ids are unique');
        const last = {};
        for (const [, , , q, off] of sent) {
            assert.ok(last[q] === undefined || Number(off) === last[q] + 1, r.out);
            last[q] = Number(off);
        }
    });

    test('async, oneway and batch producers', () => {
        let r = run('producer_async', [ns, N('ExModes'), '500']);
        assert.equal(r.code, 0, r.out);
        assert.deepEqual(done(r), { n: 500, failed: 0 });
        r = run('producer_oneway', [ns, N('ExModes'), '200']);
        assert.equal(r.code, 0, r.out);
        assert.deepEqual(done(r), { n: 200, failed: 0 });
        r = run('producer_batch', [ns, N('ExModes'), '5', '10']);
        assert.equal(r.code, 0, r.out);
        assert.deepEqual(done(r), { n: 50, failed: 0 });
        // Everything is readable back with the pull consumer.
        const p = run('pull_consumer', [ns, N('ExModes'), N('ExPullGroup')]);
        assert.equal(p.code, 0, p.out);
        assert.equal(done(p).n, 750, p.out);
        const bodies = new Set(p.lines.filter((l) => l.startsWith('RECV ')).map((l) => l.split(' ')[4]));
        for (const b of ['async-0', 'async-499', 'oneway-0', 'oneway-199', 'batch-4-9'])
            assert.ok(bodies.has(b), `missing ${b}`);
        assert.equal(p.lines.filter((l) => l.startsWith('COMMITTED ')).length, 4);
    });

    test('pull consumer: committed offsets are kept by the broker', () => {
        const p = run('pull_consumer', [ns, N('ExModes'), N('ExPullGroup2')]);
        assert.equal(done(p).n, 750);
        // A push consumer of the same group starts from the committed offsets: nothing new.
        const c = run('push_consumer', ['-n', ns, '-t', N('ExModes'), '-g', N('ExPullGroup2'), '--seconds', '2']);
        assert.equal(c.code, 0, c.out);
        assert.equal(done(c).n, 0, c.out);
    });

    test('orderly producer + orderly push consumer: per-order sequence kept', async () => {
        const r = run('producer_orderly', [ns, N('ExOrder'), '6', '10']);
        assert.equal(r.code, 0, r.out);
        const queueOf = {};
        for (const l of r.lines.filter((x) => x.startsWith('SENT '))) {
            const [, key, , q] = l.split(' ');
            assert.ok(queueOf[key] === undefined || queueOf[key] === q, `${key} moved queue`);
            queueOf[key] = q;
        }
        const c = run('push_consumer', ['-n', ns, '-t', N('ExOrder'), '-g', N('ExOrderG'), '--first', '--orderly', '--threads', '4', '--expect', '60', '--seconds', '15']);
        assert.equal(c.code, 0, c.out);
        const seen = {};
        for (const [, , , , , , body] of c.lines.filter((l) => l.startsWith('RECV ')).map((l) => l.split(' '))) {
            const [key, step] = body.split(':');
            assert.equal(Number(step), (seen[key] ?? -1) + 1, `order ${key} out of sequence`);
            seen[key] = Number(step);
        }
        assert.equal(Object.keys(seen).length, 6);
        for (const v of Object.values(seen)) assert.equal(v, 9);
    });

    test('push consumer: tag filter and RECONSUME_LATER redelivery', () => {
        let r = run('producer_sync', [ns, N('ExTags'), '10', '0', 'TagA']);
        assert.equal(r.code, 0, r.out);
        r = run('producer_sync', [ns, N('ExTags'), '10', '0', 'TagB']);
        assert.equal(r.code, 0, r.out);
        const c = run('push_consumer', ['-n', ns, '-t', N('ExTags'), '-g', N('ExTagG'), '-e', 'TagA', '--first', '--reconsume-once', '--expect', '10', '--seconds', '20']);
        assert.equal(c.code, 0, c.out);
        const recv = c.lines.filter((l) => l.startsWith('RECV ')).map((l) => l.split(' '));
        const later = c.lines.filter((l) => l.startsWith('LATER '));
        assert.equal(recv.length, 10, c.out);
        assert.ok(later.length >= 10, c.out);
        for (const m of recv) assert.ok(Number(m[5]) >= 1, `redelivered with reconsumeTimes >= 1: ${m}`);
        // Only TagA messages, by message id (UNIQ_KEY): a redelivered message comes from
        // %RETRY%<group>, so its queue and offset are not the original ones.
        const tagA = new Set(run('pull_consumer', [ns, N('ExTags'), N('ExTagPull'), 'TagA']).lines.filter((l) => l.startsWith('RECV ')).map((l) => l.split(' ')[5]));
        assert.equal(tagA.size, 10);
        for (const m of recv) assert.ok(tagA.has(m[1]), `not a TagA message: ${m}`);
    });

    // LEVEL 2 sends with the DELAY property; "+1500" sends timer messages
    // (apg_message_set_deliver_time: TIMER_DELIVER_MS = send time + 1500 ms).
    for (const [kind, what, arg, wait] of [
        ['delayed', 'its level\'s delay', '2', Number.parseInt(LEVELS[1], 10) * 1000],
        ['timer', 'its deliver time', '+1500', 1500],
    ]) {
        test(`${kind} producer: each message arrives no earlier than ${what}`, async () => {
            const topic = N(`Ex_${kind}`);
            const c = start('push_consumer', ['-n', ns, '-t', topic, '-g', N(`Ex_${kind}G`), '--first', '--expect', '6', '--seconds', '30']);
            const arrived = new Map(); // msgId -> ms
            c.proc.stdout.on('data', (d) => {
                for (const l of String(d).split('\n'))
                    if (l.startsWith('RECV ')) arrived.set(l.split(' ')[1], Date.now());
            });
            // The topic must exist before the consumer can balance it.
            assert.equal(run('producer_sync', [ns, topic, '1']).code, 0);
            await until(() => c.queues() > 0, 15000, 'the consumer to get its queues');
            const r = run('producer_delay', [ns, topic, '5', arg]);
            assert.equal(r.code, 0, r.out);
            assert.deepEqual(done(r), { n: 5, failed: 0 });
            const sent = r.lines.filter((l) => l.startsWith('SENT ')).map((l) => l.split(' '));
            await until(() => sent.every(([, id]) => arrived.has(id)), 20000, `the ${kind} messages`);
            for (const [, id, t] of sent) {
                const waited = arrived.get(id) - Number(t);
                assert.ok(waited >= wait, `${id} arrived ${waited} ms after its send (${arg}: ${wait} ms)`);
                assert.ok(waited < wait + 3000, `${id} arrived ${waited} ms after its send`);
            }
            assert.equal(await c.stop(), 0, c.out);
        });
    }

    test('broadcasting: every consumer gets every message; offsets file resumes', () => {
        let r = run('producer_sync', [ns, N('ExBcast'), '30']);
        assert.equal(r.code, 0, r.out);
        const d1 = path.join(tmp, 'b1');
        const d2 = path.join(tmp, 'b2');
        const a = run('broadcast_consumer', [ns, N('ExBcast'), N('ExBcastG'), d1, '30', '15']);
        const b = run('broadcast_consumer', [ns, N('ExBcast'), N('ExBcastG'), d2, '30', '15']);
        assert.equal(done(a).n, 30, a.out);
        assert.equal(done(b).n, 30, b.out);
        assert.ok(fs.readFileSync(path.join(d1, `${N('ExBcastG')}.offsets`), 'utf8').includes(N('ExBcast')));
        r = run('producer_sync', [ns, N('ExBcast'), '5']);
        assert.equal(r.code, 0, r.out);
        const again = run('broadcast_consumer', [ns, N('ExBcast'), N('ExBcastG'), d1, '1000', '3']);
        assert.equal(done(again).n, 5, again.out);
    });

    test('clustering rebalance: a third consumer joins, one leaves; no loss, no double delivery', async () => {
        const topic = N('ExRebal');
        const group = N('ExRebalG');
        let r = run('producer_sync', [ns, topic, '4']); // creates the topic (4 queues)
        assert.equal(r.code, 0, r.out);
        const args = (i) => ['-n', ns, '-t', topic, '-g', group, '--first', '--instance', `rb${i}`, '--seconds', '60'];
        const c1 = start('push_consumer', args(1));
        const c2 = start('push_consumer', args(2));
        const all = [c1, c2];
        try {
            await until(() => c1.queues() === 2 && c2.queues() === 2, 15000, 'two consumers with 2 queues each');
            const produced = new Set();
            const produce = (n) => {
                const p = run('producer_sync', [ns, topic, String(n)]);
                assert.equal(p.code, 0, p.out);
                for (const l of p.lines.filter((x) => x.startsWith('SENT '))) produced.add(l.split(' ')[1]);
            };
            const received = () => all.flatMap((c) => c.recv().map((m) => m[1]));
            const check = async (what) => {
                await until(() => [...produced].every((id) => received().includes(id)), 15000, `${what}: every message`);
                await sleep(1500); // periodic commits (1 s in the example) are on record
            };
            produce(100);
            await check('two consumers');
            const c3 = start('push_consumer', args(3));
            all.push(c3);
            await until(() => [c1, c2, c3].map((c) => c.queues()).sort().join() === '1,1,2', 15000, 'three consumers sharing 4 queues');
            produce(100);
            await check('three consumers');
            assert.equal(await c1.stop(), 0, c1.out);
            assert.match(c1.out, /DONE received=\d+/);
            await until(() => c2.queues() === 2 && c3.queues() === 2, 15000, 'two consumers after one left');
            produce(100);
            await check('after one left');
            const ids = received();
            const first4 = new Set(all.flatMap((c) => c.recv().filter((m) => Number(m[4]) === 0).map((m) => m[1])));
            const dups = ids.filter((id, i) => ids.indexOf(id) !== i && produced.has(id));
            assert.deepEqual(dups, [], 'a message reached two consumers although no rebalance was near');
            assert.ok(first4.size >= 1);
            for (const id of produced) assert.ok(ids.includes(id), `lost ${id}`);
        } finally {
            for (const c of all) await c.stop();
        }
    });

    // The push consumer commits on a timer (persistConsumerOffsetInterval, 1 s in the example)
    // as well as on shutdown; the broker must see the offsets move while the consumer runs,
    // or a consumer that crashes re-reads everything it consumed since it started.
    test('push consumer: committed offsets reach the broker while it runs', { skip: brokerSkip }, async () => {
        const topic = N('ExCommit');
        const group = N('ExCommitG');
        let r = run('producer_sync', [ns, topic, '100']);
        assert.equal(r.code, 0, r.out);
        const c = start('push_consumer', ['-n', ns, '-t', topic, '-g', group, '--first', '--seconds', '60']);
        const admin = await RemotingClient.connect(brokerPort());
        try {
            for (const total of [100, 160]) {
                if (total > 100) {
                    r = run('producer_sync', [ns, topic, '60']);
                    assert.equal(r.code, 0, r.out);
                }
                await until(() => c.recv().length >= total, 20000, `${total} messages consumed`);
                let offs = [];
                const caughtUp = async () => {
                    offs = await queueOffsets(admin, group, topic, 4);
                    return offs.every((o) => o.committed === o.max);
                };
                const deadline = Date.now() + 5000;
                while (!(await caughtUp()) && Date.now() < deadline) await sleep(200);
                assert.ok(offs.every((o) => o.committed === o.max),
                    `committed offsets ${JSON.stringify(offs)} after ${total} messages consumed`);
                assert.equal(c.proc.exitCode, null, `the consumer is still running:\n${c.out}`);
            }
        } finally {
            admin.close();
            assert.equal(await c.stop(), 0, c.out);
        }
    });

    test('errors: no NameServer, no answer, too large, empty body', async () => {
        let r = run('producer_sync', ['127.0.0.1:1', 'X', '1']);
        assert.equal(r.code, 1);
        assert.match(r.out, /ERROR .*no NameServer answered for topic .X./);
        // A server that accepts and never answers: the send times out (3 s).
        const srv = net.createServer(() => {});
        await new Promise((res) => srv.listen(0, '127.0.0.1', res));
        try {
            const t0 = Date.now();
            r = run('producer_sync', [`127.0.0.1:${srv.address().port}`, 'X', '1']);
            assert.equal(r.code, 1);
            assert.match(r.out, /no answer from 127\.0\.0\.1:\d+ within the timeout/);
            assert.ok(Date.now() - t0 >= 2500);
        } finally {
            srv.close();
        }
        r = run('producer_sync', [ns, N('ExBig'), '1', String(5 * 1024 * 1024)]);
        assert.equal(r.code, 1);
        assert.match(r.out, /ERROR APG_ETOOBIG 0 message body of 5242880 bytes exceeds maxMessageSize 4194304/);
    });
});

describe('C client against a strict broker (no auto-create, small maxMessageSize)', { skip: skip || (external ? 'external NameServer' : false) }, () => {
    let sa;
    let ns;
    before(async () => {
        const nsPort = await freePort();
        sa = await startApogee('standalone', ['--autoCreateTopicEnable=false', '--maxMessageSize=1024'], { extraPorts: { namesrvListenPort: nsPort } });
        ns = `127.0.0.1:${nsPort}`;
        await sleep(500);
    });
    after(async () => {
        await sa?.stop();
    });

    test('unknown topic is refused with a clear error', () => {
        const r = run('producer_sync', [ns, 'NoSuchTopic', '1']);
        assert.equal(r.code, 1, r.out);
        assert.match(r.out, /ERROR APG_ENOTFOUND 0 .*NoSuchTopic/);
    });

    test('a body over the broker\'s maxMessageSize is refused by the broker', async () => {
        const admin = await RemotingClient.connect(sa.port);
        try {
            const r = await admin.request(17, {
                topic: 'StrictTopic', defaultTopic: 'TBW102', readQueueNums: '4',
                writeQueueNums: '4', perm: '6', topicFilterType: 'SINGLE_TAG',
                topicSysFlag: '0', order: 'false',
            });
            assert.equal(r.code, 0, r.remark);
        } finally {
            admin.close();
        }
        await sleep(300);
        let r = run('producer_sync', [ns, 'StrictTopic', '1', '100']);
        assert.equal(r.code, 0, r.out);
        r = run('producer_sync', [ns, 'StrictTopic', '1', '3000']);
        assert.equal(r.code, 1, r.out);
        assert.match(r.out, /ERROR APG_EINVAL 13 .*refused the send to StrictTopic/);
    });

    test('push consumer of an unknown topic starts and receives nothing', () => {
        const r = run('push_consumer', ['-n', ns, '-t', 'NoSuchTopic', '-g', 'G', '--seconds', '1']);
        assert.equal(r.code, 0, r.out);
        assert.equal(done(r).n, 0);
    });
});
