// LOCK_BATCH_MQ (41) and UNLOCK_BATCH_MQ (42) on the raw protocol, as an orderly
// consumer uses them: one holder per (group, queue), the answer lists only the
// queues the caller now holds (lockOKMQSet), a holder's lease lapses after
// rebalanceLockMaxLiveTime without renewal and another client takes the queue over,
// UNLOCK releases only the caller's own locks, and a holder whose connection dies
// or who unregisters gives its queues up at once.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, startApogee } from '../lib/proc.mjs';
import { RemotingClient, jsonBody } from '../lib/remoting.mjs';

const LOCK = 41;
const UNLOCK = 42;
const LEASE_MS = 3000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let srv;
const conns = [];
before(async () => {
    const nsPort = await freePort();
    srv = await startApogee('standalone', [`--rebalanceLockMaxLiveTime=${LEASE_MS}`],
        { extraPorts: { namesrvListenPort: nsPort } });
});
after(async () => {
    for (const c of conns) c.close();
    await srv?.stop();
});

async function connect() {
    const c = await RemotingClient.connect(srv.port);
    conns.push(c);
    return c;
}

const mq = (queueId, topic = 'TopicLock') => ({ topic, brokerName: 'broker-a', queueId });
function body(group, clientId, qids) {
    return Buffer.from(JSON.stringify({ consumerGroup: group, clientId, mqSet: qids.map((q) => mq(q)) }));
}

// Locks qids for clientId; returns the queue ids granted, sorted.
async function lock(c, group, clientId, qids) {
    // A generous timeout: the suite also runs against the ASan build on a loaded machine.
    const r = await c.request(LOCK, {}, body(group, clientId, qids), { timeoutMs: 15000 });
    assert.equal(r.code, 0, r.remark);
    const set = jsonBody(r).lockOKMQSet;
    for (const m of set) {
        assert.equal(m.topic, 'TopicLock');
        assert.equal(m.brokerName, 'broker-a');
    }
    return set.map((m) => m.queueId).sort((a, b) => a - b);
}

async function unlock(c, group, clientId, qids) {
    const r = await c.request(UNLOCK, {}, body(group, clientId, qids));
    assert.equal(r.code, 0, r.remark);
}

test('one holder per queue; the answer lists what the caller holds; unlock by the holder only', async () => {
    const a = await connect();
    const b = await connect();
    assert.deepEqual(await lock(a, 'G1', 'A', [0, 1]), [0, 1]);
    assert.deepEqual(await lock(b, 'G1', 'B', [0, 1, 2]), [2]);
    assert.deepEqual(await lock(a, 'G1', 'A', [0, 1, 2]), [0, 1]); // renewal; 2 is B's
    // Another group is independent.
    assert.deepEqual(await lock(b, 'G1other', 'B', [0, 1]), [0, 1]);
    // B cannot release A's queue; A can.
    await unlock(b, 'G1', 'B', [0]);
    assert.deepEqual(await lock(b, 'G1', 'B', [0]), []);
    await unlock(a, 'G1', 'A', [0]);
    assert.deepEqual(await lock(b, 'G1', 'B', [0]), [0]);
    assert.deepEqual(await lock(a, 'G1', 'A', [0]), []);
});

test('a lease lapses after rebalanceLockMaxLiveTime without renewal, then another client takes over', async () => {
    const a = await connect();
    const b = await connect();
    assert.deepEqual(await lock(a, 'G2', 'A', [5, 6]), [5, 6]);
    // A renews queue 6 halfway; queue 5 is left to lapse.
    await sleep(LEASE_MS / 2);
    assert.deepEqual(await lock(a, 'G2', 'A', [6]), [6]);
    assert.deepEqual(await lock(b, 'G2', 'B', [5, 6]), []);
    await sleep(LEASE_MS / 2 + 400);
    assert.deepEqual(await lock(b, 'G2', 'B', [5, 6]), [5]);
    assert.deepEqual(await lock(a, 'G2', 'A', [5, 6]), [6]);
});

test('a holder whose connection dies gives up its queues at once', async () => {
    const a = await connect();
    const b = await connect();
    assert.deepEqual(await lock(a, 'G3', 'A', [7, 8]), [7, 8]);
    assert.deepEqual(await lock(b, 'G3', 'B', [7, 8]), []);
    await a.close();
    let got = [];
    const until = Date.now() + 1000; // well inside the lease
    while (got.length < 2 && Date.now() < until) {
        got = await lock(b, 'G3', 'B', [7, 8]);
        if (got.length < 2) await sleep(20);
    }
    assert.deepEqual(got, [7, 8]);
});

test('a consumer that unregisters gives up its queues; a bad body is refused', async () => {
    const a = await connect();
    const b = await connect();
    const hb = {
        clientID: 'A4', producerDataSet: [],
        consumerDataSet: [{
            groupName: 'G4', consumeType: 'CONSUME_PASSIVELY', messageModel: 'CLUSTERING',
            consumeFromWhere: 'CONSUME_FROM_LAST_OFFSET', unitMode: false,
            subscriptionDataSet: [{ topic: 'TopicLock', subString: '*', tagsSet: [], codeSet: [], subVersion: 0 }],
        }],
    };
    let r = await a.request(34, {}, Buffer.from(JSON.stringify(hb)));
    assert.equal(r.code, 0, r.remark);
    assert.deepEqual(await lock(a, 'G4', 'A4', [3]), [3]);
    assert.deepEqual(await lock(b, 'G4', 'B4', [3]), []);
    r = await a.request(35, { clientID: 'A4', consumerGroup: 'G4' });
    assert.equal(r.code, 0, r.remark);
    assert.deepEqual(await lock(b, 'G4', 'B4', [3]), [3]);

    r = await b.request(LOCK, {}, Buffer.from('{"clientId":"B4"}'));
    assert.notEqual(r.code, 0);
    assert.match(r.remark, /consumerGroup/);
});

test('a consumer expired from the client table (no heartbeat for channelNotActiveInterval) gives up its queues', async () => {
    // Its own broker: a lease far longer than the test, clients expired after 1 s of
    // silence (the expiry job runs every 10 s).
    const nsPort = await freePort();
    const b2 = await startApogee('standalone', ['--channelNotActiveInterval=1000'],
        { extraPorts: { namesrvListenPort: nsPort } });
    const a = await RemotingClient.connect(b2.port);
    const b = await RemotingClient.connect(b2.port);
    try {
        const hb = {
            clientID: 'A5', producerDataSet: [],
            consumerDataSet: [{
                groupName: 'G5', consumeType: 'CONSUME_PASSIVELY', messageModel: 'CLUSTERING',
                consumeFromWhere: 'CONSUME_FROM_LAST_OFFSET', unitMode: false, subscriptionDataSet: [],
            }],
        };
        assert.equal((await a.request(34, {}, Buffer.from(JSON.stringify(hb)))).code, 0);
        assert.deepEqual(await lock(a, 'G5', 'A5', [1]), [1]);
        assert.deepEqual(await lock(b, 'G5', 'B5', [1]), []);
        // A stays connected but silent; within one expiry period its lock is gone.
        const t0 = Date.now();
        let got = [];
        while (!got.length && Date.now() - t0 < 15000) {
            await sleep(500);
            got = await lock(b, 'G5', 'B5', [1]);
        }
        assert.deepEqual(got, [1], 'the silent consumer kept its lock');
    } finally {
        a.close();
        b.close();
        await b2.stop();
    }
});
