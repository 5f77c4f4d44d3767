// Message search by topic and stored-time range without a key (GET /api/messages?topic=&begin=
// &end=, docs/http-api.md) against `apogee standalone`: an ali-ons producer sends messages in
// three separate time windows over four queues; each window's search answers exactly its
// messages, oldest first; a range with none answers none; max cuts the list short and says so;
// a search stops after about 8 MiB, still listing the oldest;
// bad input is answered 400 (404 for an unknown topic) with what to change. ~10 s.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { freePort, startStandaloneRouted, waitForPort } from '../lib/proc.mjs';
import { until } from '../lib/console.mjs';

const require = createRequire(import.meta.url);
const TOPIC = 'HS_RANGE';
const QUEUES = 4;
const PER_WINDOW = 6;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let sa;
let ns;
let base;
const windows = []; // [{ begin, end, ids: [offset msgId in send order] }]

// method path [body] -> { status, json, text }
async function api(baseUrl, method, p, body) {
    const res = await fetch(baseUrl + p, { method, body: body && JSON.stringify(body),
        headers: body ? { 'content-type': 'application/json' } : {} });
    const text = await res.text();
    return { status: res.status, json: text.startsWith('{') ? JSON.parse(text) : null, text };
}
const call = (p) => api(base, 'GET', p);
const search = (begin, end, extra = '') => call(`/api/messages?topic=${TOPIC}&begin=${begin}&end=${end}${extra}`);

before(async () => {
    const httpPort = await freePort();
    ({ sa, ns } = await startStandaloneRouted([`--httpListenPort=${httpPort}`]));
    await waitForPort(httpPort, 10000, sa.proc);
    base = `http://127.0.0.1:${httpPort}`;
    const r = await api(base, 'POST', '/api/topics', { topic: TOPIC, queueNums: QUEUES });
    assert.equal(r.status, 200, r.text);
    await until('the NameServer has the route', async () => (await call(`/api/topics/${TOPIC}/route`)).status === 200);

    const ons = require('ali-ons');
    const p = new ons.Producer({ nameSrv: ns, httpclient: {}, producerGroup: 'PG_HS_RANGE',
        logger: { info() {}, warn() {}, error() {}, debug() {} } });
    p.on('error', () => {});
    await p.ready();
    try {
        for (let w = 0; w < 3; w++) {
            await sleep(40); // no window shares a millisecond with the next
            const win = { begin: Date.now(), ids: [], queues: new Set() };
            for (let i = 0; i < PER_WINDOW; i++) {
                const m = new ons.Message(TOPIC, `W${w}`, Buffer.from(`window ${w} message ${i}`));
                m.keys = [`hs-${w}-${i}`];
                const s = await p.send(m);
                assert.equal(s.sendStatus, 'SEND_OK');
                win.ids.push(s.msgId);
                win.queues.add(s.messageQueue.queueId);
                await sleep(3); // distinct store times: store order is send order
            }
            win.end = Date.now();
            windows.push(win);
        }
    } finally {
        await p.close();
    }
});
after(async () => {
    try {
        await sa?.stop();
    } finally {
        // ali-ons keeps timers alive; exit with the runner's verdict.
        setImmediate(() => process.exit());
    }
});

test('each time window answers exactly its messages, oldest first, over several queues', async () => {
    for (const [w, win] of windows.entries()) {
        assert.ok(win.queues.size > 1, `window ${w} went to one queue only`);
        const r = await search(win.begin, win.end);
        assert.equal(r.status, 200, r.text);
        assert.deepEqual(r.json.messages.map((m) => m.offsetMsgId), win.ids, `window ${w}`);
        assert.equal(r.json.truncated, false);
        const ts = r.json.messages.map((m) => m.storeTimestamp);
        assert.deepEqual(ts, [...ts].sort((a, b) => a - b));
        for (const m of r.json.messages) {
            assert.ok(m.storeTimestamp >= win.begin && m.storeTimestamp <= win.end);
            // the fields of a key search: properties and the body
            assert.equal(m.topic, TOPIC);
            assert.equal(m.properties.TAGS, `W${w}`);
            assert.match(Buffer.from(m.body, 'base64').toString(), new RegExp(`^window ${w} message \\d$`));
        }
    }
    // two windows together: both, in order; the whole span: all 18
    let r = await search(windows[0].begin, windows[1].end);
    assert.deepEqual(r.json.messages.map((m) => m.offsetMsgId), [...windows[0].ids, ...windows[1].ids]);
    r = await search(windows[0].begin, windows[2].end);
    assert.deepEqual(r.json.messages.map((m) => m.offsetMsgId), windows.flatMap((w) => w.ids));
    // bounds are inclusive: begin and end at one message's store time find it alone
    const one = r.json.messages[7];
    r = await search(one.storeTimestamp, one.storeTimestamp);
    assert.deepEqual(r.json.messages.map((m) => m.offsetMsgId), [one.offsetMsgId]);
    // key search is unchanged
    r = await call(`/api/messages?topic=${TOPIC}&key=hs-1-2`);
    assert.deepEqual(r.json.messages.map((m) => m.offsetMsgId), [windows[1].ids[2]]);
});

test('a range with no messages answers none: between windows, before and after them', async () => {
    for (const [b, e] of [[windows[0].end + 1, windows[1].begin - 1], [0, windows[0].begin - 1],
        [windows[2].end + 1, windows[2].end + 3600000]]) {
        const r = await search(b, e);
        assert.equal(r.status, 200, r.text);
        assert.deepEqual(r.json.messages, [], `${b}..${e}`);
        assert.equal(r.json.truncated, false);
    }
});

test('max cuts the list short at the oldest messages and says so', async () => {
    const all = windows.flatMap((w) => w.ids);
    let r = await search(windows[0].begin, windows[2].end, '&max=5');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.messages.map((m) => m.offsetMsgId), all.slice(0, 5));
    assert.equal(r.json.truncated, true);
    assert.equal(r.json.max, 5);
    assert.match(r.json.remark, /narrow it/);
    // the remark's next begin continues the list
    const next = Number(r.json.remark.match(/begin=(\d+)/)[1]);
    assert.equal(next, r.json.messages[4].storeTimestamp);
    r = await search(next, windows[2].end, '&max=100');
    assert.deepEqual(r.json.messages.map((m) => m.offsetMsgId), all.slice(4));
    assert.equal(r.json.truncated, false);
    // so few that every queue is read only in part: still the oldest, in order
    r = await search(windows[0].begin, windows[2].end, '&max=2');
    assert.deepEqual(r.json.messages.map((m) => m.offsetMsgId), all.slice(0, 2));
    assert.equal(r.json.truncated, true);
    // exactly as many as there are: not truncated; the default max (64) holds all 18
    r = await search(windows[0].begin, windows[2].end, `&max=${all.length}`);
    assert.equal(r.json.truncated, false);
    assert.equal(r.json.messages.length, all.length);
    r = await search(windows[0].begin, windows[2].end);
    assert.equal(r.json.max, 64);
    assert.equal(r.json.messages.length, all.length);
});

test('a search reads about 8 MiB at most: a list cut by bytes is still the oldest, in order', async () => {
    // ten 1 MiB messages over two queues: reading them all would pass the bound
    const T = 'HS_BIG';
    let r = await api(base, 'POST', '/api/topics', { topic: T, queueNums: 2 });
    assert.equal(r.status, 200, r.text);
    const begin = Date.now();
    const ids = [];
    for (let i = 0; i < 10; i++) {
        r = await api(base, 'POST', `/api/topics/${T}/messages`, { body: String(i).repeat(1 << 20), queueId: i % 2 });
        assert.equal(r.status, 200, r.text);
        ids.push(r.json.offsetMsgId);
        await sleep(3);
    }
    r = await call(`/api/messages?topic=${T}&begin=${begin}&end=${Date.now()}&max=100`);
    assert.equal(r.status, 200, r.text.slice(0, 300));
    assert.equal(r.json.truncated, true);
    const got = r.json.messages.map((m) => m.offsetMsgId);
    // queue 0's five (5 MiB) leave queue 1 about 3 MiB: its first two, so messages 0..3
    assert.ok(got.length >= 3 && got.length < 10, `${got.length} listed`);
    assert.deepEqual(got, ids.slice(0, got.length)); // no gap: queue 0's later ones are not listed
    const next = Number(r.json.remark.match(/begin=(\d+)/)[1]);
    r = await call(`/api/messages?topic=${T}&begin=${next}&end=${Date.now()}&max=100`);
    assert.deepEqual(r.json.messages.map((m) => m.offsetMsgId), ids.slice(got.length - 1));
});

test('bad input: 400 saying what to change; an unknown topic 404 with TOPIC_NOT_EXIST', async () => {
    const cases = [
        [`/api/messages?begin=0&end=1`, 400, 29, /topic/],
        [`/api/messages?topic=${TOPIC}`, 400, 29, /key.*or a stored-time range/],
        [`/api/messages?topic=${TOPIC}&begin=5`, 400, 29, /begin=ms&end=ms/],
        [`/api/messages?topic=${TOPIC}&begin=10&end=5`, 400, 29, /begin <= end/],
        [`/api/messages?topic=${TOPIC}&begin=yesterday&end=5`, 400, 29, /integers/],
        [`/api/messages?topic=${TOPIC}&begin=0&end=1.5`, 400, 29, /integers/],
        [`/api/messages?topic=${TOPIC}&begin=0&end=5&max=ten`, 400, 29, /integers/],
        [`/api/messages?topic=${TOPIC}&begin=0&end=5&max=0`, 400, 29, /between 1 and 2000/],
        [`/api/messages?topic=${TOPIC}&begin=0&end=5&max=2001`, 400, 29, /between 1 and 2000/],
        [`/api/messages?topic=NO_SUCH_TOPIC&begin=0&end=5`, 404, 17, /NO_SUCH_TOPIC does not exist/],
    ];
    for (const [p, status, code, why] of cases) {
        const r = await call(p);
        assert.equal(r.status, status, `${p}: ${r.text}`);
        assert.equal(r.json?.code, code, `${p}: ${r.text}`);
        assert.match(r.json.error, why, p);
    }
    // the largest max is taken
    assert.equal((await search(0, 5, '&max=2000')).status, 200);
});
