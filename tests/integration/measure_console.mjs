// Measures the web console's first page load on loopback (docs/perf.md): `apogee standalone`
// on random ports, then N cold loads of / (a fresh browser context each: empty cache), each
// timed with the Navigation Timing entry (startTime to loadEventEnd) once the overview has
// rendered, plus the bytes of the page and its assets. Not a test file: run it by hand.
//   APOGEE_BIN=build/apogee node tests/integration/measure_console.mjs [runs]
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { freePort, startApogee, waitForPort } from '../lib/proc.mjs';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');
const runs = Number(process.argv[2] ?? 20);
const exe = process.env.APOGEE_CHROMIUM ?? '/usr/bin/chromium';
if (!fs.existsSync(exe)) throw new Error(`no Chromium at ${exe}`);

const httpPort = await freePort();
const sa = await startApogee('standalone', [`--httpListenPort=${httpPort}`],
    { extraPorts: { namesrvListenPort: await freePort() } });
await waitForPort(httpPort, 10000, sa.proc);
const browser = await chromium.launch({ executablePath: exe, headless: true, args: ['--no-sandbox'] });
const times = [];
let bytes = 0;
let files = 0;
try {
    for (let i = 0; i < runs + 1; i++) {
        const ctx = await browser.newContext();
        const page = await ctx.newPage();
        await page.goto(`http://127.0.0.1:${httpPort}/`, { waitUntil: 'load' });
        await page.waitForSelector('#broker-info dl');
        const m = await page.evaluate(() => {
            const nav = performance.getEntriesByType('navigation')[0];
            const res = performance.getEntriesByType('resource').filter((r) => r.name.includes('/assets/'));
            return { ms: nav.loadEventEnd - nav.startTime, bytes: nav.decodedBodySize + res.reduce((s, r) => s + r.decodedBodySize, 0), files: res.length + 1 };
        });
        if (i > 0) times.push(m.ms); // the first load also starts the browser's network service
        bytes = m.bytes;
        files = m.files;
        await ctx.close();
    }
} finally {
    await browser.close();
    await sa.stop();
}
times.sort((a, b) => a - b);
const q = (p) => times[Math.min(times.length - 1, Math.floor(p * times.length))].toFixed(1);
console.log(JSON.stringify({ runs, medianMs: Number(q(0.5)), p90Ms: Number(q(0.9)), maxMs: Number(times.at(-1).toFixed(1)), minMs: Number(times[0].toFixed(1)), files, bytes }));
