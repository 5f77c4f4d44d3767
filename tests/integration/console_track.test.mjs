// A message's delivery status per consumer group (GET /api/messages/<id>/track and the
// message page's "Delivery per consumer group"), driven by ali-ons consumers against
// `apogee standalone`: a group that consumed the message and went offline answers NOT_ONLINE,
// a group online with a tag expression answers CONSUMED for a message of its tag and
// CONSUMED_BUT_FILTERED for one of another tag it moved past. The console part runs in
// headless Chromium when /usr/bin/chromium exists. ~20 s.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { freePort, startStandaloneRouted, waitForPort } from '../lib/proc.mjs';
import { onsConsumer, restClient } from '../lib/console.mjs';

const require = createRequire(import.meta.url);
const CHROMIUM = process.env.APOGEE_CHROMIUM ?? '/usr/bin/chromium';
const artifacts = process.env.APOGEE_ARTIFACTS ?? path.resolve('build/artifacts/console');
const TOPIC = 'TrackTopic';
const GONE = 'GID_TRACK_GONE';
const LIVE = 'GID_TRACK_LIVE';

let sa;
let ns;
let base;
const consumers = [];

const rest = restClient(() => base);

const consumer = (group, instanceName) => onsConsumer(ns, group, instanceName, consumers);

const until = async (what, fn, ms = 20000) => {
    const end = Date.now() + ms;
    for (;;) {
        const v = await fn();
        if (v) return v;
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 200));
    }
};

const send = (body, tags, keys) => rest('POST', `/api/topics/${TOPIC}/messages`, { body, tags, keys });
const track = async (sent) => {
    const t = await rest('GET', `/api/messages/${sent.offsetMsgId}/track`);
    return Object.fromEntries(t.tracks.map((x) => [x.consumerGroup, x]));
};

describe('message track per consumer group', () => {
    before(async () => {
        const httpPort = await freePort();
        ({ sa, ns } = await startStandaloneRouted([`--httpListenPort=${httpPort}`]));
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

    it('shows the delivery status on the console message page', { skip: !fs.existsSync(CHROMIUM) && 'no Chromium' }, async () => {
        const { chromium } = require('playwright-core');
        const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
        try {
            const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
            await page.goto(`${base}/#/messages?topic=${TOPIC}&key=trk-2`);
            await page.waitForSelector('#track-table tbody tr td:has-text("CONSUMED")');
            const rows = await page.$$eval('#track-table tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
            const by = Object.fromEntries(rows.map((r) => [r[0], r[1]]));
            assert.deepEqual(by, { [GONE]: 'NOT_ONLINE', [LIVE]: 'CONSUMED' });
            fs.mkdirSync(artifacts, { recursive: true });
            await page.screenshot({ path: path.join(artifacts, 'track-01.png'), fullPage: true });
        } finally {
            await browser.close();
        }
    });
});
