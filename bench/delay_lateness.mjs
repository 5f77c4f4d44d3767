// Delayed messages: send throughput and delivery lateness. Starts a fresh `apogee standalone`,
// sends N messages at one delay level with the C client (`apogee bench produce
// --delayLevel=L`), waits until every one reached its topic, then reads the schedule queue
// and the topic back and reports, per message (matched by UNIQ_KEY), how late its copy was
// stored: copy store time - (held record's store time + the level's delay). Negative would
// be early.
//
// With a fourth argument `backlog`, the broker is stopped right after the sends and started
// again once every message is due: the figure is then the delivery rate of a backlog that
// fell due while the broker was down (time from the start to the last copy).
//
// usage: node bench/delay_lateness.mjs [N=100000] [level=2] [threads=4] [backlog]
//        APOGEE_BIN (default build/apogee) picks the binary; messageDelayLevel is RocketMQ's
//        default (level 2 = 5 s); the data directory is a fresh temp directory, removed at the end.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { apogeeBin, freePort, startApogee } from '../tests/lib/proc.mjs';
import { RemotingClient, waitForRoute } from '../tests/lib/remoting.mjs';
import { decodeRecords } from '../tests/lib/records.mjs';

const N = Number(process.argv[2] ?? 100000);
const level = Number(process.argv[3] ?? 2);
const threads = Number(process.argv[4] ?? 4);
const backlog = process.argv[5] === 'backlog';
const DELAY_MS = [1000, 5000, 10000, 30000, 60000];
const topic = 'DelayBench';
const nsPort = await freePort();
const opts = { extraPorts: { namesrvListenPort: nsPort }, keepDir: true };
let srv = await startApogee('standalone', [], opts);
let br = await RemotingClient.connect(srv.port);
await waitForRoute(nsPort);

const prod = spawnSync(apogeeBin(), ['bench', 'produce', `--namesrvAddr=127.0.0.1:${nsPort}`,
    `--topic=${topic}`, `--threads=${threads}`, `--messages=${N}`, `--delayLevel=${level}`, '--json'],
{ encoding: 'utf8' });
const summary = JSON.parse(prod.stdout.trim().split('\n').pop());

const maxOffset = async (t, q) => Number((await br.request(30, { topic: t, queueId: String(q) })).ext.offset ?? 0);
async function readAll(t, q) {
    const out = [];
    for (;;) {
        const r = await br.request(11, {
            consumerGroup: 'CG_BENCH', topic: t, queueId: String(q), queueOffset: String(out.length),
            maxMsgNums: '32', sysFlag: '0', commitOffset: '0', suspendTimeoutMillis: '0',
            subscription: '*', subVersion: '0', expressionType: 'TAG',
        });
        if (r.code !== 0) return out;
        out.push(...decodeRecords(r.body));
    }
}
if (backlog) {
    br.close();
    await srv.stop();
    await new Promise((r) => setTimeout(r, DELAY_MS[level - 1] + 1000));
    srv = await startApogee('standalone', [], { ...opts, dir: srv.dir, port: srv.port });
    br = await RemotingClient.connect(srv.port);
}
const t0 = Date.now();
for (;;) {
    let n = 0;
    for (let q = 0; q < 4; q++) n += await maxOffset(topic, q);
    if (n >= summary.sent || Date.now() - t0 > DELAY_MS[level - 1] + 120000) break;
    await new Promise((r) => setTimeout(r, backlog ? 20 : 200));
}
const drainMs = Date.now() - t0;
const due = new Map();
for (const rec of await readAll('SCHEDULE_TOPIC_XXXX', level - 1))
    due.set(rec.props.UNIQ_KEY, rec.storeTs + DELAY_MS[level - 1]);
const late = [];
for (let q = 0; q < 4; q++)
    for (const rec of await readAll(topic, q))
        if (due.has(rec.props.UNIQ_KEY)) late.push(rec.storeTs - due.get(rec.props.UNIQ_KEY)); // not the warm-up send
late.sort((a, b) => a - b);
const pct = (p) => late[Math.min(late.length - 1, Math.floor(late.length * p))];
console.log(JSON.stringify({
    messages: N, sent: summary.sent, delivered: late.length, level,
    sendMsgsPerSec: Math.round(summary.tps ?? summary.msgs_per_sec ?? 0),
    latenessMs: { min: late[0], p50: pct(0.5), p99: pct(0.99), max: late.at(-1) },
    early: late.filter((x) => x < 0).length,
    ...(backlog ? { backlogDrainMs: drainMs, backlogMsgsPerSec: Math.round(late.length / (drainMs / 1000)) } : {}),
    produce: summary,
}));
br.close();
await srv.stop();
fs.rmSync(srv.dir, { recursive: true, force: true });
