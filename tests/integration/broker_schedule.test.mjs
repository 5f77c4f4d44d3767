// Delay levels (DELAY property) and retry escalation, driven with raw remoting requests so
// each step can be checked on the broker itself:
// - a message with DELAY=L is held in SCHEDULE_TOPIC_XXXX queue L-1 (REAL_TOPIC/REAL_QID
//   set) and reaches its real queue no earlier than its store time + the level's delay,
//   with its UNIQ_KEY, KEYS, TAGS and properties; a level past the last is clamped;
// - CONSUMER_SEND_MSG_BACK waits at level 3 + reconsumeTimes (delayLevel 0) or the
//   client's level, and goes to %DLQ% at once past maxReconsumeTimes;
// - progress survives a clean stop and kill -9: after the start every pending message
//   arrives once it is due, none early, none lost (kill -9: at least once).
// The broker runs with messageDelayLevel "1s 2s 3s" so the suite stays fast.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, startApogee } from '../lib/proc.mjs';
import { RemotingClient } from '../lib/remoting.mjs';
import { propsString } from '../lib/records.mjs';
import { maxOffset, readAll, until } from '../lib/queues.mjs';

const LEVELS = '--messageDelayLevel=1s 2s 3s';
const DELAY_MS = [1000, 2000, 3000];
const SCHED = 'SCHEDULE_TOPIC_XXXX';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function sendHdr(topic, props, { queueId = 0, reconsumeTimes, maxReconsumeTimes } = {}) {
    const h = {
        a: 'PG_DELAY', b: topic, c: 'TBW102', d: '4', e: String(queueId), f: '0',
        g: String(Date.now()), h: '0', i: propsString(props), k: 'false',
    };
    if (reconsumeTimes !== undefined) h.j = String(reconsumeTimes);
    if (maxReconsumeTimes !== undefined) h.l = String(maxReconsumeTimes);
    return h;
}

let srv;
let br;
before(async () => {
    const nsPort = await freePort();
    srv = await startApogee('standalone', [LEVELS], { extraPorts: { namesrvListenPort: nsPort } });
    br = await RemotingClient.connect(srv.port);
});
after(async () => {
    br?.close();
    await srv?.stop();
});

test('a message with DELAY=2 waits in SCHEDULE_TOPIC_XXXX queue 1, then arrives whole', async () => {
    const topic = 'DelayTopic';
    const uniq = '0A0000010000000000000000000000AB';
    const r = await br.request(310, sendHdr(topic, { DELAY: 2, KEYS: 'k1 k2', TAGS: 'TA', UNIQ_KEY: uniq, color: 'red' }), Buffer.from('later'));
    assert.equal(r.code, 0, r.remark);
    assert.equal(r.ext.queueId, '0', 'the reply names the real queue');
    assert.equal(await maxOffset(br, topic, 0), 0, 'not in the real queue yet');
    const held = await readAll(br, SCHED, 1);
    assert.equal(held.length, 1);
    const s = held[0];
    assert.equal(s.props.REAL_TOPIC, topic);
    assert.equal(s.props.REAL_QID, '0');
    assert.equal(s.props.DELAY, '2');
    await until(async () => (await maxOffset(br, topic, 0)) === 1, 5000, 'the delivery');
    const [d] = await readAll(br, topic, 0);
    assert.equal(d.body, 'later');
    assert.ok(d.storeTs >= s.storeTs + DELAY_MS[1], `delivered ${d.storeTs - s.storeTs} ms after the store`);
    assert.ok(d.storeTs < s.storeTs + DELAY_MS[1] + 1000, `delivered ${d.storeTs - s.storeTs} ms after the store`);
    for (const k of ['UNIQ_KEY', 'KEYS', 'TAGS', 'color', 'REAL_TOPIC', 'REAL_QID'])
        assert.equal(d.props[k], s.props[k], k);
    assert.equal(d.props.UNIQ_KEY, uniq);
    // Progress as RocketMQ reports it: "<next offset to deliver>,<queue max>" per level.
    const info = async () => JSON.parse((await br.request(28, {})).body.toString()).table;
    await until(async () => (await info()).scheduleMessageOffset_2 === '1,1', 2000, 'the runtime info');
    assert.equal((await info()).scheduleMessageOffset_3, '0,0');
    // The tag hash of the copy is the tag's, so a tag subscription finds it.
    assert.equal((await readAll(br, topic, 0, 'TA')).length, 1);
    assert.equal((await readAll(br, topic, 0, 'TB')).length, 0);
    // Past the last level: clamped to it (queue 2); 0 or garbage: no delay.
    assert.equal((await br.request(310, sendHdr('DelayClamp', { DELAY: 99 }), Buffer.from('c'))).code, 0);
    assert.equal((await readAll(br, SCHED, 2)).filter((x) => x.props.REAL_TOPIC === 'DelayClamp').length, 1);
    assert.equal((await br.request(310, sendHdr('DelayNone', { DELAY: 0 }), Buffer.from('n'))).code, 0);
    assert.equal((await br.request(310, sendHdr('DelayNone', { DELAY: 'x' }), Buffer.from('n'))).code, 0);
    assert.equal(await maxOffset(br, 'DelayNone', 0), 2);
});

function physOf(msgId) {
    return Number(BigInt(`0x${msgId.slice(-16)}`));
}

test('CONSUMER_SEND_MSG_BACK waits at level 3 + reconsumeTimes, or the given level; DLQ past the max', async () => {
    const topic = 'BackTopic';
    const group = 'CG_BACK';
    const r = await br.request(10, {
        producerGroup: 'PG', topic, defaultTopic: 'TBW102', defaultTopicQueueNums: '4', queueId: '0',
        sysFlag: '0', bornTimestamp: String(Date.now()), flag: '0',
        properties: propsString({ UNIQ_KEY: '0A0000010000000000000000000000CD', KEYS: 'kb' }),
    }, Buffer.from('back'));
    assert.equal(r.code, 0, r.remark);
    const offset = String(physOf(r.ext.msgId));
    const back = (ext) => br.request(36, { offset, group, originTopic: topic, originMsgId: r.ext.msgId, maxReconsumeTimes: '2', ...ext });
    // delayLevel 0, first failure: level 3 (queue 2).
    const q2 = (await readAll(br, SCHED, 2)).length;
    let b = await back({ delayLevel: '0' });
    assert.equal(b.code, 0, b.remark);
    const held = (await readAll(br, SCHED, 2)).slice(q2);
    assert.equal(held.length, 1);
    assert.equal(held[0].props.REAL_TOPIC, `%RETRY%${group}`);
    assert.equal(held[0].props.DELAY, '3');
    assert.equal(held[0].reconsumeTimes, 1);
    // The client's own level.
    const q0 = (await readAll(br, SCHED, 0)).length;
    b = await back({ delayLevel: '1' });
    assert.equal(b.code, 0, b.remark);
    assert.equal((await readAll(br, SCHED, 0)).length, q0 + 1);
    // Both arrive in %RETRY%CG_BACK, each after its delay.
    const retry = `%RETRY%${group}`;
    await until(async () => {
        let n = 0;
        for (const q of [0]) n += (await readAll(br, retry, q)).length;
        return n === 2;
    }, 6000, 'the retry copies');
    const copies = await readAll(br, retry, 0);
    const byDelay = copies.map((c) => c.props.DELAY).sort();
    assert.deepEqual(byDelay, ['1', '3']);
    for (const c of copies) {
        assert.equal(c.props.RETRY_TOPIC, topic);
        assert.equal(c.props.KEYS, 'kb');
        assert.equal(c.body, 'back');
    }
    const slow = copies.find((c) => c.props.DELAY === '3');
    assert.ok(slow.storeTs >= held[0].storeTs + DELAY_MS[2]);
    // A copy at reconsumeTimes 1 sent back again waits at level 4, clamped to 3.
    b = await br.request(36, { offset: String(slow.physOffset), group, delayLevel: '0', maxReconsumeTimes: '2' });
    assert.equal(b.code, 0, b.remark);
    const again = await readAll(br, SCHED, 2);
    assert.equal(again.at(-1).props.DELAY, '3');
    assert.equal(again.at(-1).reconsumeTimes, 2);
    // Past maxReconsumeTimes: %DLQ% at once, no wait.
    b = await br.request(36, { offset: String(again.at(-1).physOffset), group, delayLevel: '0', maxReconsumeTimes: '2' });
    assert.equal(b.code, 0, b.remark);
    assert.equal(await maxOffset(br, `%DLQ%${group}`, 0), 1);
});

test('a %RETRY% send with DELAY waits; one moved to the DLQ does not', async () => {
    const retry = '%RETRY%CG_RS';
    const before = (await readAll(br, SCHED, 0)).length;
    let r = await br.request(310, sendHdr(retry, { DELAY: 1 }, { reconsumeTimes: 1, maxReconsumeTimes: 3 }), Buffer.from('rs'));
    assert.equal(r.code, 0, r.remark);
    assert.equal((await readAll(br, SCHED, 0)).length, before + 1);
    r = await br.request(310, sendHdr(retry, { DELAY: 1 }, { reconsumeTimes: 4, maxReconsumeTimes: 3 }), Buffer.from('dead'));
    assert.equal(r.code, 0, r.remark);
    assert.equal(await maxOffset(br, '%DLQ%CG_RS', 0), 1);
});

for (const [signal, flush] of [['SIGTERM', 'ASYNC_FLUSH'], ['SIGKILL', 'ASYNC_FLUSH'], ['SIGKILL', 'SYNC_FLUSH']]) {
    test(`pending delayed messages survive a ${signal} stop (${flush}): each arrives once due, none early, none lost`, async () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-sched-'));
        const nsPort = await freePort();
        const port = await freePort();
        const opts = { dir, keepDir: true, port, extraPorts: { namesrvListenPort: nsPort } };
        // flushDelayOffsetInterval 200 ms: the file is written while messages are pending.
        const args = [LEVELS, '--flushDelayOffsetInterval=200', `--flushDiskType=${flush}`];
        let s = await startApogee('standalone', args, opts);
        let cl = await RemotingClient.connect(s.port);
        const topic = `Survive${signal}${flush}`;
        const N = 30;
        try {
            for (let i = 0; i < N; i++) {
                const level = 1 + (i % 3);
                const r = await cl.request(310, sendHdr(topic, { DELAY: level, KEYS: `m${i}` }), Buffer.from(`m${i}`));
                assert.equal(r.code, 0, r.remark);
                await sleep(20);
            }
            // A consumer's send-back pending as well: its retry copy waits at level 3.
            const group = `CG_SURV_${signal}_${flush}`;
            const src = await cl.request(310, sendHdr(`${topic}Src`, { KEYS: 'back' }), Buffer.from('back'));
            assert.equal(src.code, 0, src.remark);
            const b = await cl.request(36, { offset: String(physOf(src.ext.msgId)), group, delayLevel: '0', maxReconsumeTimes: '5' });
            assert.equal(b.code, 0, b.remark);
            const heldBack = (await readAll(cl, SCHED, 2)).find((x) => x.props.REAL_TOPIC === `%RETRY%${group}`);
            assert.ok(heldBack, 'the send-back copy is held at level 3');
            const held = [0, 1, 2].map(async (q) => readAll(cl, SCHED, q));
            const sched = (await Promise.all(held)).flat().filter((x) => x.props.REAL_TOPIC === topic);
            assert.equal(sched.length, N);
            const due = new Map(sched.map((x) => [x.body, x.storeTs + DELAY_MS[Number(x.props.DELAY) - 1]]));
            // Level 1 messages go out, the others are still pending.
            await until(async () => (await maxOffset(cl, topic, 0)) >= N / 3, 3000, 'the first level');
            // The file is written once the copies it covers are flushed (flushIntervalCommitLog).
            const file = path.join(dir, 'config', 'delayOffset.json');
            const saved = () => (fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : null);
            await until(() => Number(saved()?.offsetTable['1']) > 0, 3000, 'delayOffset.json');
            assert.ok((await maxOffset(cl, topic, 0)) < N, 'messages are still pending');
            assert.deepEqual(Object.keys(saved().offsetTable).sort(), ['1', '2', '3']);
            cl.close();
            await s.stop(signal);
            s = await startApogee('standalone', args, opts);
            cl = await RemotingClient.connect(s.port);
            // (After kill -9 copies made since the last write of delayOffset.json are made
            // again, so count distinct bodies, not records.)
            await until(async () => new Set((await readAll(cl, topic, 0)).map((g) => g.body)).size === N,
                8000, 'every message');
            await sleep(500);
            const got = await readAll(cl, topic, 0);
            const count = new Map();
            for (const g of got) {
                count.set(g.body, (count.get(g.body) ?? 0) + 1);
                assert.ok(g.storeTs >= due.get(g.body), `${g.body} arrived ${due.get(g.body) - g.storeTs} ms early`);
            }
            await until(async () => (await readAll(cl, `%RETRY%${group}`, 0)).length > 0, 5000, 'the retry copy');
            const retried = await readAll(cl, `%RETRY%${group}`, 0);
            if (signal === 'SIGTERM') assert.equal(retried.length, 1);
            for (const r of retried) {
                assert.equal(r.body, 'back');
                assert.equal(r.reconsumeTimes, 1);
                assert.ok(r.storeTs >= heldBack.storeTs + DELAY_MS[2], 'the retry copy is not early');
            }
            for (let i = 0; i < N; i++) {
                const n = count.get(`m${i}`) ?? 0;
                if (signal === 'SIGTERM') assert.equal(n, 1, `m${i} exactly once`);
                else assert.ok(n >= 1, `m${i} at least once`);
            }
        } finally {
            cl.close();
            await s.stop();
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
}
