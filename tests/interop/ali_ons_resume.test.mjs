// Interop (ali-ons 3.12.0): consumers resume from their committed offsets, after a consumer
// restart and after a graceful broker restart; and commit while they run.
//
// Why a few duplicates are allowed: ali-ons commits offsets to the broker when it closes
// (persistAll: oneway UPDATE_CONSUMER_OFFSET per queue, then UNREGISTER_CLIENT on the same
// connection). It consumes one message at a time per topic (parallelConsumeLimit 1) and only
// advances its in-memory offset after the handler returns, so the message whose handler is
// running while close() persists is handled but not committed and comes again to the next
// member. That is at most one per subscribed topic (plus its %RETRY% topic): we allow 4.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { queueOffsets } from '../lib/remoting.mjs';
import { onsHarness, ons, until, sleep } from './ons.mjs';

const h = onsHarness();
const MAX_DUPS = 4;

before(async () => {
    // A long offset flush interval: offsets must reach disk through the shutdown path.
    await h.start(['--flushConsumerOffsetInterval=600000']);
});

after(async () => {
    try {
        await h.stop();
    } finally {
        // ali-ons keeps timers alive; exit with the runner's verdict.
        setImmediate(() => process.exit());
    }
});

async function sendRange(p, topic, from, to) {
    for (let i = from; i < to; i++) {
        const r = await p.send(new ons.Message(topic, 'T', Buffer.from(`m${i}`)));
        assert.equal(r.sendStatus, 'SEND_OK');
    }
}

// Consumes with a fresh member of `group` until it has seen at least `atLeast`, then closes.
async function consumeSome(group, inst, topic, atLeast) {
    const got = new Set();
    let open;
    const gate = new Promise((r) => (open = r));
    const c = h.newConsumer(group, inst);
    c.subscribe(topic, '*', async (msg) => {
        // Past the quota the handler stalls until close; what it held is not counted as
        // consumed (its offset is never committed) and must come to the next member.
        if (got.size >= atLeast) return gate;
        got.add(msg.body.toString());
    });
    await until(() => got.size >= atLeast, 20000, `${atLeast} messages for ${inst}`);
    await c.close();
    open();
    return got;
}

async function consumeRest(group, inst, topic, first, total) {
    const got = new Set();
    const c = h.newConsumer(group, inst);
    c.subscribe(topic, '*', async (msg) => { got.add(msg.body.toString()); });
    const all = () => {
        for (let i = 0; i < total; i++) if (!first.has(`m${i}`) && !got.has(`m${i}`)) return false;
        return true;
    };
    await until(all, 20000, `${inst} to receive what the first member did not`);
    await sleep(1500); // anything already consumed would come now
    await c.close();
    const dups = [...got].filter((b) => first.has(b));
    assert.ok(dups.length <= MAX_DUPS,
        `${dups.length} of ${first.size} already-consumed messages came again: ${dups.slice(0, 10)}`);
    return got;
}

test('a consumer that closes and a new member of its group resume from the committed offset',
    async () => {
        const topic = 'ResumeTopic';
        await h.createTopic(topic, 4);
        const p = await h.newProducer('PG_RESUME', { instanceName: 'p-resume' });
        await sendRange(p, topic, 0, 200);
        const first = await consumeSome('CG_RESUME', 'resume-1', topic, 80);
        assert.ok(first.size < 200, 'the first member should not have consumed everything');
        await sendRange(p, topic, 200, 300);
        const second = await consumeRest('CG_RESUME', 'resume-2', topic, first, 300);
        assert.equal(new Set([...first, ...second]).size, 300);
    });

test('committed offsets survive a graceful broker restart (SIGTERM)', async () => {
    const topic = 'RestartTopic';
    await h.createTopic(topic, 4);
    const p = await h.newProducer('PG_RESTART', { instanceName: 'p-restart-1' });
    await sendRange(p, topic, 0, 200);
    const first = await consumeSome('CG_RESTART', 'restart-1', topic, 80);
    await p.close();
    await sleep(200); // the oneway offset commits are in before the unregister reply
    const r = await h.restart('SIGTERM');
    assert.equal(r.code, 0, `graceful stop exit ${r.code}/${r.sig}:\n${r.output.slice(-4000)}`);
    const p2 = await h.newProducer('PG_RESTART2', { instanceName: 'p-restart-2' });
    await sendRange(p2, topic, 200, 300);
    const second = await consumeRest('CG_RESTART', 'restart-2', topic, first, 300);
    assert.equal(new Set([...first, ...second]).size, 300);
});

// ali-ons commits on a timer too (persistConsumerOffsetInterval, here 1 s): while the consumer
// runs, the broker's committed offsets (QUERY_CONSUMER_OFFSET) reach each queue's max offset
// once everything is consumed, and move on with the next messages.
test('committed offsets reach the broker while the consumer runs', async () => {
    const topic = 'RunningTopic';
    const group = 'CG_RUNNING';
    await h.createTopic(topic, 4);
    const p = await h.newProducer('PG_RUNNING', { instanceName: 'p-running' });
    await sendRange(p, topic, 0, 100);
    const got = new Set();
    const c = h.newConsumer(group, 'running-1', { persistConsumerOffsetInterval: 1000 });
    c.subscribe(topic, '*', async (msg) => { got.add(msg.body.toString()); });
    for (const total of [100, 160]) {
        if (total > 100) await sendRange(p, topic, 100, total);
        await until(() => got.size >= total, 20000, `${total} messages consumed`);
        let offs = [];
        await until(async () => {
            offs = await queueOffsets(h.admin, group, topic, 4);
            return offs.every((o) => o.committed === o.max);
        }, 8000, () => `committed offsets at the max offsets after ${total} (last seen ` +
            `${JSON.stringify(offs)})`);
    }
    await c.close();
});
