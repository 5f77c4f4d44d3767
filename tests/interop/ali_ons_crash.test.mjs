// Interop (ali-ons 3.12.0): kill -9 of `apogee standalone` under a SYNC_FLUSH send load loses
// no acknowledged message.
//
// Eight async senders share one producer and send as fast as acknowledgements come back. At a
// random moment after the first acknowledgements the broker gets SIGKILL. It is restarted on the
// same data dir and ports; a fresh group consumes every queue from the first offset. Every
// message whose send resolved with SEND_OK (including ones resolved by ali-ons' own retries,
// even against the restarted broker) must be there: acknowledged-but-lost = 0. Messages that
// were stored but never acknowledged may be there too; that is allowed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { onsHarness, ons, until, sleep } from './ons.mjs';

const h = onsHarness();

before(async () => {
    await h.start(['--flushDiskType=SYNC_FLUSH']);
});

after(async () => {
    try {
        await h.stop();
    } finally {
        // ali-ons keeps timers alive; exit with the runner's verdict.
        setImmediate(() => process.exit());
    }
});

test('kill -9 during a SYNC_FLUSH send load: every acknowledged message survives', async () => {
    const topic = 'CrashTopic';
    await h.createTopic(topic, 4);
    const p = await h.newProducer('PG_CRASH', { instanceName: 'p-crash' });
    const acked = new Set();
    let killed = false;
    let failures = 0;
    const pad = 'x'.repeat(200);
    const sender = async (s) => {
        for (let i = 0; !killed; i++) {
            const body = `c${s}-${i}-${pad}`;
            try {
                const r = await p.send(new ons.Message(topic, 'C', Buffer.from(body)));
                if (r.sendStatus === 'SEND_OK') acked.add(body);
            } catch {
                failures++;
            }
        }
    };
    const senders = [];
    for (let s = 0; s < 8; s++) senders.push(sender(s));
    await until(() => acked.size >= 50, 10000, 'the first acknowledgements');
    await sleep(200 + Math.floor(Math.random() * 1000));
    const before = acked.size;
    h.srv.proc.kill('SIGKILL');
    killed = true;
    await h.srv.exited;
    await Promise.race([Promise.allSettled(senders), sleep(15000)]);
    await h.restart('SIGKILL'); // already dead: restart on the same dir and ports
    assert.ok(before >= 50, `only ${before} acknowledged before the kill`);

    const got = new Set();
    const c = h.newConsumer('CG_CRASH_CHECK', 'crash-check');
    c.subscribe(topic, '*', async (msg) => { got.add(msg.body.toString()); });
    const lost = () => [...acked].filter((b) => !got.has(b));
    try {
        await until(() => lost().length === 0, 20000, 'every acknowledged message');
    } catch (e) {
        const l = lost();
        assert.fail(`${l.length} of ${acked.size} acknowledged messages lost ` +
            `(first: ${l.slice(0, 5).map((b) => b.split('-').slice(0, 2).join('-'))}); ` +
            `consumed ${got.size}, send failures ${failures}\n${h.srv.output().slice(-3000)}`);
    }
    await c.close();
});
