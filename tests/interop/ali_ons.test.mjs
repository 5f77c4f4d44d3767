// Interop: the npm `ali-ons` 3.12.0 RocketMQ client against `apogee standalone`.
//
// Notes on ali-ons (read from its source): it needs `nameSrv` (a plain
// NameServer address) plus a dummy `httpclient`; no accessKey is needed
// (without one it signs nothing). It speaks JSON headers only, version 121,
// SEND_MESSAGE_V2 for sends, compresses bodies >= compressMsgBodyOverHowmuch
// (4 KiB) with zlib, and does NOT fall back to TBW102 when a topic has no
// route (it throws on TOPIC_NOT_EXIST), so these tests create their topics
// with UPDATE_AND_CREATE_TOPIC first. It ignores NOTIFY_CONSUMER_IDS_CHANGED
// and rebalances on a timer (rebalanceInterval), so the tests shorten it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { onsHarness, ons, until, sleep } from './ons.mjs';

const { Message } = ons;
const h = onsHarness();

before(async () => {
    await h.start();
});

after(async () => {
    try {
        await h.stop();
    } finally {
        // ali-ons keeps timers and its shared inner producer alive; exit with the runner's verdict.
        setImmediate(() => process.exit());
    }
});

test('10,000 messages with tags, keys and properties arrive intact; two groups each get all', async () => {
    const topic = 'InteropAll';
    await h.createTopic(topic);
    const p = await h.newProducer('PG_ALL');
    const N = 10000;
    const sent = new Map();
    for (let i = 0; i < N; i++) {
        const m = new Message(topic, i % 3 === 0 ? 'TagA' : 'TagB', Buffer.from(`body-${i}`));
        m.keys = [`key-${i}`];
        m.properties.userProp = `value-${i}`;
        const r = await p.send(m);
        assert.equal(r.sendStatus, 'SEND_OK');
        assert.match(r.msgId, /^[0-9A-F]{32}$/);
        sent.set(`body-${i}`, i);
    }
    const groups = ['CG_ALL_1', 'CG_ALL_2'];
    const got = groups.map(() => new Map());
    groups.forEach((g, gi) => {
        const c = h.newConsumer(g, `inst-${g}`);
        c.subscribe(topic, '*', async (msg) => {
            const body = msg.body.toString();
            const i = sent.get(body);
            assert.notEqual(i, undefined, `unexpected body ${body}`);
            assert.equal(msg.tags, i % 3 === 0 ? 'TagA' : 'TagB');
            assert.equal(msg.keys, `key-${i}`);
            assert.equal(msg.properties.userProp, `value-${i}`);
            got[gi].set(body, true);
        });
    });
    await until(() => got.every((m) => m.size === N), 60000, 'both groups to receive everything');
});

test('subscription "TagA || TagB" receives only those tags', async () => {
    const topic = 'InteropTags';
    await h.createTopic(topic);
    const p = await h.newProducer('PG_TAGS');
    const tags = ['TagA', 'TagB', 'TagC', 'Aa', 'BB'];
    for (let i = 0; i < 100; i++)
        await p.send(new Message(topic, tags[i % tags.length], Buffer.from(`t${i}`)));
    const seen = [];
    const c = h.newConsumer('CG_TAGS', 'inst-tags');
    c.subscribe(topic, 'TagA || TagB', async (msg) => { seen.push(msg.tags); });
    await until(() => seen.length >= 40, 30000, '40 TagA/TagB messages');
    await sleep(1500);
    assert.equal(seen.length, 40);
    assert.ok(seen.every((t) => t === 'TagA' || t === 'TagB'));
});

test('two consumers in one group split the queues and together receive everything', async () => {
    const topic = 'InteropSplit';
    await h.createTopic(topic, 4);
    const p = await h.newProducer('PG_SPLIT');
    const got = [new Set(), new Set()];
    for (const i of [0, 1]) {
        const c = h.newConsumer('CG_SPLIT', `split-${i}`);
        c.subscribe(topic, '*', async (msg) => { got[i].add(msg.body.toString()); });
    }
    await sleep(3000); // both members heartbeat and rebalance
    for (let i = 0; i < 400; i++) await p.send(new Message(topic, 'T', Buffer.from(`s${i}`)));
    await until(() => got[0].size + got[1].size >= 400, 30000, 'all 400 messages');
    const all = new Set([...got[0], ...got[1]]);
    assert.equal(all.size, 400);
    assert.ok(got[0].size > 0 && got[1].size > 0, `split ${got[0].size}/${got[1].size}`);
});

test('a 4 MiB body is accepted, a larger one is refused with a remark', async () => {
    const topic = 'InteropBig';
    await h.createTopic(topic, 1);
    const p = await h.newProducer('PG_BIG', { compressMsgBodyOverHowmuch: 1 << 30 });
    const ok = await p.send(new Message(topic, 'Big', Buffer.alloc(4 * 1024 * 1024, 7)));
    assert.equal(ok.sendStatus, 'SEND_OK');
    await assert.rejects(p.send(new Message(topic, 'Big', Buffer.alloc(4 * 1024 * 1024 + 1, 7))),
        (e) => e.code === 13 && /maxMessageSize/.test(e.message));
});

test('garbage bytes and oversized frames close only that connection', async () => {
    const topic = 'InteropGarbage';
    await h.createTopic(topic, 1);
    const p = await h.newProducer('PG_GARBAGE');
    for (const bytes of [Buffer.from([0x7f, 0xff, 0xff, 0xff, 1, 2, 3]),
        Buffer.from('GET / HTTP/1.1\r\n\r\n'), Buffer.from([0, 0, 0, 1, 0xff])]) {
        const s = net.connect(h.port, '127.0.0.1');
        s.on('error', () => {});
        await new Promise((r) => s.once('connect', r));
        s.write(bytes);
        await new Promise((r, j) => {
            const t = setTimeout(() => j(new Error('garbage connection was not closed')), 5000);
            s.once('close', () => { clearTimeout(t); r(); });
        });
    }
    const r = await p.send(new Message(topic, 'x', Buffer.from('still works')));
    assert.equal(r.sendStatus, 'SEND_OK');
});

test('unknown request codes get REQUEST_CODE_NOT_SUPPORTED naming the code', async () => {
    const r = await h.admin.request(9999, {});
    assert.equal(r.code, 3);
    assert.match(r.remark, /9999/);
});
