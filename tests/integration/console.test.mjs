// The web console end to end: headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core) against `apogee standalone` on random ports. Through the pages only: create
// a topic, send a message, find it by key and read its body, watch a consumer group's lag
// rise and then fall to 0 once an ali-ons consumer consumes, skip a group's backlog, search
// by key within a stored-time range, and resend a dead letter to its topic. Also measures the
// first page load (navigation timing) and the bytes of all assets against the bars
// (docs/perf.md). Screenshots go to $APOGEE_ARTIFACTS (default
// build/artifacts/console, never committed). Without Chromium the suite is skipped with the
// reason; scripts/test.sh installs it (scripts/install-deps.sh). ~30 s.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { freePort, startStandaloneRouted, waitForPort } from '../lib/proc.mjs';
import { onsConsumer, restClient, until } from '../lib/console.mjs';
import { RemotingClient } from '../lib/remoting.mjs';

const require = createRequire(import.meta.url);
const CHROMIUM = process.env.APOGEE_CHROMIUM ?? '/usr/bin/chromium';
const noBrowser = fs.existsSync(CHROMIUM) ? false
    : `Chromium not found at ${CHROMIUM} (apt-get install chromium, or scripts/install-deps.sh)`;
const artifacts = process.env.APOGEE_ARTIFACTS ?? path.resolve('build/artifacts/console');

const TOPIC = 'ConsoleTopic';
const GROUP = 'GID_CONSOLE';
const DLQ_GROUP = 'GID_CONSOLE_DLQ';

let sa;
let ns;
let base;
let browser;
let page;
const consumers = [];

async function shot(name) {
    fs.mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
}

const rest = restClient(() => base);

const consumer = (instanceName) => onsConsumer(ns, GROUP, instanceName, consumers);

describe('web console in headless Chromium', { skip: noBrowser }, () => {
    before(async () => {
        const { chromium } = require('playwright-core');
        const httpPort = await freePort();
        ({ sa, ns } = await startStandaloneRouted([`--httpListenPort=${httpPort}`]));
        await waitForPort(httpPort, 10000, sa.proc);
        base = `http://127.0.0.1:${httpPort}`;
        browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
        page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
        page.on('dialog', (d) => d.accept()); // confirm() of reset and delete
    });
    after(async () => {
        try {
            for (const c of consumers) await c.close().catch(() => {});
            await browser?.close();
            await sa?.stop();
        } finally {
            // ali-ons keeps timers alive; exit with the runner's verdict.
            setImmediate(() => process.exit());
        }
    });

    it('first page load: navigation timing and asset bytes within the bars', async () => {
        await page.goto(base + '/', { waitUntil: 'load' });
        await page.waitForSelector('#broker-info dl');
        const m = await page.evaluate(() => {
            const nav = performance.getEntriesByType('navigation')[0];
            const res = performance.getEntriesByType('resource').filter((r) => r.name.includes('/assets/'));
            return {
                loadMs: nav.loadEventEnd - nav.startTime,
                domContentLoadedMs: nav.domContentLoadedEventEnd - nav.startTime,
                htmlBytes: nav.decodedBodySize,
                assetBytes: res.reduce((s, r) => s + r.decodedBodySize, 0),
                assets: res.length,
            };
        });
        const total = m.htmlBytes + m.assetBytes;
        console.log(`# console first load: ${m.loadMs.toFixed(1)} ms to load, ${m.domContentLoadedMs.toFixed(1)} ms ` +
            `to DOMContentLoaded, ${m.assets + 1} files, ${total} bytes`);
        fs.mkdirSync(artifacts, { recursive: true });
        fs.writeFileSync(path.join(artifacts, 'first-load.json'), JSON.stringify({ ...m, totalBytes: total }, null, 2));
        assert.ok(total <= 500 * 1024, `assets ${total} bytes > 500 KB`);
        assert.ok(m.assets >= 5, 'the page loaded its modules');
        // The 300 ms bar is measured on an idle machine (docs/perf.md); here a loose guard.
        assert.ok(m.loadMs < 3000, `first load took ${m.loadMs} ms`);
        await shot('01-overview');
    });

    it('charts request latency percentiles per code on the overview', async () => {
        await page.goto(base + '/', { waitUntil: 'load' });
        await page.waitForSelector('#latency-chart');
        const rc = await RemotingClient.connect(sa.port);
        try { // GET_BROKER_RUNTIME_INFO (28) between polls
            const until = Date.now() + 5000;
            while (Date.now() < until && !(await page.$('#latency-table td:has-text("remoting 28")'))) {
                await rc.request(28, {});
                await new Promise((r) => setTimeout(r, 100));
            }
        } finally {
            rc.close();
        }
        const row = await page.waitForSelector('#latency-table tr:has(td:has-text("remoting 28"))', { timeout: 5000 });
        const cells = await row.$$eval('td', (tds) => tds.map((td) => td.textContent));
        assert.ok(Number(cells[1]) > 0, cells.join('|'));
        assert.ok(Number.isFinite(Number(cells[3])), cells.join('|'));
        assert.ok((await page.$$eval('#latency-code option', (o) => o.map((x) => x.value))).includes('remoting 28'));
        await shot('02-latency');
    });

    it('creates a topic on the topics page', async () => {
        await page.goto(base + '/#/topics');
        await page.fill('#create-topic input[name=topic]', TOPIC);
        await page.fill('#create-topic input[name=queues]', '2');
        await page.click('#create-topic button[type=submit]');
        await page.waitForSelector(`#topics-table a:text-is("${TOPIC}")`);
        const t = await rest('GET', '/api/topics');
        assert.equal(t.topicConfigTable[TOPIC].writeQueueNums, 2);
        await shot('02-topics');
    });

    it('sends a test message from the topic page', async () => {
        await page.click(`#topics-table a:text-is("${TOPIC}")`);
        await page.waitForSelector('#queue-table');
        await page.fill('#send-message input[name=tags]', 'TagC');
        await page.fill('#send-message input[name=keys]', 'console-key-1');
        await page.fill('#send-message textarea[name=body]', 'hello from the console');
        await page.click('#send-message button[type=submit]');
        const id = await page.textContent('#send-result .sent-id', { timeout: 10000 });
        assert.match(id, /^[0-9A-F]{32}$/);
        await page.waitForFunction(() => [...document.querySelectorAll('#queue-table tbody tr')]
            .some((tr) => tr.cells[2]?.textContent === '1'));
        await shot('03-topic-sent');
    });

    it('finds the message by key and shows its body as text and hex', async () => {
        await page.goto(base + '/#/messages');
        await page.fill('#search-key input[name=topic]', TOPIC);
        await page.fill('#search-key input[name=key]', 'console-key-1');
        await page.click('#search-key button[type=submit]');
        await page.waitForSelector('#message-detail .message-detail');
        assert.equal(await page.textContent('#message-detail pre.body-text'), 'hello from the console');
        assert.ok((await page.textContent('#message-detail table.props')).includes('TagC'));
        await page.click('#message-detail .tabs button:text-is("Hex")');
        assert.match(await page.textContent('#message-detail pre.body-hex'), /^000000 {2}68 65 6c 6c 6f/);
        await shot('04-message');
    });

    it("watches a group's lag rise and fall to 0 as an ali-ons consumer consumes", async () => {
        const got = [];
        let c = consumer('console-1');
        c.subscribe(TOPIC, '*', async (msg) => { got.push(msg.body.toString()); });
        await c.ready();
        await page.goto(base + `/#/group/${GROUP}`);
        await page.waitForFunction(() => document.querySelector('#lag-value')?.textContent === '0' &&
            document.querySelectorAll('#lag-table tbody tr td.num').length > 0, null, { timeout: 30000 });
        await c.close();
        for (let i = 0; i < 5; i++)
            await rest('POST', `/api/topics/${TOPIC}/messages`, { body: `backlog-${i}`, keys: `backlog-${i}` });
        await page.waitForFunction(() => document.querySelector('#lag-value')?.textContent === '5', null, { timeout: 15000 });
        await shot('05-group-lag-5');
        c = consumer('console-2');
        c.subscribe(TOPIC, '*', async (msg) => { got.push(msg.body.toString()); });
        await c.ready();
        await page.waitForFunction(() => document.querySelector('#lag-value')?.textContent === '0', null, { timeout: 30000 });
        await page.waitForSelector('#clients-table tbody td:has-text("console-2")', { timeout: 15000 });
        assert.equal(await page.textContent('#consistency'), 'consistent');
        assert.ok(got.includes('backlog-4'));
        await shot('06-group-lag-0');
        // a second client of the group with another tag: the page says the subscriptions
        // differ and marks that client's
        const other = consumer('console-3');
        other.subscribe(TOPIC, 'OtherTag', async () => {});
        await other.ready();
        await page.waitForFunction(() => document.querySelector('#consistency')?.textContent === 'not consistent',
            null, { timeout: 20000 });
        await page.waitForSelector('#clients-table tbody span.bad:has-text("OtherTag")', { timeout: 10000 });
        await shot('06b-group-inconsistent');
        await other.close();
        await page.waitForFunction(() => document.querySelector('#consistency')?.textContent === 'consistent',
            null, { timeout: 20000 });
        // reset preview: the page shows the offsets and changes nothing
        await page.click('#reset-preview-btn');
        await page.waitForSelector('#reset-preview table');
        const s = await rest('GET', `/api/groups/${GROUP}/consume-stats`);
        assert.equal(s.diffTotal, 0);
    });

    it("skips a group's backlog after a preview, on the group page", async () => {
        const SKIP = 'GID_CONSOLE_SKIP';
        // a group that consumed the topic and went offline; then 3 messages arrive: its lag
        const c = onsConsumer(ns, SKIP, 'console-skip', consumers);
        c.subscribe(TOPIC, '*', async () => {});
        await c.ready();
        await until('the group caught up', async () => {
            const s = await rest('GET', `/api/groups/${SKIP}/consume-stats?topic=${TOPIC}`);
            return s.offsetTable.length > 0 && s.diffTotal === 0;
        });
        await c.close();
        for (let i = 0; i < 3; i++)
            await rest('POST', `/api/topics/${TOPIC}/messages`, { body: `skip-${i}`, keys: `skip-${i}` });
        await page.goto(base + `/#/group/${SKIP}`);
        await page.waitForFunction(() => document.querySelector('#lag-value')?.textContent === '3', null, { timeout: 15000 });
        const stats = await rest('GET', `/api/groups/${SKIP}/consume-stats?topic=${TOPIC}`);
        const max = Object.fromEntries(stats.offsetTable.map((q) => [q.queueId, q.brokerOffset]));
        await page.click('#skip-preview-btn');
        await page.waitForSelector('#reset-preview p:has-text("Preview")');
        const preview = await page.$$eval('#reset-preview tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((c) => Number(c.textContent))));
        assert.deepEqual(Object.fromEntries(preview), max);
        assert.equal((await rest('GET', `/api/groups/${SKIP}/consume-stats`)).diffTotal, 3, 'the preview changed nothing');
        await page.click('#skip-apply-btn'); // confirm() accepted
        await page.waitForFunction(() => document.querySelector('#lag-value')?.textContent === '0', null, { timeout: 15000 });
        assert.equal((await rest('GET', `/api/groups/${SKIP}/consume-stats`)).diffTotal, 0);
        await shot('06c-group-skip-backlog');
    });

    it('finds a message by key within a stored-time range only', async () => {
        const local = (ms) => { // datetime-local text of ms in the browser's (and this process') zone
            const d = new Date(ms);
            const p2 = (n) => String(n).padStart(2, '0');
            return `${d.getFullYear()}-${p2(d.getMonth() + 1)}-${p2(d.getDate())}T${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())}`;
        };
        const m = (await rest('GET', `/api/messages?topic=${TOPIC}&key=backlog-3`)).messages[0];
        const search = async (from, to) => {
            await page.goto(base + '/#/messages');
            await page.fill('#search-key input[name=topic]', TOPIC);
            await page.fill('#search-key input[name=key]', 'backlog-3');
            await page.fill('#search-key input[name=begin]', local(from));
            await page.fill('#search-key input[name=end]', local(to));
            // the hash is unchanged between searches: drop the last results before this one
            await page.evaluate(() => document.getElementById('search-results').replaceChildren());
            await page.click('#search-key button[type=submit]');
            await page.waitForSelector('#results-table tbody tr');
            return page.$$eval('#results-table tbody tr', (trs) => trs.map((tr) => tr.cells[0].textContent));
        };
        assert.deepEqual(await search(m.storeTimestamp - 60000, m.storeTimestamp + 60000), [m.msgId]);
        await shot('04b-message-time-range');
        assert.deepEqual(await search(m.storeTimestamp - 120000, m.storeTimestamp - 60000), ['none']);
        assert.deepEqual(await search(m.storeTimestamp + 2000, m.storeTimestamp + 60000), ['none']);
    });

    it('resends a dead letter to its topic from the dead-letter page', async () => {
        const q = await rest('GET', `/api/messages?topic=${TOPIC}&key=console-key-1`);
        const m = q.messages[0];
        const rc = await RemotingClient.connect(sa.port);
        try { // CONSUMER_SEND_MSG_BACK with delayLevel -1: straight to %DLQ%<group>
            const r = await rc.request(36, {
                offset: String(m.commitLogOffset), group: DLQ_GROUP, delayLevel: '-1',
                originMsgId: m.offsetMsgId, originTopic: TOPIC, maxReconsumeTimes: '16',
            });
            assert.equal(r.code, 0, r.remark);
        } finally {
            rc.close();
        }
        await page.goto(base + `/#/dlq/${DLQ_GROUP}`);
        await page.waitForSelector('#dlq-table button.resend');
        assert.ok((await page.textContent('#dlq-table')).includes(TOPIC));
        await page.click('#dlq-table button.resend');
        await page.waitForSelector('#toast div:has-text("resent to")');
        await shot('07-dlq-resent');
        const after2 = await rest('GET', `/api/messages?topic=${TOPIC}&key=console-key-1`);
        assert.equal(after2.messages.length, 2);
        // Export: the button downloads the group's dead letters as JSON lines.
        const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#dlq-export')]);
        assert.equal(dl.suggestedFilename(), `dlq-${DLQ_GROUP}.jsonl`);
        const lines = fs.readFileSync(await dl.path(), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
        assert.equal(lines.length, 1);
        assert.equal(lines[0].topic, `%DLQ%${DLQ_GROUP}`);
        assert.equal(lines[0].properties.KEYS, 'console-key-1');
    });

    it('lists a transaction in flight until it is rolled back', async () => {
        const rc = await RemotingClient.connect(sa.port);
        try {
            const uniq = '0A0000010000000000000000000000C7';
            const props = `TRAN_MSG\x01true\x02PGROUP\x01PG_CONSOLE_TX\x02UNIQ_KEY\x01${uniq}\x02`;
            const s = await rc.request(310, {
                a: 'PG_CONSOLE_TX', b: TOPIC, c: 'TBW102', d: '4', e: '0', f: '0', g: String(Date.now()),
                h: '0', i: props, k: 'false',
            }, Buffer.from('half'));
            assert.equal(s.code, 0, s.remark);
            await page.goto(base + '/#/transactions');
            await page.waitForSelector(`#txn-table td:has-text("${uniq}")`);
            assert.ok((await page.textContent('#txn-table')).includes('PG_CONSOLE_TX'));
            await shot('08-transactions');
            const r = await rc.request(37, {
                producerGroup: 'PG_CONSOLE_TX', tranStateTableOffset: s.ext.queueOffset,
                commitLogOffset: String(Number(BigInt(`0x${s.ext.msgId.slice(-16)}`))), commitOrRollback: '12',
                fromTransactionCheck: 'false', msgId: '', transactionId: '',
            });
            assert.equal(r.code, 0, r.remark);
            await page.reload();
            await page.waitForSelector('#txn-table td:has-text("none")');
        } finally {
            rc.close();
        }
        console.log(`# screenshots in ${artifacts}`);
    });
});
