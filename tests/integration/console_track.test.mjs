// A message's delivery status per consumer group (GET /api/messages/<id>/track and the
// message page's "Delivery per consumer group"), driven by ali-ons consumers against
// `apogee standalone`: a group that consumed the message and went offline answers NOT_ONLINE,
// a group online with a tag expression answers CONSUMED for a message of its tag and
// CONSUMED_BUT_FILTERED for one of another tag it moved past. The console part runs in
// headless Chromium when /usr/bin/chromium exists. Also the message's trace: records stored in
// RMQ_SYS_TRACE_TOPIC by ali-ons as the Java client's trace dispatcher stores them, decoded by
// GET /api/messages/<msgId>/trace and shown on the page; and the message found on the page by
// its topic and stored-time range, without a key. ~10 s.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { freePort, startStandaloneRouted, waitForPort } from '../lib/proc.mjs';
import { onsConsumer, restClient, until } from '../lib/console.mjs';

const require = createRequire(import.meta.url);
const CHROMIUM = process.env.APOGEE_CHROMIUM ?? '/usr/bin/chromium';
const artifacts = process.env.APOGEE_ARTIFACTS ?? path.resolve('build/artifacts/console');
const TOPIC = 'TrackTopic';
const GONE = 'GID_TRACK_GONE';
const LIVE = 'GID_TRACK_LIVE';

let sa;
let ns;
let base;
let sentA; // the TagA message LIVE consumed
const consumers = [];

const rest = restClient(() => base);

const consumer = (group, instanceName) => onsConsumer(ns, group, instanceName, consumers);

const send = (body, tags, keys) => rest('POST', `/api/topics/${TOPIC}/messages`, { body, tags, keys });
const track = async (sent) => {
    const t = await rest('GET', `/api/messages/${sent.offsetMsgId}/track`);
    return Object.fromEntries(t.tracks.map((x) => [x.consumerGroup, x]));
};

describe('message track per consumer group', () => {
    before(async () => {
        const httpPort = await freePort();
        ({ sa, ns } = await startStandaloneRouted([`--httpListenPort=${httpPort}`, '--traceTopicEnable=true']));
        await waitForPort(httpPort, 10000, sa.proc);
        base = `http://127.0.0.1:${httpPort}`;
        await rest('POST', '/api/topics', { topic: TOPIC, readQueueNums: 1, writeQueueNums: 1 });
    });
    after(async () => {
        try {
            for (const c of consumers) await c.close().catch(() => {});
            await sa?.stop();
        } finally {
            setImmediate(() => process.exit());
        }
    });

    it('answers CONSUMED, CONSUMED_BUT_FILTERED and NOT_ONLINE as the groups stand', async () => {
        // GONE consumes the first message, commits and leaves
        const first = await send('first', 'TagA', 'trk-0');
        const gone = consumer(GONE, 'track-gone');
        const seen = [];
        gone.subscribe(TOPIC, '*', async (m) => { seen.push(m.body.toString()); });
        await gone.ready();
        await until('GONE commits past the first message',
            async () => (await track(first))[GONE]?.trackType === 'CONSUMED');
        await gone.close();
        await until('GONE offline', async () => (await track(first))[GONE]?.trackType === 'NOT_ONLINE');

        // LIVE subscribes TagA only: TagB is filtered, the last TagA consumed
        const tagB = await send('other tag', 'TagB', 'trk-1');
        const tagA = await send('second', 'TagA', 'trk-2');
        sentA = tagA;
        const live = consumer(LIVE, 'track-live');
        const got = [];
        live.subscribe(TOPIC, 'TagA', async (m) => { got.push(m.body.toString()); });
        await live.ready();
        await until('LIVE consumes the TagA message', () => got.includes('second'));
        const t = await until('LIVE commits', async () => {
            const x = await track(tagA);
            return x[LIVE]?.trackType === 'CONSUMED' ? x : null;
        });
        assert.equal(t[GONE].trackType, 'NOT_ONLINE');
        assert.equal(t[GONE].consumerOffset, 1);
        assert.ok(t[LIVE].consumerOffset > t[LIVE].queueOffset);
        const f = await track(tagB);
        assert.equal(f[LIVE].trackType, 'CONSUMED_BUT_FILTERED');
        assert.ok(!got.includes('other tag'));
        // by client msgId (UNIQ_KEY) with its topic, the same answer
        const u = await rest('GET', `/api/messages/${tagA.msgId}/track?topic=${TOPIC}`);
        assert.equal(u.message.queueOffset, tagA.queueOffset);
        assert.equal(u.tracks.length, 2);
        // a message nobody has: 404
        const miss = await fetch(`${base}/api/messages/00000000000000000000000000000000/track?topic=${TOPIC}`);
        assert.equal(miss.status, 404);
    });

    it('decodes the trace records a client stored in RMQ_SYS_TRACE_TOPIC, by msgId', async () => {
        // Trace messages as the Java client's trace dispatcher sends them: records joined by
        // byte 2, fields by byte 1, the traced msgIds (and keys) as the message's KEYS.
        const rec = (...f) => f.join('\x01') + '\x02';
        const id = sentA.msgId;
        const t0 = Date.now() - 1000;
        const pub = rec('Pub', t0, 'DefaultRegion', 'PG_TRACE', TOPIC, id, 'TagA', 'trk-2', '127.0.0.1:10911',
            6, 3, 0, sentA.offsetMsgId, 'true');
        const other = '7F0000010000000000000000000000FF';
        const subs = rec('SubBefore', t0 + 40, 'DefaultRegion', LIVE, 'req-1', id, 0, 'trk-2') +
            rec('SubBefore', t0 + 41, 'DefaultRegion', LIVE, 'req-2', other, 0, '') +
            rec('SubAfter', 'req-1', id, 12, 'true', 'trk-2', 0, t0 + 52) +
            rec('SubAfter', 'req-2', other, 5, 'false', '', 4, t0 + 46);
        // traceTopicEnable=true: the broker made the trace topic at start, one queue (ali-ons
        // does not fall back to TBW102 for a topic the NameServer does not know)
        assert.equal((await rest('GET', '/api/topics')).topicConfigTable.RMQ_SYS_TRACE_TOPIC?.writeQueueNums, 1);
        const ons = require('ali-ons');
        const p = new ons.Producer({ nameSrv: ns, httpclient: {}, producerGroup: 'PG_TRACE_SENDER',
            logger: { info() {}, warn() {}, error() {}, debug() {} } });
        p.on('error', () => {});
        await p.ready();
        try {
            for (const [body, keys] of [[pub, [id, 'trk-2']], [subs, [id, 'trk-2', other]]]) {
                const m = new ons.Message('RMQ_SYS_TRACE_TOPIC', '', Buffer.from(body));
                m.keys = keys;
                const r = await p.send(m);
                assert.equal(r.sendStatus, 'SEND_OK');
            }
        } finally {
            await p.close();
        }
        const t = await until('the trace is indexed', async () => {
            const x = await rest('GET', `/api/messages/${id}/trace`);
            return x.traces.length === 3 ? x : null;
        });
        assert.equal(t.traceTopic, 'RMQ_SYS_TRACE_TOPIC');
        assert.deepEqual(t.traces.map((x) => x.traceType), ['Pub', 'SubBefore', 'SubAfter']);
        const [tp, tb, ta] = t.traces;
        assert.equal(tp.groupName, 'PG_TRACE');
        assert.equal(tp.timestamp, t0);
        assert.equal(tp.costTime, 3);
        assert.equal(tp.bodyLength, 6);
        assert.equal(tp.msgType, 'Normal_Msg');
        assert.equal(tp.offsetMsgId, sentA.offsetMsgId);
        assert.equal(tp.success, true);
        assert.equal(tb.groupName, LIVE);
        assert.equal(tb.retryTimes, 0);
        assert.equal(ta.groupName, LIVE); // from its SubBefore
        assert.equal(ta.costTime, 12);
        assert.equal(ta.consumeStatus, 'SUCCESS');
        assert.equal(ta.timestamp, t0 + 52);
        // the other message of the batch has its own trace; an untraced one has none
        const o = await rest('GET', `/api/messages/${other}/trace`);
        assert.deepEqual(o.traces.map((x) => [x.traceType, x.success ?? null, x.consumeStatus ?? null]),
            [['SubBefore', null, null], ['SubAfter', false, 'FAILED']]);
        assert.equal((await rest('GET', '/api/messages/7F000001000000000000000000000000/trace')).traces.length, 0);
    });

    it('shows the delivery status and the trace on the console message page', { skip: !fs.existsSync(CHROMIUM) && 'no Chromium' }, async () => {
        const { chromium } = require('playwright-core');
        const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
        try {
            const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
            await page.goto(`${base}/#/messages?topic=${TOPIC}&key=trk-2`);
            await page.waitForSelector('#track-table tbody tr td:has-text("CONSUMED")');
            const rows = await page.$$eval('#track-table tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
            const by = Object.fromEntries(rows.map((r) => [r[0], r[1]]));
            assert.deepEqual(by, { [GONE]: 'NOT_ONLINE', [LIVE]: 'CONSUMED' });
            await page.waitForSelector('#trace-table tbody tr');
            const steps = await page.$$eval('#trace-table tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
            assert.deepEqual(steps.map((r) => [r[0], r[1], r[3], r[4]]),
                [['Pub', 'PG_TRACE', '3', 'success'], ['SubBefore', LIVE, '', ''], ['SubAfter', LIVE, '12', 'success']]);
            fs.mkdirSync(artifacts, { recursive: true });
            await page.screenshot({ path: path.join(artifacts, 'track-01.png'), fullPage: true });

            // the search without a key: the topic and the stored-time range around the message
            const ts = (await rest('GET', `/api/messages?topic=${TOPIC}&key=trk-2`)).messages[0].storeTimestamp;
            const local = (ms) => new Date(ms - new Date(ms).getTimezoneOffset() * 60000).toISOString().slice(0, 19);
            await page.goto(`${base}/#/messages`);
            await page.fill('#search-time input[name=rtopic]', TOPIC);
            await page.fill('#search-time input[name=rbegin]', local(ts));
            await page.fill('#search-time input[name=rend]', local(ts));
            await page.click('#search-time button[type=submit]');
            const link = page.locator('#range-table a.result-id', { hasText: sentA.msgId });
            await link.waitFor();
            const row = await page.locator('#range-table tbody tr', { hasText: sentA.msgId }).evaluate((tr) => [...tr.cells].map((c) => c.textContent));
            assert.deepEqual([row[1], row[2], row[4], row[5]], ['0', String(sentA.queueOffset), 'TagA', 'trk-2']);
            assert.match(await page.textContent('#range-note'), /message\(s\) stored in this range/);
            await link.click();
            await page.waitForSelector(`#message-detail h2:has-text("Message ${sentA.msgId}")`);
            await page.waitForSelector('#track-table tbody tr td:has-text("CONSUMED")');
            await page.screenshot({ path: path.join(artifacts, 'track-02-range.png'), fullPage: true });

            // one message a page: "Next page" lists the range's second message, as the REST
            // answer with max=2 orders them
            const from = Math.floor((ts - 600000) / 1000) * 1000;
            const to = Math.floor(ts / 1000) * 1000 + 999;
            const two = (await rest('GET', `/api/messages?topic=${TOPIC}&begin=${from}&end=${to}&max=2`)).messages;
            assert.equal(two.length, 2);
            await page.goto(`${base}/#/messages?topic=${TOPIC}`);
            await page.waitForSelector('#search-time input[name=rmax]');
            await page.fill('#search-time input[name=rbegin]', local(from));
            await page.fill('#search-time input[name=rend]', local(ts));
            await page.fill('#search-time input[name=rmax]', '1');
            await page.click('#search-time button[type=submit]');
            await page.locator('#range-table a.result-id', { hasText: two[0].msgId }).waitFor();
            assert.equal(await page.locator('#range-table tbody tr').count(), 1);
            assert.match(await page.textContent('#range-note'), /more are stored in this range/);
            await page.click('#range-next');
            await page.locator('#range-table a.result-id', { hasText: two[1].msgId }).waitFor();
            assert.equal(await page.locator('#range-table tbody tr').count(), 1);
        } finally {
            await browser.close();
        }
    });
});
