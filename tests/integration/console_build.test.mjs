// The console `apogee` serves is the esbuild output of web/ (web/build.mjs, run by the build
// into <build>/web, next to APOGEE_BIN), not the sources: every file of web/index.html and
// web/assets/ is served with the bytes of its built copy and an ETag of their SHA-256, every
// script and style sheet is smaller than its source, and the served latency.js, imported
// from a temp copy of the served assets, computes the same percentiles from a real /metrics
// answer as the source module. Fails when the binary embedded web/ unminified (no
// web/node_modules/.bin/esbuild when cmake ran: `npm ci` in web/, then rebuild). ~1 s.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { apogeeBin, freePort, startApogee, waitForPort } from '../lib/proc.mjs';
import { RemotingClient } from '../lib/remoting.mjs';

const web = fileURLToPath(new URL('../../web/', import.meta.url));
const built = path.join(path.dirname(path.resolve(apogeeBin())), 'web');

function walk(root, dir = '') { // files under root/dir, relative to root, sorted
    return fs.readdirSync(path.join(root, dir), { withFileTypes: true })
        .flatMap((e) => (e.isDirectory() ? walk(root, path.join(dir, e.name)) : [path.join(dir, e.name)]))
        .sort();
}
const sources = ['index.html', ...walk(web, 'assets')];
const url = (f) => (f === 'index.html' ? '/' : `/${f.split(path.sep).join('/')}`);

let srv;
let base;
let tmp;
before(async () => {
    const hp = await freePort();
    srv = await startApogee('standalone', [`--httpListenPort=${hp}`], { extraPorts: { namesrvListenPort: await freePort() } });
    await waitForPort(hp, 10000, srv.proc);
    base = `http://127.0.0.1:${hp}`;
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-console-build-'));
});
after(async () => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    await srv?.stop();
});

test('every file of web/ is served as its esbuild output, smaller than the source', async () => {
    assert.ok(fs.existsSync(built), `no esbuild output at ${built}: run npm ci --no-audit --no-fund in web/ and rebuild`);
    assert.deepEqual(['index.html', ...walk(built, 'assets')], sources, `${built} holds other files than web/`);
    let srcBytes = 0;
    let servedBytes = 0;
    for (const f of sources) {
        const res = await fetch(base + url(f));
        assert.equal(res.status, 200, url(f));
        const served = Buffer.from(await res.arrayBuffer());
        const want = fs.readFileSync(path.join(built, f));
        const src = fs.readFileSync(path.join(web, f));
        assert.ok(served.equals(want), `${url(f)}: served ${served.length} bytes, not the ${want.length} of ${built}/${f}` +
            (served.equals(src) ? ' (the source as it is: cmake found no esbuild)' : ''));
        const sha = crypto.createHash('sha256').update(served).digest('hex');
        assert.equal(res.headers.get('etag'), `"${sha.slice(0, 16)}"`, url(f));
        if (/\.(js|css)$/.test(f)) {
            assert.ok(served.length < src.length, `${url(f)}: ${served.length} bytes served, source ${src.length}`);
        }
        fs.mkdirSync(path.dirname(path.join(tmp, f)), { recursive: true });
        fs.writeFileSync(path.join(tmp, f), served);
        srcBytes += src.length;
        servedBytes += served.length;
    }
    console.log(`# console: ${sources.length} files, ${srcBytes} bytes in web/, ${servedBytes} served`);
});

test('the served latency.js computes what the source computes from a real /metrics answer', async () => {
    assert.ok(fs.existsSync(path.join(tmp, 'assets', 'latency.js')), 'the previous test saves the served assets');
    const c = await RemotingClient.connect(srv.port);
    try {
        for (let i = 0; i < 20; i++) await c.request(28, {}); // GET_BROKER_RUNTIME_INFO: latency samples
    } finally {
        c.close();
    }
    const text = await (await fetch(base + '/metrics')).text();
    const src = await import(pathToFileURL(path.join(web, 'assets', 'latency.js')));
    const min = await import(pathToFileURL(path.join(tmp, 'assets', 'latency.js')));
    assert.deepEqual(Object.keys(min).sort(), Object.keys(src).sort());
    const a = src.parseRpcLatency(text);
    assert.ok(a.size > 0, 'no rocketmq_rpc_latency series in /metrics');
    assert.deepEqual(min.parseRpcLatency(text), a);
    for (const [k, b] of a) {
        for (const q of [0.5, 0.99]) assert.equal(min.quantile(b, q), src.quantile(b, q), `${k} q=${q}`);
    }
});
