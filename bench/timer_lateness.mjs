// Lateness of delivered timer messages: for every record of TOPIC (all queues), its store
// time minus its TIMER_OUT_MS. Prints one JSON line: count, plain (records without
// TIMER_OUT_MS: the bench's warm-up send, or sent after their deliver time), early (must be 0), p50, p99, max (ms),
// first and last store time of the timer copies.
//   node bench/timer_lateness.mjs PORT TOPIC QUEUES
import { RemotingClient } from '../tests/lib/remoting.mjs';
import { readAll } from '../tests/lib/queues.mjs';

const [port, topic, queues] = process.argv.slice(2);
const cl = await RemotingClient.connect(Number(port));
const late = [];
let first = Infinity;
let last = 0;
let plain = 0;
for (let q = 0; q < Number(queues); q++) {
    for (const r of await readAll(cl, topic, q)) {
        if (r.props.TIMER_OUT_MS === undefined) {
            plain++; // sent at or after its deliver time: stored at once
            continue;
        }
        late.push(r.storeTs - Number(r.props.TIMER_OUT_MS));
        first = Math.min(first, r.storeTs);
        last = Math.max(last, r.storeTs);
    }
}
cl.close();
late.sort((a, b) => a - b);
const pct = (p) => (late.length ? late[Math.min(late.length - 1, Math.floor((p / 100) * late.length))] : null);
console.log(JSON.stringify({
    count: late.length, plain, early: late.filter((x) => x < 0).length,
    p50: pct(50), p99: pct(99), max: late.at(-1) ?? null, first, last,
}));
