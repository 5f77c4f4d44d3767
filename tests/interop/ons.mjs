// Shared helpers for the ali-ons interop tests (not a test file itself).
//
//   const h = onsHarness();             per test file: call h.start(args, opts) in before()
//   await h.start(args, {dir, keepDir, port, nsPort, cred})  starts `apogee standalone`
//   await h.restart(args)               SIGTERM (or kill(sig)) + start again on the same dir and ports
//   h.opts(extra)                       ali-ons options pointing at the NameServer
//   await h.createTopic(topic, queues)  UPDATE_AND_CREATE_TOPIC through the admin connection
//   await h.newProducer(group, extra) / h.newConsumer(group, instanceName, extra)
//   await h.stop()                      closes admin + broker (must exit 0), removes the dir
//   until(pred, ms, what) (pred may be async, what a function), sleep(ms)
//   throw new HandlerRetry(why)         inside a handler: ask for a redelivery on purpose
//
// Failures inside message handlers: ali-ons catches whatever a handler throws, emits 'error'
// and hands the message back for a retry, so an assertion that fails inside a handler never
// reaches node:test (the test sees a redelivery, or passes). Every handler given to a consumer
// from h.newConsumer is wrapped: what it throws is recorded and rethrown (ali-ons still
// retries), and the test fails with the first recorded error at the next until(), after the
// test (an afterEach hook) and in h.stop(). A HandlerRetry is the deliberate way to make
// ali-ons redeliver and is not recorded.
import { signExt } from '../lib/acl.mjs';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { afterEach } from 'node:test';
import { startApogee, freePort } from '../lib/proc.mjs';
import { RemotingClient } from '../lib/remoting.mjs';

const require = createRequire(import.meta.url);
export const ons = require('ali-ons');
export const logger = { info() {}, warn() {}, error() {}, debug() {} };
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class HandlerRetry extends Error {}

const handlerErrors = [];
const guarded = Symbol('guarded');

function guard(fn) {
    if (typeof fn !== 'function' || fn[guarded]) return fn;
    const g = async (...args) => {
        try {
            return await fn(...args);
        } catch (e) {
            if (!(e instanceof HandlerRetry) && !handlerErrors.includes(e)) handlerErrors.push(e);
            throw e;
        }
    };
    g[guarded] = true;
    return g;
}

// Throws the first error a message handler threw since the last call, if any.
export function checkHandlers() {
    if (!handlerErrors.length) return;
    const [first] = handlerErrors;
    const n = handlerErrors.length;
    handlerErrors.length = 0;
    assert.fail(`a message handler threw ${n} time${n > 1 ? 's' : ''} (ali-ons retries instead ` +
        `of failing); the first: ${first?.stack ?? first}`);
}

export async function until(pred, ms, what) {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
        checkHandlers();
        if (await pred()) return;
        await sleep(50);
    }
    assert.fail(`timed out waiting for ${typeof what === 'function' ? what() : what}`);
}

// APOGEE_TEST_NAMESRV=host:port plus APOGEE_TEST_BROKER=host:port point the harness at a
// NameServer and broker that are already running (e.g. Apache RocketMQ, to check what
// the tests expect against the real thing); restarts are then not possible.
const externalNs = process.env.APOGEE_TEST_NAMESRV || '';
const externalBroker = process.env.APOGEE_TEST_BROKER || '';
export const external = Boolean(externalNs && externalBroker);

export function onsHarness() {
    afterEach(() => checkHandlers());
    const h = {
        srv: null,
        admin: null,
        port: 0,
        nsPort: 0,
        dir: null,
        args: [],
        clients: [],
    };
    h.start = async (args = [], o = {}) => {
        h.args = args;
        if (external) {
            // A broker that is already running (Apache RocketMQ, say): no process to own.
            [h.nsPort, h.port] = [Number(externalNs.split(':')[1]), Number(externalBroker.split(':')[1])];
            h.admin = await RemotingClient.connect(h.port);
            return null;
        }
        h.port = o.port ?? h.port ?? 0;
        h.nsPort = h.nsPort || (await freePort());
        h.dir = h.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-ons-'));
        h.srv = await startApogee('standalone', ['--mappedFileSizeCommitLog=67108864', ...args], {
            dir: h.dir,
            keepDir: true,
            port: h.port || undefined,
            extraPorts: { namesrvListenPort: h.nsPort },
        });
        h.port = h.srv.port;
        h.admin = await RemotingClient.connect(h.port);
        // The broker port accepts a moment before the broker has registered with the
        // NameServer; an ali-ons client that finds no route at start never recovers.
        const ns = await RemotingClient.connect(h.nsPort);
        try {
            // o.cred signs the poll for a NameServer with aclEnable=true.
            const ext = o.cred ? signExt({ topic: 'TBW102' }, null, o.cred) : { topic: 'TBW102' };
            await until(async () => (await ns.request(105, ext)).code === 0,
                10000, 'the broker to register with the NameServer');
        } finally {
            await ns.close();
        }
        return h.srv;
    };
    // Stops the broker with `signal` and starts it again on the same dir and ports.
    h.restart = async (signal = 'SIGTERM', args = h.args) => {
        if (external) throw new Error('restart needs a broker this harness started');
        await h.admin?.close();
        h.admin = null;
        const r = await h.srv.stop(signal);
        r.output = h.srv.output(); // what the stopped process printed
        await h.start(args);
        return r;
    };
    h.stop = async () => {
        await h.admin?.close();
        if (external) return checkHandlers();
        const r = await h.srv?.stop();
        if (h.dir) fs.rmSync(h.dir, { recursive: true, force: true });
        // A graceful stop exits 0 (under ASan this also catches leaks).
        if (r && r.code !== 0)
            throw new Error(`apogee exited ${r.code}/${r.sig} on SIGTERM:\n${h.srv.output().slice(-4000)}`);
        checkHandlers();
    };
    h.opts = (extra = {}) => ({
        nameSrv: `127.0.0.1:${h.nsPort}`,
        httpclient: {},
        logger,
        pollNameServerInteval: 1000,
        rebalanceInterval: 1000,
        ...extra,
    });
    h.createTopic = async (topic, queues = 4) => {
        const r = await h.admin.request(17, {
            topic, defaultTopic: 'TBW102', readQueueNums: String(queues),
            writeQueueNums: String(queues), perm: '6', topicFilterType: 'SINGLE_TAG',
            topicSysFlag: '0', order: 'false',
        });
        assert.equal(r.code, 0, r.remark);
        await sleep(200); // the broker re-registers with the NameServer
    };
    h.newProducer = async (group, extra = {}) => {
        const p = new ons.Producer(h.opts({ producerGroup: group, ...extra }));
        p.on('error', () => {});
        await p.ready();
        h.clients.push(p);
        return p;
    };
    h.newConsumer = (group, instanceName, extra = {}) => {
        const c = new ons.Consumer(h.opts({
            consumerGroup: group, instanceName,
            consumeFromWhere: 'CONSUME_FROM_FIRST_OFFSET', ...extra,
        }));
        c.on('error', () => {}); // handler errors are recorded by guard()
        const subscribe = c.subscribe;
        c.subscribe = function (topic, ...rest) {
            rest[rest.length - 1] = guard(rest[rest.length - 1]);
            return subscribe.call(this, topic, ...rest);
        };
        h.clients.push(c);
        return c;
    };
    return h;
}
