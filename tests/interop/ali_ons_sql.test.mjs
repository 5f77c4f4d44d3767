// Interop (ali-ons 3.12.0): SQL92 subscriptions. ali-ons subscribes with SQL92 when the
// expression is an object, `subscribe(topic, { expressionType: 'SQL92', subString }, fn)`:
// its heartbeat carries the expression with expressionType SQL92 and its pulls send both.
// It has no SQL evaluator and filters nothing itself (its tag set is empty), so only the
// broker's filter keeps non-matching messages away: the consumer must see exactly the
// messages whose user properties match. The broker runs with enablePropertyFilter=true.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { onsHarness, ons, until, sleep } from './ons.mjs';

const h = onsHarness();

before(async () => {
    await h.start(['--enablePropertyFilter=true']);
});

after(async () => {
    try {
        await h.stop();
    } finally {
        // ali-ons keeps timers alive; exit with the runner's verdict.
        setImmediate(() => process.exit());
    }
});

test('an ali-ons SQL92 subscriber receives exactly the messages whose properties match', async () => {
    const topic = 'SqlTopic';
    await h.createTopic(topic, 4);
    const p = await h.newProducer('PG_SQL', { instanceName: 'p-sql' });
    const sql = "price > 50 AND (region = 'eu' OR region IS NULL)";
    const got = [];
    h.newConsumer('CG_SQL', 'sql-1').subscribe(topic, { expressionType: 'SQL92', subString: sql },
        async (msg) => { got.push(msg.body.toString()); });
    await sleep(1500);
    const want = [];
    for (let i = 0; i < 100; i++) {
        const m = new ons.Message(topic, 'S', Buffer.from(`s${i}`));
        m.properties.price = String(i);
        if (i % 4) m.properties.region = i % 4 === 1 ? 'eu' : 'us';
        if (i > 50 && (i % 4 === 0 || i % 4 === 1)) want.push(`s${i}`);
        const r = await p.send(m);
        assert.equal(r.sendStatus, 'SEND_OK');
    }
    await until(() => got.length >= want.length, 20000, 'the matching messages');
    await sleep(1000); // anything else would have arrived by now
    assert.deepEqual([...got].sort(), [...want].sort());
});
