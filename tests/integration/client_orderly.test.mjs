// The C client's orderly push consumer (consumeOrderly=true, clustering) against a
// real `apogee standalone`, through examples/push_consumer and
// examples/producer_orderly:
// - two consumers of one group, the second joining mid-run: every message of an
//   order key is processed once, in send order, and no queue is ever processed by
//   both consumers at once (listener calls traced with wall-clock spans);
// - a batch the listener declines is delivered again in place after
//   suspendCurrentQueueTimeMillis, up to maxReconsumeTimes, then goes to
//   %DLQ%<group> and the queue moves on;
// - kill -9 of the broker while the queues are locked: after the start the consumer
//   locks its queues again and continues in order, nothing lost.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { done, run, skipExamples as skip, sleep, start, until } from '../lib/examples.mjs';
import { freePort, startApogee, startStandaloneRouted } from '../lib/proc.mjs';
import { RemotingClient, jsonBody, waitForRoute } from '../lib/remoting.mjs';

// Sends orders x steps with producer_orderly; returns the queue of each key.
function produce(ns, topic, orders, steps, how = 'orderly') {
    const r = run('producer_orderly', [ns, topic, String(orders), String(steps), how], 60000);
    assert.equal(r.code, 0, r.out);
    assert.deepEqual(done(r), { n: orders * steps, failed: 0 });
    const queueOf = {};
    for (const l of r.lines.filter((x) => x.startsWith('SENT '))) {
        const [, key, , q] = l.split(' ');
        assert.ok(queueOf[key] === undefined || queueOf[key] === q, `${key} moved queue`);
        queueOf[key] = q;
    }
    return queueOf;
}

// Successful listener calls of all consumers, by start time.
function allSpans(consumers) {
    return consumers.flatMap((c, i) => c.spans().map((s) => ({ ...s, who: i }))).sort((a, b) => a.t0 - b.t0);
}

function bodiesSeen(consumers) {
    const seen = new Set();
    for (const s of allSpans(consumers)) for (const b of s.bodies) seen.add(b);
    return seen;
}

// Per order key, the steps in processing order.
function stepsByKey(spans) {
    const byKey = {};
    for (const s of spans)
        for (const b of s.bodies) {
            const [key, step] = b.split(':');
            (byKey[key] ??= []).push(Number(step));
        }
    return byKey;
}

// No two listener calls of one queue overlap in time, whoever made them.
function assertNoOverlap(spans) {
    const last = {};
    for (const s of spans) {
        const p = last[s.queue];
        assert.ok(!p || s.t0 >= p.t1,
            `queue ${s.queue}: consumer ${s.who} started at ${s.t0} while consumer ${p?.who} ran until ${p?.t1}`);
        last[s.queue] = s;
    }
}

describe('orderly push consumer', { skip }, () => {
    let sa;
    let ns;
    before(async () => {
        ({ sa, ns } = await startStandaloneRouted());
    });
    after(async () => {
        await sa?.stop();
    });

    test('two consumers, the second joining mid-run: each key in order, once, no queue processed by both at once', async () => {
        const orders = 8;
        const steps = 20;
        produce(ns, 'OrdTwo', orders, steps);
        const args = (inst) => ['-n', ns, '-t', 'OrdTwo', '-g', 'OrdTwoG', '--first', '--orderly', '--trace',
            '--threads', '4', '--delay-us', '60000', '--instance', inst, '--seconds', '90'];
        const a = start('push_consumer', args('A'));
        let b;
        try {
            await until(() => a.spans().length >= 20, 30000, 'the first consumer to get going');
            b = start('push_consumer', args('B'));
            await until(() => bodiesSeen([a, b]).size === orders * steps, 60000,
                `all ${orders * steps} messages (A ${a.spans().length}, B ${b?.spans().length})`);
        } finally {
            await a.stop();
            await b?.stop();
        }
        assert.ok(b.spans().length > 0, `the second consumer processed nothing:\n${b.out.slice(-2000)}`);
        assert.ok(a.queues() > 0 && b.queues() > 0, `queues A ${a.queues()} B ${b.queues()}`);
        const spans = allSpans([a, b]);
        assertNoOverlap(spans);
        const byKey = stepsByKey(spans);
        assert.equal(Object.keys(byKey).length, orders);
        for (const [key, seq] of Object.entries(byKey))
            assert.deepEqual(seq, [...Array(steps).keys()], `order ${key}: ${seq.join(',')}`);
    });

    test('apg_queue_select_by_hash puts each key on the queue apg_producer_send_orderly picks', () => {
        const a = produce(ns, 'OrdSel', 12, 3, 'orderly');
        const b = produce(ns, 'OrdSel', 12, 3, 'select');
        assert.deepEqual(b, a);
        assert.ok(new Set(Object.values(a)).size > 1, 'keys spread over queues');
    });

    test('a declined batch comes again in place, then goes to the DLQ after maxReconsumeTimes', async () => {
        produce(ns, 'OrdRetry', 1, 5);
        const c = start('push_consumer', ['-n', ns, '-t', 'OrdRetry', '-g', 'OrdRetryG', '--first', '--orderly',
            '--trace', '--fail-body', ':2', '-c', 'maxReconsumeTimes=2', '-c', 'suspendCurrentQueueTimeMillis=400',
            '--expect', '4', '--seconds', '30']);
        assert.equal(await c.exited, 0, c.out);
        const spans = c.spans();
        const bodies = spans.map((s) => s.bodies[0]);
        assert.deepEqual(bodies, ['order-0:0', 'order-0:1', 'order-0:2', 'order-0:2', 'order-0:2', 'order-0:3', 'order-0:4'], c.out);
        const suspends = c.lines.filter((l) => l.startsWith('SUSPEND ')).map((l) => Number(l.split(' ')[2]));
        assert.deepEqual(suspends, [0, 1, 2]);
        for (const i of [3, 4]) {
            const gap = (spans[i].t0 - spans[i - 1].t1) / 1000;
            assert.ok(gap >= 350, `retry after ${gap} ms, expected suspendCurrentQueueTimeMillis=400`);
        }
        // The declined message is in %DLQ%<group>.
        let dlq;
        await until(() => {
            dlq = run('pull_consumer', [ns, '%DLQ%OrdRetryG', 'OrdRetryDlqReader']);
            return dlq.code === 0 && done(dlq).n === 1;
        }, 15000, 'the message in %DLQ%OrdRetryG');
        assert.ok(dlq.lines.some((l) => l.startsWith('RECV ') && l.includes(' order-0:2 ')), dlq.out);
    });
});

describe('orderly push consumer across a broker kill -9', { skip }, () => {
    test('after the start the consumer locks its queues again and continues in order, nothing lost', async () => {
        const nsPort = await freePort();
        const port = await freePort();
        const opts = { port, keepDir: true, extraPorts: { namesrvListenPort: nsPort } };
        let sa = await startApogee('standalone', [], opts);
        const dir = sa.dir;
        const ns = `127.0.0.1:${nsPort}`;
        let c;
        let admin;
        try {
            await waitForRoute(nsPort);
            const orders = 8;
            const steps = 30;
            produce(ns, 'OrdCrash', orders, steps);
            c = start('push_consumer', ['-n', ns, '-t', 'OrdCrash', '-g', 'OrdCrashG', '--first', '--orderly',
                '--trace', '--threads', '4', '--delay-us', '30000', '-c', 'rebalanceLockInterval=1000',
                '-c', 'heartbeatBrokerInterval=1000', '--seconds', '120']);
            await until(() => c.spans().length >= 40, 30000, 'consumption to start');
            await sa.stop('SIGKILL');
            const atKill = c.spans().length;
            await sleep(1000);
            sa = await startApogee('standalone', [], { ...opts, dir });
            await until(() => bodiesSeen([c]).size === orders * steps && c.queues() > 0, 90000,
                `all ${orders * steps} messages (${bodiesSeen([c]).size} seen)`);
            assert.ok(c.spans().length > atKill, 'nothing consumed after the restart');
            // The consumer holds every queue again: another client of the group gets none.
            await sleep(2500);
            const held = c.lines.filter((l) => l.startsWith('QUEUES ')).pop().split(' ')[2].split(',')
                .map((x) => x.split(':'));
            assert.ok(held.length >= 4, `queues: ${held}`);
            admin = await RemotingClient.connect(port);
            const mqSet = held.map(([brokerName, q]) => ({ topic: 'OrdCrash', brokerName, queueId: Number(q) }));
            const r = await admin.request(41, {}, Buffer.from(JSON.stringify({ consumerGroup: 'OrdCrashG', clientId: 'intruder', mqSet })));
            assert.equal(r.code, 0, r.remark);
            assert.deepEqual(jsonBody(r).lockOKMQSet, [], 'queues not locked again after the restart');
            const byKey = stepsByKey(allSpans([c]));
            for (const [key, seq] of Object.entries(byKey)) {
                for (let i = 1; i < seq.length; i++)
                    assert.ok(seq[i] >= seq[i - 1], `order ${key} went back: ${seq.join(',')}`);
                assert.deepEqual([...new Set(seq)], [...Array(steps).keys()], `order ${key}: ${seq.join(',')}`);
            }
        } finally {
            admin?.close();
            await c?.stop();
            await sa.stop();
        }
    });
});
