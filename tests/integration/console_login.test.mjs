// The console's login page against `apogee standalone` with aclEnable=true, in Debian's
// headless Chromium (playwright-core): a write before logging in sends the tab to the login
// page; a wrong secret is reported on the page and keeps nothing; the right account is kept
// for the tab, shown in the header, and creates a topic through the topics page (checked over
// REST); after Log out a write is refused again. Skipped without Chromium. ~10 s.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { freePort, startApogee, waitForPort } from '../lib/proc.mjs';
import { writeAclFile } from '../lib/acl.mjs';

const require = createRequire(import.meta.url);
const CHROMIUM = process.env.APOGEE_CHROMIUM ?? '/usr/bin/chromium';
const noBrowser = fs.existsSync(CHROMIUM) ? false : `Chromium not found at ${CHROMIUM}`;
const artifacts = process.env.APOGEE_ARTIFACTS ?? path.resolve('build/artifacts/console');

let srv;
let base;
let browser;
let page;

async function shot(name) {
    fs.mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
}

const topics = async () => (await (await fetch(`${base}/api/topics`)).json()).topicConfigTable;

describe('console login with aclEnable=true', { skip: noBrowser }, () => {
    before(async () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-console-acl-'));
        writeAclFile(dir, `globalWhiteRemoteAddresses:
accounts:
  - accessKey: consoleAdmin
    secretKey: consoleSecret1
    admin: true
`);
        const httpPort = await freePort();
        srv = await startApogee('standalone', [`--httpListenPort=${httpPort}`, '--aclEnable=true'],
            { dir, extraPorts: { namesrvListenPort: await freePort() } });
        await waitForPort(httpPort, 10000, srv.proc);
        base = `http://127.0.0.1:${httpPort}`;
        const { chromium } = require('playwright-core');
        browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
        page = await browser.newPage({ viewport: { width: 1280, height: 700 } });
    });
    after(async () => {
        await browser?.close();
        await srv?.stop();
    });

    it('a write without an account leads to the login page', async () => {
        await page.goto(base + '/#/topics');
        await page.waitForSelector('#login-link');
        await page.fill('#create-topic input[name=topic]', 'LoginTopic0');
        await page.click('#create-topic button[type=submit]');
        await page.waitForSelector('#login-form');
        assert.equal((await topics()).LoginTopic0, undefined);
    });

    it('a wrong secret is reported and keeps nothing', async () => {
        await page.fill('#login-form input[name=accessKey]', 'consoleAdmin');
        await page.fill('#login-form input[name=secretKey]', 'wrong');
        await page.click('#login-form button[type=submit]');
        await page.waitForFunction(() => document.getElementById('login-error')?.textContent.length > 0);
        assert.match(await page.textContent('#login-error'), /Refused/);
        assert.equal(await page.evaluate(() => sessionStorage.getItem('apogee.auth')), null);
        assert.ok(await page.$('#login-form'), 'still on the login page');
        await shot('20-login-refused');
    });

    it('the right account logs in, creates a topic, and logs out', async () => {
        await page.fill('#login-form input[name=secretKey]', 'consoleSecret1');
        await page.click('#login-form button[type=submit]');
        await page.waitForSelector('#create-topic'); // back on the topics page it came from
        assert.match(await page.textContent('#who'), /signed in as consoleAdmin/);
        await page.fill('#create-topic input[name=topic]', 'LoginTopic1');
        await page.click('#create-topic button[type=submit]');
        await page.waitForSelector('#topics-table a:text-is("LoginTopic1")');
        assert.ok((await topics()).LoginTopic1);
        await shot('21-login-topic');
        await page.click('#logout');
        await page.waitForSelector('#login-form');
        assert.equal(await page.evaluate(() => sessionStorage.getItem('apogee.auth')), null);
        const r = await fetch(`${base}/api/topics`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"topic":"LoginTopic2"}' });
        assert.equal(r.status, 401);
    });
});
