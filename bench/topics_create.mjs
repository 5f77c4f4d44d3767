// Topic creation speed: N UPDATE_AND_CREATE_TOPIC requests to a fresh `apogee standalone`,
// `inflight` at a time (1 = one at a time: each waits for the previous reply, which comes only
// once the topic is on disk), and the NameServer's route lookup latency meanwhile (one
// GET_ROUTEINFO_BY_TOPIC for an existing topic every 10 ms).
//
// usage: node bench/topics_create.mjs [N=2000] [inflight=1]
//        APOGEE_BIN (default build/apogee) picks the binary; the data directory is a fresh
//        temp directory, removed at the end.
import { freePort, startApogee } from '../tests/lib/proc.mjs';
import { RemotingClient } from '../tests/lib/remoting.mjs';

const N = Number(process.argv[2] ?? 2000);
const inflight = Number(process.argv[3] ?? 1);
const nsPort = await freePort();
const srv = await startApogee('standalone', [], { extraPorts: { namesrvListenPort: nsPort } });
const br = await RemotingClient.connect(srv.port);
const ns = await RemotingClient.connect(nsPort);

// A topic for the route lookups, routed before the clock starts.
await br.request(17, { topic: 'BenchProbe', readQueueNums: '4', writeQueueNums: '4', perm: '6' });
for (let i = 0; i < 200 && (await ns.request(105, { topic: 'BenchProbe' })).code !== 0; i++)
    await new Promise((r) => setTimeout(r, 10));

const lat = [];
let done = false;
const prober = (async () => {
    while (!done) {
        const t = process.hrtime.bigint();
        await ns.request(105, { topic: 'BenchProbe' });
        lat.push(Number(process.hrtime.bigint() - t) / 1e6);
        await new Promise((r) => setTimeout(r, 10));
    }
})();

let next = 0;
let failed = 0;
const t0 = process.hrtime.bigint();
await Promise.all(Array.from({ length: inflight }, async () => {
    while (next < N) {
        const i = next++;
        const r = await br.request(17, { topic: `BenchTopic${i}`, readQueueNums: '8', writeQueueNums: '8', perm: '6' });
        if (r.code !== 0) failed++;
    }
}));
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
done = true;
await prober;
lat.sort((a, b) => a - b);
const pct = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(lat.length * p))].toFixed(1) : '-');
console.log(`${N} topics, ${inflight} in flight: ${secs.toFixed(2)} s (${Math.round(N / secs)}/s), ` +
    `${failed} failed; route lookups: ${lat.length}, p50 ${pct(0.5)} ms, p99 ${pct(0.99)} ms, max ${pct(1)} ms`);
br.close();
ns.close();
await srv.stop();
