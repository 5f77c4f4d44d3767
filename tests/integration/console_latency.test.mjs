// The overview's latency percentiles (web/assets/latency.js) computed as the browser does, in
// Node: the `rocketmq_rpc_latency` histogram parsed from a real /metrics answer of `apogee
// standalone` after traffic, bucket deltas between two scrapes, and p50/p99 interpolated
// within buckets checked against hand-computed values. ~2 s.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, startApogee, waitForPort } from '../lib/proc.mjs';
import { RemotingClient } from '../lib/remoting.mjs';
import { bucketDeltas, parseRpcLatency, quantile } from '../../web/assets/latency.js';

test('quantile interpolates within the bucket where the rank falls', () => {
    // 100 observations: 50 in (0,1], 40 in (1,3], 9 in (3,5], 1 above 3000.
    const b = [[1, 50], [3, 90], [5, 99], [3000, 99], [Infinity, 100]];
    assert.equal(quantile(b, 0.5), 1);
    assert.equal(quantile(b, 0.7), 2); // rank 70: halfway through (1,3]
    assert.ok(Math.abs(quantile(b, 0.99) - 5) < 1e-9);
    assert.equal(quantile(b, 1), 3000); // the +Inf bucket: the largest finite bound
    assert.ok(Number.isNaN(quantile([[1, 0], [Infinity, 0]], 0.5)));
    assert.ok(Number.isNaN(quantile([], 0.5)));
});

test('bucketDeltas: the change since the last scrape; a reset counts from 0', () => {
    const a = new Map([['remoting 10', [[1, 5], [Infinity, 6]]]]);
    const b = new Map([['remoting 10', [[1, 7], [Infinity, 10]]], ['remoting 11', [[1, 1], [Infinity, 1]]]]);
    const d = bucketDeltas(a, b);
    assert.deepEqual(d.get('remoting 10'), [[1, 2], [Infinity, 4]]);
    assert.deepEqual(d.get('remoting 11'), [[1, 1], [Infinity, 1]]);
    assert.deepEqual(bucketDeltas(b, a).get('remoting 10'), [[1, 5], [Infinity, 6]]);
});

let srv;
let base;
before(async () => {
    const hp = await freePort();
    srv = await startApogee('standalone', [`--httpListenPort=${hp}`], { extraPorts: { namesrvListenPort: await freePort() } });
    await waitForPort(hp, 10000, srv.proc);
    base = `http://127.0.0.1:${hp}`;
});
after(async () => srv?.stop());

test('parses the broker /metrics histogram; the deltas count the requests between scrapes', async () => {
    const c = await RemotingClient.connect(srv.port);
    try {
        await c.request(28, {});
        const first = parseRpcLatency(await (await fetch(`${base}/metrics`)).text());
        for (let i = 0; i < 7; i++) await c.request(28, {});
        const second = parseRpcLatency(await (await fetch(`${base}/metrics`)).text());
        const b = second.get('remoting 28');
        assert.ok(b, [...second.keys()].join());
        assert.equal(b[b.length - 1][0], Infinity);
        assert.ok(b.every(([, n], i) => i === 0 || n >= b[i - 1][1]), 'cumulative');
        const d = bucketDeltas(first, second).get('remoting 28');
        assert.equal(d[d.length - 1][1], 7);
        const p50 = quantile(d, 0.5), p99 = quantile(d, 0.99);
        assert.ok(p50 >= 0 && p50 <= p99 && p99 <= 3000, `${p50} ${p99}`);
    } finally {
        c.close();
    }
});
