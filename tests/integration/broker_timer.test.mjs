// Timer messages (TIMER_DELIVER_MS, TIMER_DELAY_SEC, TIMER_DELAY_MS, __STARTDELIVERTIME),
// driven with raw remoting requests so each step can be checked on the broker itself:
// - a message with a future deliver time is held in rmq_sys_wheel_timer queue 0
//   (TIMER_OUT_MS, REAL_TOPIC, REAL_QID set) and reaches its real queue no earlier than that
//   time (to the millisecond, not rounded to a second), with its UNIQ_KEY, KEYS, TAGS and
//   properties; a time in the past is delivered at once; past timerMaxDelaySec it is refused;
// - pending timers survive a clean stop and kill -9, including those that fall due while the
//   broker is down: after the start every one arrives, none early, none lost (clean stop:
//   exactly once; kill -9: at least once);
// - a timer message with TIMER_DEL_UNIQKEY = "<topic>+<UNIQ_KEY>" cancels the pending timer
//   of that key in its slot (parked in rmq_sys_wheel_timer queue 1, never delivered itself),
//   also across kill -9; with a deliver time in the past it is refused.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, startApogee } from '../lib/proc.mjs';
import { RemotingClient } from '../lib/remoting.mjs';
import { propsString } from '../lib/records.mjs';
import { maxOffset, readAll, until } from '../lib/queues.mjs';

const TIMER = 'rmq_sys_wheel_timer';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function sendHdr(topic, props, queueId = 0) {
    return {
        a: 'PG_TIMER', b: topic, c: 'TBW102', d: '4', e: String(queueId), f: '0',
        g: String(Date.now()), h: '0', i: propsString(props), k: 'false',
    };
}

let srv;
let br;
before(async () => {
    const nsPort = await freePort();
    srv = await startApogee('standalone', ['--timerMaxDelaySec=60'], { extraPorts: { namesrvListenPort: nsPort } });
    br = await RemotingClient.connect(srv.port);
});
after(async () => {
    br?.close();
    await srv?.stop();
});

test('TIMER_DELIVER_MS: held in rmq_sys_wheel_timer, then delivered whole at that millisecond', async () => {
    const topic = 'TimerTopic';
    const uniq = '0A0000010000000000000000000000CD';
    const due = Date.now() + 1750;
    const r = await br.request(310, sendHdr(topic, { TIMER_DELIVER_MS: due, KEYS: 'k1 k2', TAGS: 'TA', UNIQ_KEY: uniq, color: 'red' }, 1), Buffer.from('later'));
    assert.equal(r.code, 0, r.remark);
    assert.equal(r.ext.queueId, '1', 'the reply names the real queue');
    assert.equal(await maxOffset(br, topic, 1), 0, 'not in the real queue yet');
    const held = (await readAll(br, TIMER, 0)).filter((x) => x.props.REAL_TOPIC === topic);
    assert.equal(held.length, 1);
    assert.equal(held[0].props.REAL_QID, '1');
    assert.equal(held[0].props.TIMER_OUT_MS, String(due));
    await until(async () => (await maxOffset(br, topic, 1)) === 1, 5000, 'the delivery');
    const [d] = await readAll(br, topic, 1);
    assert.equal(d.body, 'later');
    assert.ok(d.storeTs >= due, `delivered ${due - d.storeTs} ms early`);
    assert.ok(d.storeTs < due + 300, `delivered ${d.storeTs - due} ms late`);
    for (const k of ['UNIQ_KEY', 'KEYS', 'TAGS', 'color', 'TIMER_DELIVER_MS'])
        assert.equal(d.props[k], held[0].props[k], k);
    assert.equal(d.props.UNIQ_KEY, uniq);
    assert.equal((await readAll(br, topic, 1, 'TA')).length, 1, 'the copy carries the tag hash');
    assert.equal((await readAll(br, topic, 1, 'TB')).length, 0);
});

test('TIMER_DELAY_SEC, TIMER_DELAY_MS and __STARTDELIVERTIME wait; sub-second times are kept', async () => {
    const topic = 'TimerKinds';
    const t0 = Date.now();
    const sends = [
        ['sec', { TIMER_DELAY_SEC: 1 }],
        ['ms', { TIMER_DELAY_MS: 1300 }],
        ['start', { __STARTDELIVERTIME: t0 + 900 }],
    ];
    for (let i = 0; i < 12; i++) sends.push([`r${i}`, { TIMER_DELIVER_MS: t0 + 200 + i * 97 }]);
    for (const [body, props] of sends) {
        const r = await br.request(310, sendHdr(topic, { ...props, KEYS: body }), Buffer.from(body));
        assert.equal(r.code, 0, r.remark);
    }
    const held = new Map((await readAll(br, TIMER, 0)).filter((x) => x.props.REAL_TOPIC === topic).map((x) => [x.body, x]));
    assert.equal(held.size, sends.length);
    assert.ok(Number(held.get('sec').props.TIMER_OUT_MS) >= held.get('sec').storeTs + 1000 - 50);
    assert.equal(held.get('start').props.TIMER_OUT_MS, String(t0 + 900));
    await until(async () => (await maxOffset(br, topic, 0)) === sends.length, 5000, 'every delivery');
    const got = await readAll(br, topic, 0);
    for (const g of got) {
        const due = Number(held.get(g.body).props.TIMER_OUT_MS);
        assert.ok(g.storeTs >= due, `${g.body} ${due - g.storeTs} ms early`);
        assert.ok(g.storeTs < due + 300, `${g.body} ${g.storeTs - due} ms late`);
    }
    // Delivered in deliver-time order.
    const order = got.map((g) => Number(held.get(g.body).props.TIMER_OUT_MS));
    assert.deepEqual(order, [...order].sort((a, b) => a - b));
});

test('a deliver time in the past goes out at once; past timerMaxDelaySec is refused', async () => {
    const topic = 'TimerEdges';
    let r = await br.request(310, sendHdr(topic, { TIMER_DELIVER_MS: Date.now() - 5000 }), Buffer.from('past'));
    assert.equal(r.code, 0, r.remark);
    r = await br.request(310, sendHdr(topic, { TIMER_DELAY_SEC: 0 }), Buffer.from('zero'));
    assert.equal(r.code, 0, r.remark);
    r = await br.request(310, sendHdr(topic, { TIMER_DELIVER_MS: 'soon' }), Buffer.from('garbage'));
    assert.equal(r.code, 0, r.remark);
    assert.equal(await maxOffset(br, topic, 0), 3, 'stored in the topic at once');
    r = await br.request(310, sendHdr(topic, { TIMER_DELAY_SEC: 61 }), Buffer.from('far'));
    assert.equal(r.code, 13, 'MESSAGE_ILLEGAL');
    assert.match(r.remark, /timerMaxDelaySec \(60 s\)/);
    r = await br.request(310, sendHdr(topic, { TIMER_DELAY_SEC: 59 }), Buffer.from('near'));
    assert.equal(r.code, 0, r.remark);
    assert.equal(await maxOffset(br, topic, 0), 3);
});

for (const [signal, flush] of [['SIGTERM', 'ASYNC_FLUSH'], ['SIGKILL', 'ASYNC_FLUSH'], ['SIGKILL', 'SYNC_FLUSH']]) {
    test(`pending timers survive a ${signal} stop (${flush}): none early, none lost, some due while down`, async () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-timer-'));
        const nsPort = await freePort();
        const port = await freePort();
        const opts = { dir, keepDir: true, port, extraPorts: { namesrvListenPort: nsPort } };
        const args = ['--timerFlushIntervalMs=200', `--flushDiskType=${flush}`];
        let s = await startApogee('standalone', args, opts);
        let cl = await RemotingClient.connect(s.port);
        const topic = `TimerSurvive${signal}${flush}`;
        const N = 40;
        const due = new Map();
        try {
            const t0 = Date.now();
            for (let i = 0; i < N; i++) {
                // Spread over 0.8 .. 5.5 s: some go out before the stop, some fall due while
                // the broker is down, the rest after the start.
                const at = t0 + 800 + Math.floor((i * 4700) / N);
                due.set(`m${i}`, at);
                const r = await cl.request(310, sendHdr(topic, { TIMER_DELIVER_MS: at, KEYS: `m${i}` }), Buffer.from(`m${i}`));
                assert.equal(r.code, 0, r.remark);
            }
            await until(async () => (await maxOffset(cl, topic, 0)) >= 5, 4000, 'the first timers');
            const file = path.join(dir, 'config', 'timerProgress.json');
            await until(() => fs.existsSync(file), 3000, 'timerProgress.json');
            await sleep(300);
            assert.ok((await maxOffset(cl, topic, 0)) < N, 'timers are still pending');
            cl.close();
            await s.stop(signal);
            await sleep(1500); // some fall due while the broker is down
            s = await startApogee('standalone', args, opts);
            cl = await RemotingClient.connect(s.port);
            await until(async () => new Set((await readAll(cl, topic, 0)).map((g) => g.body)).size === N,
                10000, 'every timer');
            await sleep(300);
            const got = await readAll(cl, topic, 0);
            const count = new Map();
            for (const g of got) {
                count.set(g.body, (count.get(g.body) ?? 0) + 1);
                assert.ok(g.storeTs >= due.get(g.body), `${g.body} arrived ${due.get(g.body) - g.storeTs} ms early`);
            }
            for (let i = 0; i < N; i++) {
                const n = count.get(`m${i}`) ?? 0;
                if (signal === 'SIGTERM') assert.equal(n, 1, `m${i} exactly once`);
                else assert.ok(n >= 1, `m${i} at least once`);
            }
            // Delivered buckets' files are removed once the progress passes them.
            await sleep(1500);
            const left = fs.readdirSync(path.join(dir, 'timer', 'buckets'));
            assert.ok(left.length <= 1, `bucket files left: ${left}`);
        } finally {
            cl.close();
            await s.stop();
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
}

test('TIMER_DEL_UNIQKEY cancels a pending timer of the same slot, and the cancel survives kill -9', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-timer-del-'));
    const nsPort = await freePort();
    const port = await freePort();
    const opts = { dir, keepDir: true, port, extraPorts: { namesrvListenPort: nsPort } };
    const args = ['--timerFlushIntervalMs=200'];
    let s = await startApogee('standalone', args, opts);
    let cl = await RemotingClient.connect(s.port);
    const topic = 'TimerCancel';
    const uniq = (i) => `0A00000100000000000000000000C${String(i).padStart(3, '0')}`;
    try {
        // Due in the middle of a second, far enough out to stop and start the broker first.
        const due = (Math.floor(Date.now() / 1000) + 5) * 1000 + 500;
        for (const [i, at] of [[1, due], [2, due], [3, due + 100]]) {
            const r = await cl.request(310, sendHdr(topic, { TIMER_DELIVER_MS: at, UNIQ_KEY: uniq(i), KEYS: `t${i}` }), Buffer.from(`t${i}`));
            assert.equal(r.code, 0, r.remark);
        }
        // Cancels: t1 by its key at its deliver time; a key nobody has; t3's key but the
        // wrong topic. A cancel is a timer message itself: with a time in the past it is refused.
        const cancels = [[`${topic}+${uniq(1)}`, due], [`${topic}+${uniq(9)}`, due + 100], [`Other+${uniq(3)}`, due + 100]];
        for (const [k, at] of cancels) {
            const r = await cl.request(310, sendHdr(topic, { TIMER_DELIVER_MS: at, TIMER_DEL_UNIQKEY: k }), Buffer.from('cancel'));
            assert.equal(r.code, 0, r.remark);
        }
        const r = await cl.request(310, sendHdr(topic, { TIMER_DELIVER_MS: Date.now() - 1000, TIMER_DEL_UNIQKEY: `${topic}+${uniq(2)}` }), Buffer.from('late'));
        assert.equal(r.code, 13, 'MESSAGE_ILLEGAL');
        assert.match(r.remark, /TIMER_DEL_UNIQKEY/);
        // Parked in rmq_sys_wheel_timer queue 1, a queue only the broker reads (the topic is
        // registered with one queue, as RocketMQ does).
        assert.equal(await maxOffset(cl, TIMER, 1), 3, 'the cancels are parked in rmq_sys_wheel_timer queue 1');
        assert.equal((await readAll(cl, TIMER, 0)).filter((x) => x.props.REAL_TOPIC === topic).length, 3);
        const delFile = path.join(dir, 'timer', 'buckets', `${Math.floor(due / 60000)}.del`);
        await until(() => fs.existsSync(delFile) && fs.statSync(delFile).size > 0, 3000, 'the slot\'s cancel file');
        const progress = path.join(dir, 'config', 'timerProgress.json');
        await until(() => fs.existsSync(progress) && JSON.parse(fs.readFileSync(progress, 'utf8')).cancelOffset === 3,
            3000, 'cancelOffset 3 in timerProgress.json');
        assert.ok(Date.now() < due - 1500, 'the test machine was too slow to stop before the deliver time');
        cl.close();
        await s.stop('SIGKILL');
        s = await startApogee('standalone', args, opts);
        cl = await RemotingClient.connect(s.port);
        assert.equal(await maxOffset(cl, topic, 0), 0, 'nothing delivered before the deliver time');
        await until(async () => (await maxOffset(cl, topic, 0)) >= 2, 10000, 't2 and t3');
        await sleep(1200);
        const got = (await readAll(cl, topic, 0)).map((g) => g.body).sort();
        assert.deepEqual(got, ['t2', 't3'], 't1 was cancelled; the cancels themselves are not delivered');
    } finally {
        cl.close();
        await s.stop();
        fs.rmSync(dir, { recursive: true, force: true });
    }
});

// timer/buckets/<minute> holds 16-byte entries (i64 deliver ms, i64 commit-log offset, host
// byte order); <minute>.del holds cancels as u16 BE key length, i64 BE slot, key.
function readEntries(file) {
    const b = fs.readFileSync(file);
    const out = [];
    for (let i = 0; i + 16 <= b.length; i += 16) out.push([Number(b.readBigInt64LE(i)), b.readBigInt64LE(i + 8)]);
    return out;
}

test('one bucket file per minute of deliver time; a store in the per-second layout is moved into it at start', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-timer-layout-'));
    const nsPort = await freePort();
    const port = await freePort();
    const opts = { dir, keepDir: true, port, extraPorts: { namesrvListenPort: nsPort } };
    const args = ['--timerFlushIntervalMs=200'];
    let s = await startApogee('standalone', args, opts);
    let cl = await RemotingClient.connect(s.port);
    const topic = 'TimerLayout';
    const uniq = (i) => `0A00000100000000000000000000D${String(i).padStart(3, '0')}`;
    const buckets = path.join(dir, 'timer', 'buckets');
    const slots = path.join(dir, 'timer', 'slots');
    const progress = path.join(dir, 'config', 'timerProgress.json');
    try {
        const t0 = Date.now();
        const base = (Math.floor(t0 / 60000) + 3) * 60000; // a minute at least two ahead
        const far = [base + 100, base + 30000, base + 60000 + 200, base + 60000 + 59999, base + 180000, base + 180001];
        const near = [t0 + 3000, t0 + 3500, t0 + 4000, t0 + 4500];
        const due = new Map();
        for (const [name, list] of [['f', far], ['n', near]]) {
            for (let i = 0; i < list.length; i++) {
                due.set(`${name}${i}`, list[i]);
                const r = await cl.request(310, sendHdr(topic, { TIMER_DELIVER_MS: list[i], UNIQ_KEY: uniq(name === 'f' ? i : 10 + i) }),
                    Buffer.from(`${name}${i}`));
                assert.equal(r.code, 0, r.remark);
            }
        }
        // A cancel of f1 in its second, and one of f0 in another second of f0's minute.
        for (const [i, at] of [[1, far[1]], [0, far[0] + 5000]]) {
            const r = await cl.request(310, sendHdr(topic, { TIMER_DELIVER_MS: at, TIMER_DEL_UNIQKEY: `${topic}+${uniq(i)}` }), Buffer.from('cancel'));
            assert.equal(r.code, 0, r.remark);
        }
        await until(() => {
            if (!fs.existsSync(progress)) return false;
            const p = JSON.parse(fs.readFileSync(progress, 'utf8'));
            return p.enqueueOffset === far.length + near.length && p.cancelOffset === 2;
        }, 5000, 'every timer and cancel parked');
        // One file per minute that has a timer, each holding that minute's entries.
        const minutes = new Map();
        for (const at of [...far, ...near]) minutes.set(Math.floor(at / 60000), (minutes.get(Math.floor(at / 60000)) ?? 0) + 1);
        const files = fs.readdirSync(buckets).filter((f) => !f.endsWith('.del'));
        assert.deepEqual(files.map(Number).sort(), [...minutes.keys()].sort());
        for (const f of files) {
            const e = readEntries(path.join(buckets, f));
            assert.equal(e.length, minutes.get(Number(f)), `entries of minute ${f}`);
            for (const [at] of e) assert.equal(Math.floor(at / 60000), Number(f));
        }
        const del = fs.readFileSync(path.join(buckets, `${Math.floor(base / 60000)}.del`));
        assert.equal(del.length, 2 * (2 + 8 + topic.length + 1 + 32), 'two cancels in the first far minute');
        assert.equal(Number(del.readBigInt64BE(2)), Math.floor(far[1] / 1000), 'slot of the first cancel');
        assert.equal(del.subarray(10, 10 + topic.length + 33).toString(), `${topic}+${uniq(1)}`);
        assert.ok(Date.now() < near[0] - 1000, 'the test machine was too slow to stop before the near timers');
        cl.close();
        await s.stop('SIGTERM');

        // Rewrite the store in the per-second layout: timer/slots/<second> (same entries),
        // <second>.del (u16 BE length + key), progress {"slot": S, "slotDone": D}.
        const p = JSON.parse(fs.readFileSync(progress, 'utf8'));
        fs.mkdirSync(slots);
        for (const f of fs.readdirSync(buckets)) {
            const b = fs.readFileSync(path.join(buckets, f));
            if (f.endsWith('.del')) {
                for (let i = 0; i < b.length;) {
                    const kl = b.readUInt16BE(i);
                    const slot = Number(b.readBigInt64BE(i + 2));
                    fs.appendFileSync(path.join(slots, `${slot}.del`), Buffer.concat([b.subarray(i, i + 2), b.subarray(i + 10, i + 10 + kl)]));
                    i += 10 + kl;
                }
            } else {
                for (let i = 0; i + 16 <= b.length; i += 16) {
                    const slot = Math.floor(Number(b.readBigInt64LE(i)) / 1000);
                    fs.appendFileSync(path.join(slots, `${slot}`), b.subarray(i, i + 16));
                }
            }
        }
        // A leftover of a slot already delivered (below S) must not come back.
        const sBelow = p.bucket * 60 - 1;
        const ghost = Buffer.alloc(16);
        ghost.writeBigInt64LE(BigInt(sBelow * 1000));
        ghost.writeBigInt64LE(0n, 8);
        fs.writeFileSync(path.join(slots, `${sBelow}`), ghost);
        fs.rmSync(buckets, { recursive: true });
        fs.writeFileSync(progress, JSON.stringify({ enqueueOffset: p.enqueueOffset, slot: p.bucket * 60, slotDone: 0, cancelOffset: p.cancelOffset }));

        s = await startApogee('standalone', args, opts);
        cl = await RemotingClient.connect(s.port);
        assert.ok(!fs.existsSync(slots), 'the per-second files are removed');
        const after = fs.readdirSync(buckets).filter((f) => !f.endsWith('.del')).map(Number).sort();
        for (const m of after) assert.ok(minutes.has(m), `bucket ${m}`);
        for (const at of far) assert.ok(after.includes(Math.floor(at / 60000)), `far minute of ${at}`);
        const del2 = fs.readFileSync(path.join(buckets, `${Math.floor(base / 60000)}.del`));
        const recs = (b) => {
            const out = [];
            for (let i = 0; i < b.length; i += 10 + b.readUInt16BE(i)) out.push(b.subarray(i, i + 10 + b.readUInt16BE(i)).toString('hex'));
            return out.sort();
        };
        assert.deepEqual(recs(del2), recs(del), 'the cancels moved with their slots');
        assert.equal(JSON.parse(fs.readFileSync(progress, 'utf8')).bucket, p.bucket);
        await until(async () => (await maxOffset(cl, topic, 0)) >= near.length, 10000, 'the near timers');
        await sleep(500);
        const got = await readAll(cl, topic, 0);
        assert.deepEqual(got.map((g) => g.body).sort(), ['n0', 'n1', 'n2', 'n3'], 'the near timers once each; the far ones still wait');
        for (const g of got) assert.ok(g.storeTs >= due.get(g.body), `${g.body} arrived ${due.get(g.body) - g.storeTs} ms early`);
    } finally {
        cl.close();
        await s.stop();
        fs.rmSync(dir, { recursive: true, force: true });
    }
});
