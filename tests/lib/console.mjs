// Helpers of the console suites: a JSON caller of the REST admin API that asserts success,
// and an ali-ons push consumer that starts from the first offset and commits every 200 ms.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

// rest(method, path, body) against base(): the parsed answer; fails the test on a non-2xx.
export function restClient(base) {
    return async (method, p, body) => {
        const res = await fetch(base() + p, {
            method, headers: body ? { 'content-type': 'application/json' } : {},
            body: body ? JSON.stringify(body) : undefined,
        });
        const json = await res.json();
        assert.ok(res.ok, `${method} ${p}: ${JSON.stringify(json)}`);
        return json;
    };
}

// An ali-ons consumer of group on name server ns, silent, appended to list (to close later).
export function onsConsumer(ns, group, instanceName, list) {
    const { Consumer } = require('ali-ons');
    const c = new Consumer({
        httpclient: {}, nameSrv: ns, consumerGroup: group, instanceName,
        consumeFromWhere: 'CONSUME_FROM_FIRST_OFFSET', pollNameServerInteval: 1000,
        rebalanceInterval: 1000, persistConsumerOffsetInterval: 200,
        logger: { info() {}, warn() {}, error() {}, debug() {} },
    });
    c.on('error', () => {});
    list.push(c);
    return c;
}

// Calls fn every 200 ms until it returns something truthy, which it returns; throws after ms.
export async function until(what, fn, ms = 20000) {
    const end = Date.now() + ms;
    for (;;) {
        const v = await fn();
        if (v) return v;
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 200));
    }
}
