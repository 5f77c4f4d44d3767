// Pop load: N consumers of one group pop (POP_MESSAGE, 32 at a time) and acknowledge every
// message of a topic that `apogee bench produce` filled, each consumer on its own
// connection with its acks pipelined. Checks that every (queue, offset) is delivered and
// none twice while its first delivery was still invisible; prints one JSON line.
//
//   node tests/lib/pop_load.mjs --port=P --topic=T [--queues=8] [--consumers=8]
//        [--invisible=60000] [--group=G] [--messages=N]
// Without --messages, N is what the topic's queues hold (their max offsets).
import { RemotingClient } from './remoting.mjs';

const args = Object.fromEntries(process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, '').split('=');
    return [k, v];
}));
const port = Number(args.port);
const topic = args.topic;
let total = Number(args.messages ?? 0);
const consumers = Number(args.consumers ?? 8);
const invisible = Number(args.invisible ?? 60000);
const group = args.group ?? 'CG_POP_LOAD';

const first = new Map(); // "q:o" -> first delivery ms
let dupWhileInvisible = 0;
let redelivered = 0;
let acked = 0;
let pops = 0;

function handleOf(ext, m, start) {
    return `${start} ${ext.popTime} ${ext.invisibleTime} 0 0 b ${m.queueId} ${m.queueOffset}`;
}

// Reads queue id and offset of each record without decoding bodies.
function recs(buf) {
    const out = [];
    for (let p = 0; buf && p < buf.length;) {
        const total = buf.readInt32BE(p);
        out.push({ queueId: buf.readInt32BE(p + 12), queueOffset: Number(buf.readBigInt64BE(p + 20)) });
        p += total;
    }
    return out;
}

async function consumer() {
    const cl = await RemotingClient.connect(port);
    let idle = 0;
    for (;;) {
        if (first.size >= total) break;
        const r = await cl.request(200050, {
            consumerGroup: group, topic, queueId: '-1', maxMsgNums: '32',
            invisibleTime: String(invisible), pollTime: '0', bornTime: String(Date.now()), initMode: '0',
        }, null, { timeoutMs: 30000 });
        pops++;
        if (r.code !== 0) {
            if (first.size >= total) break;
            idle++;
            await new Promise((ok) => setTimeout(ok, 5));
            continue;
        }
        idle = 0;
        const now = Date.now();
        const starts = Object.fromEntries(r.ext.startOffsetInfo.split(';').map((s) => {
            const [, q, o] = s.split(' ');
            return [q, o];
        }));
        const acks = [];
        for (const m of recs(r.body)) {
            const key = `${m.queueId}:${m.queueOffset}`;
            const t = first.get(key);
            if (t === undefined) first.set(key, now);
            else if (now - t < invisible) dupWhileInvisible++;
            else redelivered++;
            acks.push(cl.request(200051, {
                consumerGroup: group, topic, queueId: String(m.queueId),
                extraInfo: handleOf(r.ext, m, starts[m.queueId]), offset: String(m.queueOffset),
            }, null, { timeoutMs: 30000 }));
        }
        for (const a of await Promise.all(acks)) {
            if (a.code !== 0) throw new Error(`ack refused: ${a.code} ${a.remark}`);
            acked++;
        }
    }
    cl.close();
}

if (!total) {
    // Every message the topic holds (GET_MAX_OFFSET of each queue).
    const cl = await RemotingClient.connect(port);
    for (let q = 0; q < Number(args.queues ?? 8); q++)
        total += Number((await cl.request(30, { topic, queueId: String(q) })).ext.offset);
    cl.close();
}
const t0 = Date.now();
await Promise.all(Array.from({ length: consumers }, consumer));
const ms = Date.now() - t0;
console.log(JSON.stringify({
    messages: total, delivered: first.size, lost: total - first.size, dupWhileInvisible,
    redelivered, acked, pops, consumers, ms, msgsPerSec: Math.round(first.size / (ms / 1000)),
}));
process.exit(first.size === total && dupWhileInvisible === 0 ? 0 : 1);
