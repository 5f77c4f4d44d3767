// Revive lateness: one consumer pops N messages of a fresh group with invisibleTime I and
// acknowledges none; it then long-polls until every one came back, and reports how late
// each redelivery was against its deadline (first delivery's answer time + I). One JSON
// line.
//
//   node tests/lib/pop_revive.mjs --port=P --topic=T --messages=N [--invisible=2000]
//        [--group=G]
import { RemotingClient } from './remoting.mjs';

const args = Object.fromEntries(process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, '').split('=');
    return [k, v];
}));
const port = Number(args.port);
const topic = args.topic;
const n = Number(args.messages);
const invisible = Number(args.invisible ?? 2000);
const group = args.group ?? `CG_REVIVE_${Date.now()}`;

function keys(buf) {
    const out = [];
    for (let p = 0; buf && p < buf.length;) {
        out.push(`${buf.readInt32BE(p + 12)}:${buf.readBigInt64BE(p + 20)}`);
        p += buf.readInt32BE(p);
    }
    return out;
}

const cl = await RemotingClient.connect(port);
const pop = (poll) => cl.request(200050, {
    consumerGroup: group, topic, queueId: '-1', maxMsgNums: '32',
    invisibleTime: String(invisible), pollTime: String(poll), bornTime: String(Date.now()), initMode: '0',
}, null, { timeoutMs: poll + 10000 });
const due = new Map();
while (due.size < n) {
    const r = await pop(0);
    if (r.code !== 0) break;
    const t = Date.now();
    for (const k of keys(r.body)) if (due.size < n && !due.has(k)) due.set(k, t + invisible);
}
const late = [];
const start = Date.now();
while (due.size > 0 && Date.now() - start < invisible * 3 + 30000) {
    const r = await pop(5000);
    if (r.code !== 0) continue;
    const t = Date.now();
    for (const k of keys(r.body)) {
        const d = due.get(k);
        if (d !== undefined) {
            late.push(t - d);
            due.delete(k);
        }
    }
}
late.sort((a, b) => a - b);
const q = (p) => late[Math.min(late.length - 1, Math.floor(p * late.length))];
console.log(JSON.stringify({
    messages: n, redelivered: late.length, early: late.filter((x) => x < 0).length,
    lateMsP50: q(0.5), lateMsP99: q(0.99), lateMsMax: late[late.length - 1], invisible,
}));
cl.close();
process.exit(late.length === n && late[0] >= 0 && late[late.length - 1] <= 1000 ? 0 : 1);
