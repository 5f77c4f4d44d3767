// Sends pipelined in one TCP write: the broker stores the single-message sends parsed from
// one read with one append (coalesced sends, broker_send.c). Every send must still get its
// own answer with consecutive queue offsets, a pull in the middle of the pipeline must see
// every send before it, and a malformed frame after some sends closes the connection
// without losing the sends that came before it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startApogee, freePort } from '../lib/proc.mjs';
import { RemotingClient } from '../lib/remoting.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function sendHdr(topic, queueId) {
    return {
        a: 'PG_PIPE', b: topic, c: 'TBW102', d: '4', e: String(queueId), f: '0',
        g: String(Date.now()), h: '0', i: '', j: '0', k: 'false',
    };
}

function pullHdr(topic, queueId, offset, max) {
    return {
        consumerGroup: 'CG_PIPE', topic, queueId: String(queueId), queueOffset: String(offset),
        maxMsgNums: String(max), sysFlag: '0', commitOffset: '0', suspendTimeoutMillis: '0',
        subscription: '*', subVersion: '0', expressionType: 'TAG',
    };
}

// Bodies of the stored records in a pull answer (IPv4 hosts: body length at byte 84).
function bodies(buf) {
    const out = [];
    for (let p = 0; p < buf.length;) {
        const total = buf.readInt32BE(p);
        const len = buf.readInt32BE(p + 84);
        out.push(buf.subarray(p + 88, p + 88 + len).toString());
        p += total;
    }
    return out;
}

// Every body of a queue from offset 0, page by page, waiting up to 2 s for `want` of them.
async function pullAll(cl, topic, queueId, want) {
    let got = [];
    for (let k = 0; k < 100 && got.length < want; k++) {
        const q = await cl.request(11, pullHdr(topic, queueId, got.length, 32));
        if (q.code === 0) got = got.concat(bodies(q.body));
        else await sleep(20);
    }
    return got;
}

for (const flush of ['ASYNC_FLUSH', 'SYNC_FLUSH'])
test(`${flush}: pipelined sends with a pull in the middle: own answers, in order, nothing lost`, async () => {
    const nsPort = await freePort();
    const srv = await startApogee('standalone', [`--flushDiskType=${flush}`], {
        extraPorts: { namesrvListenPort: nsPort },
    });
    const br = await RemotingClient.connect(srv.port);
    const br2 = await RemotingClient.connect(srv.port);
    try {
        const first = await br.request(310, sendHdr('PIPE', 0), Buffer.from('init'));
        assert.equal(first.code, 0, first.remark);
        assert.equal(first.ext.queueOffset, '0');

        br.sock.cork();
        const sends1 = [];
        for (let i = 0; i < 50; i++) sends1.push(br.request(310, sendHdr('PIPE', 0), Buffer.from(`m${i}`)));
        const pull = br.request(11, pullHdr('PIPE', 0, 20, 32));
        const sends2 = [];
        for (let i = 50; i < 100; i++) sends2.push(br.request(310, sendHdr('PIPE', 0), Buffer.from(`m${i}`)));
        br.oneway(310, sendHdr('PIPE', 0), Buffer.from('oneway'));
        br.sock.uncork();

        const r1 = await Promise.all(sends1);
        const p = await pull;
        const r2 = await Promise.all(sends2);
        [...r1, ...r2].forEach((r, i) => {
            assert.equal(r.code, 0, r.remark);
            assert.equal(r.ext.queueOffset, String(i + 1));
            assert.equal(r.ext.queueId, '0');
            assert.match(r.ext.msgId, /^[0-9A-F]{32}$/);
        });
        assert.equal(new Set([...r1, ...r2].map((r) => r.ext.msgId)).size, 100);
        // The pull was parsed after the first 50 sends: it sees all of them, up to m49 at
        // queue offset 50 (a pull answers at most 32 messages).
        assert.equal(p.code, 0, p.remark);
        assert.deepEqual(bodies(p.body), Array.from({ length: 31 }, (_, i) => `m${i + 19}`));

        const all = await pullAll(br, 'PIPE', 0, 102);
        const want = ['init'];
        for (let i = 0; i < 100; i++) want.push(`m${i}`);
        want.push('oneway');
        assert.deepEqual(all, want);

        // Sends followed by garbage in the same write: the connection is closed, the sends
        // before the garbage are stored.
        br2.sock.cork();
        for (let i = 0; i < 10; i++) br2.request(310, sendHdr('PIPE', 1), Buffer.from(`g${i}`)).catch(() => {});
        br2.writeRaw(Buffer.from([0, 0, 0, 8, 0xff, 0, 0, 200, 1, 2, 3, 4]));
        br2.sock.uncork();
        await br2.closed;
        const stored = await pullAll(br, 'PIPE', 1, 10);
        assert.deepEqual(stored, Array.from({ length: 10 }, (_, i) => `g${i}`));
        await srv.waitOutput(/closing .*(bad|malformed) frame/i);
    } finally {
        await br.close();
        await br2.close();
        await srv.stop();
    }
});

// Long polling: a PULL_MESSAGE with the suspend flag (sysFlag 2) on a queue with nothing new
// is parked, answered as soon as a message arrives (not when suspendTimeoutMillis runs out),
// and a parked pull that nothing arrives for is answered PULL_NOT_FOUND (19) at its deadline.
test('a parked pull is answered when a message arrives, not at its suspend deadline', async () => {
    const nsPort = await freePort();
    const srv = await startApogee('standalone', [], { extraPorts: { namesrvListenPort: nsPort } });
    const consumer = await RemotingClient.connect(srv.port);
    const producer = await RemotingClient.connect(srv.port);
    try {
        const init = await producer.request(310, sendHdr('LPOLL', 0), Buffer.from('init'));
        assert.equal(init.code, 0, init.remark);
        const longPull = (offset, suspend) => consumer.request(11,
            { ...pullHdr('LPOLL', 0, offset, 32), sysFlag: '2', suspendTimeoutMillis: String(suspend) },
            null, { timeoutMs: suspend + 10000 });

        let answered = false;
        const parked = longPull(1, 10000).then((r) => { answered = true; return r; });
        await sleep(500);
        assert.equal(answered, false, 'a pull with nothing to read is parked, not answered at once');
        const sentAt = Date.now();
        const late = await producer.request(310, sendHdr('LPOLL', 0), Buffer.from('late'));
        assert.equal(late.code, 0, late.remark);
        const r = await parked;
        const waited = Date.now() - sentAt;
        assert.equal(r.code, 0, r.remark);
        assert.deepEqual(bodies(r.body), ['late']);
        assert.ok(waited < 3000, `answered ${waited} ms after the send; its suspend time was 10 s`);

        const started = Date.now();
        const empty = await longPull(2, 1500);
        const took = Date.now() - started;
        assert.equal(empty.code, 19, `nothing arrived: PULL_NOT_FOUND, got ${empty.code} ${empty.remark}`);
        assert.ok(took >= 1300, `answered after ${took} ms, before its 1.5 s suspend time`);
    } finally {
        await consumer.close();
        await producer.close();
        await srv.stop();
    }
});
