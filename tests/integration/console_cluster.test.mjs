// Cluster, brokers and topic routes over the admin API (GET /api/brokers, GET
// /api/topics/<t>/route) and in the console (#/cluster, the topic page's route), against
// `apogee standalone` (its NameServer in the process) and against `apogee namesrv` with two
// `apogee broker` processes. The broker asks its NameServer asynchronously: with the
// NameServer stopped (SIGSTOP) the route call answers 502 after its timeout while other
// calls on the same HTTP port answer at once. Console parts need /usr/bin/chromium. ~20 s.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { freePort, startApogee, startStandaloneRouted, waitForPort } from '../lib/proc.mjs';
import { restClient, until } from '../lib/console.mjs';

const require = createRequire(import.meta.url);
const CHROMIUM = process.env.APOGEE_CHROMIUM ?? '/usr/bin/chromium';
const noBrowser = !fs.existsSync(CHROMIUM) && 'no Chromium';
const procs = [];

async function withPage(base, fn) {
    const { chromium } = require('playwright-core');
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
    try {
        await fn(await browser.newPage({ viewport: { width: 1280, height: 900 } }));
    } finally {
        await browser.close();
    }
}

const rows = (page, sel) => page.$$eval(`${sel} tbody tr`, (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));

after(async () => {
    for (const p of procs.reverse()) await p.stop().catch(() => {});
});

describe('standalone: its own NameServer', () => {
    let base;
    it('lists the broker as master and the route of a topic', async () => {
        const httpPort = await freePort();
        const { sa } = await startStandaloneRouted([`--httpListenPort=${httpPort}`]);
        procs.push(sa);
        await waitForPort(httpPort, 10000, sa.proc);
        base = `http://127.0.0.1:${httpPort}`;
        const rest = restClient(() => base);
        const c = await rest('GET', '/api/brokers');
        assert.equal(c.clusters.length, 1);
        assert.equal(c.clusters[0].cluster, 'DefaultCluster');
        assert.deepEqual(c.clusters[0].brokers.map((b) => [b.brokerId, b.role, b.self]), [[0, 'MASTER', true]]);
        await rest('POST', '/api/topics', { topic: 'RouteTopic', readQueueNums: 3, writeQueueNums: 2, perm: 4 });
        const r = await until('the route', async () => {
            const res = await fetch(`${base}/api/topics/RouteTopic/route`);
            return res.ok && (await res.json());
        });
        assert.deepEqual(r.queueDatas.map((q) => [q.readQueueNums, q.writeQueueNums, q.perm]), [[3, 2, 4]]);
        assert.equal(Object.values(r.brokerDatas[0].brokerAddrs)[0], c.clusters[0].brokers[0].addr);
        const miss = await fetch(`${base}/api/topics/NoSuchTopic/route`);
        assert.equal(miss.status, 404);
        assert.equal((await miss.json()).code, 17);
    });

    it('shows the cluster page and the topic route', { skip: noBrowser }, async () => {
        await withPage(base, async (page) => {
            await page.goto(`${base}/#/cluster`);
            await page.waitForSelector('.brokers-table tbody tr td:has-text("MASTER")');
            assert.deepEqual((await rows(page, '.brokers-table')).map((r) => [r[0], r[3], r[4]]),
                [['broker-a', 'MASTER', 'this broker']]);
            await page.goto(`${base}/#/topic/RouteTopic`);
            await page.waitForSelector('#route-table tbody tr td.num');
            assert.deepEqual((await rows(page, '#route-table')).map((r) => [r[0], r[3], r[4], r[5]]),
                [['broker-a', '3', '2', 'read only']]);
        });
    });
});

describe('apogee namesrv with two apogee broker processes', () => {
    it('lists both brokers and a topic routed to both; never waits on a stopped NameServer', async () => {
        const ns = await startApogee('namesrv', [], {});
        procs.push(ns);
        const nsAddr = `127.0.0.1:${ns.port}`;
        const bases = [];
        for (const name of ['broker-a', 'broker-b']) {
            const httpPort = await freePort();
            const br = await startApogee('broker', [`--namesrvAddr=${nsAddr}`, `--brokerName=${name}`,
                `--httpListenPort=${httpPort}`, '--allowLoopbackAdvertise=true']);
            procs.push(br);
            await waitForPort(httpPort, 10000, br.proc);
            bases.push(`http://127.0.0.1:${httpPort}`);
        }
        const [a, b] = bases.map((u) => restClient(() => u));
        const c = await until('both brokers registered', async () => {
            const x = await a('GET', '/api/brokers');
            return x.clusters[0]?.brokers.length === 2 ? x : null;
        });
        const brokers = c.clusters[0].brokers.sort((x, y) => x.brokerName.localeCompare(y.brokerName));
        assert.deepEqual(brokers.map((x) => [x.brokerName, x.role, x.self]),
            [['broker-a', 'MASTER', true], ['broker-b', 'MASTER', false]]);
        await a('POST', '/api/topics', { topic: 'SharedTopic', queueNums: 4 });
        await b('POST', '/api/topics', { topic: 'SharedTopic', queueNums: 2 });
        const r = await until('the route through both brokers', async () => {
            const res = await fetch(`${bases[1]}/api/topics/SharedTopic/route`);
            const x = res.ok && (await res.json());
            return x?.queueDatas?.length === 2 ? x : null;
        });
        assert.deepEqual(r.queueDatas.map((q) => [q.brokerName, q.writeQueueNums]).sort(),
            [['broker-a', 4], ['broker-b', 2]]);
        if (!noBrowser) {
            await withPage(bases[0], async (page) => {
                await page.goto(`${bases[0]}/#/cluster`);
                await page.waitForFunction(() => document.querySelectorAll('.brokers-table tbody tr').length === 2);
                await page.goto(`${bases[0]}/#/topic/SharedTopic`);
                await page.waitForFunction(() => document.querySelectorAll('#route-table tbody tr td.num').length === 4);
            });
        }
        // The NameServer frozen: the route call waits for its timeout on the NameServer
        // client, not on the HTTP loop; the loop keeps answering.
        ns.proc.kill('SIGSTOP');
        try {
            await until('every NameServer thread stopped', async () => {
                const dir = `/proc/${ns.proc.pid}/task`;
                return fs.readdirSync(dir).every((t) =>
                    / T /.test(fs.readFileSync(`${dir}/${t}/stat`, 'utf8').replace(/^.*\)/, ')')));
            });
            const t0 = Date.now();
            const slow = fetch(`${bases[0]}/api/brokers`).then(async (res) => [res.status, Date.now() - t0]);
            await new Promise((res) => setTimeout(res, 200));
            const t1 = Date.now();
            const topics = await fetch(`${bases[0]}/api/topics`);
            const fast = Date.now() - t1;
            assert.equal(topics.status, 200);
            assert.ok(fast < 1000, `GET /api/topics took ${fast} ms while the NameServer call waited`);
            const [status, took] = await slow;
            assert.equal(status, 502, `answered ${status} after ${took} ms`);
            assert.ok(took >= 2500, `the NameServer call ended after ${took} ms`);
        } finally {
            ns.proc.kill('SIGCONT');
        }
    });
});
