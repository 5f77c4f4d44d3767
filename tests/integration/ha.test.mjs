// Master/slave replication (RocketMQ 4.x HA): a NameServer, an ASYNC_MASTER and a SLAVE of
// the same brokerName. ali-ons producers send to the master; the slave's commit log and
// consume queues catch up byte for byte (small segments, so the stream crosses segment
// ends); sends to the slave are refused with SERVICE_NOT_AVAILABLE; committed offsets and
// topics reach the slave by its metadata sync, and a topic and a group deleted on the master
// leave the slave's tables (a sync against a master that does not answer deletes nothing);
// after the master stops, a fresh ali-ons consumer reads every message exactly once from the
// slave through the NameServer's route; a restarted slave and a restarted master pick up where they were (no gap, no
// duplicate); a master whose store was replaced (the slave's log is ahead) is refused by
// the slave. A fake master (raw socket) sends a frame at the wrong offset, a malformed
// frame and a damaged record: each closes that HA connection with a WARN and the slave
// goes on serving. A SYNC_MASTER answers SLAVE_NOT_AVAILABLE without a slave, holds a send
// until a (fake) slave reports holding it, answers FLUSH_SLAVE_TIMEOUT when none does, and
// with a real slave every acknowledged message is on the slave when its answer comes.
// 127.0.0.1, random ports, temp dirs; every server exits 0 on SIGTERM.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

import { freePort, runBench, runSub, startApogee } from '../lib/proc.mjs';
import { RemotingClient, jsonBody } from '../lib/remoting.mjs';
import { logger, ons, sleep, until } from '../interop/ons.mjs';

const SEG = 131072; // mappedFileSizeCommitLog: 2,000 messages fill several segments
const TOPIC = 'HaTopic';
const N = 2000;

after(() => setImmediate(() => process.exit())); // ali-ons keeps timers alive

async function rpc(port, code, ext = {}, body = null) {
    const c = await RemotingClient.connect(port);
    try {
        return await c.request(code, ext, body);
    } finally {
        c.close();
    }
}

async function runtime(port) {
    const r = await rpc(port, 28);
    assert.equal(r.code, 0, r.remark);
    return jsonBody(r).table;
}

async function queueMax(port, topic, queues) {
    const out = [];
    for (let q = 0; q < queues; q++) {
        const r = await rpc(port, 30, { topic, queueId: String(q) });
        out.push(r.code === 0 ? Number(r.ext.offset) : -1);
    }
    return out;
}

function brokerArgs(nsAddr, extra = []) {
    return [`--namesrvAddr=${nsAddr}`, '--brokerName=broker-ha', '--allowLoopbackAdvertise=true',
        `--mappedFileSizeCommitLog=${SEG}`, '--haSendHeartbeatInterval=1000',
        '--flushConsumerOffsetInterval=1000', ...extra];
}

async function startMaster(nsAddr, dir, port, haPort) {
    return startApogee('broker', brokerArgs(nsAddr, [`--haListenPort=${haPort}`]),
        { dir, keepDir: true, port });
}

async function startSlave(nsAddr, dir, port, extra = []) {
    return startApogee('broker', brokerArgs(nsAddr, ['--brokerRole=SLAVE', '--brokerId=1', ...extra]),
        { dir, keepDir: true, port });
}

function tmp(name) {
    return fs.mkdtempSync(path.join(os.tmpdir(), `apogee-ha-${name}-`));
}

// Waits until the slave's commit log ends where the master's does; returns that offset.
async function caughtUp(mPort, sPort, ms = 20000) {
    let m, s;
    await until(async () => {
        m = (await runtime(mPort)).commitLogMaxOffset;
        s = (await runtime(sPort)).commitLogMaxOffset;
        return m === s && Number(m) > 0;
    }, ms, () => `the slave's commit log (${s}) to reach the master's (${m})`);
    return Number(m);
}

function sameLogs(mDir, sDir, end) {
    for (let base = 0; base < end; base += SEG) {
        const name = String(base).padStart(20, '0');
        const a = fs.readFileSync(path.join(mDir, 'commitlog', name));
        const b = fs.readFileSync(path.join(sDir, 'commitlog', name));
        const n = Math.min(SEG, end - base);
        assert.ok(a.subarray(0, n).equals(b.subarray(0, n)), `segment ${name} differs`);
    }
}

async function sendRange(p, from, to) {
    for (let i = from; i < to; i += 50) {
        const batch = [];
        for (let k = i; k < Math.min(to, i + 50); k++) {
            const m = new ons.Message(TOPIC, `tag${k % 3}`, Buffer.from(`ha-body-${k}`));
            m.keys = [`ha-key-${k}`];
            batch.push(p.send(m));
        }
        for (const r of await Promise.all(batch)) assert.equal(r.sendStatus, 'SEND_OK');
    }
}

test('ASYNC_MASTER + SLAVE: stream, refuse, sync metadata, fail over to the slave, resume',
    async () => {
        const ns = await startApogee('namesrv', []);
        const nsAddr = `127.0.0.1:${ns.port}`;
        const mDir = tmp('m'), sDir = tmp('s');
        const mPort = await freePort(), sPort = await freePort(), haPort = await freePort();
        let master = await startMaster(nsAddr, mDir, mPort, haPort);
        let slave = await startSlave(nsAddr, sDir, sPort);
        const clients = [];
        try {
            const t = await rpc(mPort, 17, { topic: TOPIC, readQueueNums: '4', writeQueueNums: '4', perm: '6' });
            assert.equal(t.code, 0, t.remark);
            // The route lists both brokers under one brokerName.
            await until(async () => {
                const r = await rpc(ns.port, 105, { topic: TOPIC });
                if (r.code !== 0) return false;
                const bd = jsonBody(r).brokerDatas;
                return bd.length === 1 && Object.keys(bd[0].brokerAddrs).sort().join() === '0,1';
            }, 15000, 'a route of HaTopic with brokerId 0 and 1');
            const opts = { nameSrv: nsAddr, httpclient: {}, logger, pollNameServerInteval: 1000,
                rebalanceInterval: 1000 };
            const p = new ons.Producer({ ...opts, producerGroup: 'PG_HA' });
            p.on('error', () => {});
            clients.push(p);
            await p.ready();
            await sendRange(p, 0, N);

            // The slave holds the same bytes and the same queues.
            const end = await caughtUp(mPort, sPort);
            assert.ok(end > 2 * SEG, `only ${end} bytes: the stream crossed no segment end`);
            assert.deepEqual(await queueMax(sPort, TOPIC, 4), await queueMax(mPort, TOPIC, 4));
            assert.equal((await queueMax(sPort, TOPIC, 4)).reduce((a, b) => a + b), N);
            sameLogs(mDir, sDir, end);
            const mi = await runtime(mPort), si = await runtime(sPort);
            assert.equal(mi.brokerRole, 'ASYNC_MASTER');
            assert.equal(mi.haConnections, '1');
            assert.equal(mi.haSlaveAckOffset, String(end));
            assert.equal(mi.haSlaveInSync, 'true');
            assert.equal(si.brokerRole, 'SLAVE');
            assert.equal(si.haConnected, 'true');
            assert.equal(si.masterAddr, `127.0.0.1:${mPort}`);

            // A send straight to the slave: SERVICE_NOT_AVAILABLE (14), as RocketMQ's slave.
            const refused = await rpc(sPort, 310, {
                a: 'PG_HA', b: TOPIC, c: 'TBW102', d: '4', e: '0', f: '0',
                g: String(Date.now()), h: '0', i: '', k: 'false',
            }, Buffer.from('x'));
            assert.equal(refused.code, 14, refused.remark);
            assert.match(refused.remark, /is a slave/);

            // A delayed message moves level 1's progress on the master; the slave copies it.
            assert.equal((await rpc(mPort, 17, { topic: 'HaDelay', readQueueNums: '1', writeQueueNums: '1', perm: '6' })).code, 0);
            const delayed = await rpc(mPort, 310, {
                a: 'PG_HA', b: 'HaDelay', c: 'TBW102', d: '1', e: '0', f: '0',
                g: String(Date.now()), h: '0', i: 'DELAY\u00011\u0002', k: 'false',
            }, Buffer.from('later'));
            assert.equal(delayed.code, 0, delayed.remark);
            const level1 = async (port) => jsonBody(await rpc(port, 45)).offsetTable['1'];
            await until(async () => (await level1(mPort)) === 1, 10000, 'the delayed message to be delivered');
            await until(async () => (await level1(sPort)) === 1, 30000, 'the delay progress on the slave');

            // A consumer of the master commits offsets; the slave copies them.
            const got1 = new Set();
            const c1 = new ons.Consumer({ ...opts, consumerGroup: 'CG_HA_MASTER',
                consumeFromWhere: 'CONSUME_FROM_FIRST_OFFSET' });
            c1.on('error', () => {});
            clients.push(c1);
            c1.subscribe(TOPIC, '*', async (msg) => { got1.add(msg.body.toString()); });
            await until(() => got1.size === N, 60000, () => `${got1.size}/${N} from the master`);
            await c1.close();
            const committed = await queueMax(mPort, TOPIC, 4);
            await until(async () => {
                for (let q = 0; q < 4; q++) {
                    const r = await rpc(sPort, 14, { consumerGroup: 'CG_HA_MASTER', topic: TOPIC, queueId: String(q) });
                    if (r.code !== 0 || Number(r.ext.offset) !== committed[q]) return false;
                }
                return true;
            }, 30000, 'the master\'s committed offsets on the slave');
            // The master's subscription group reached the slave too.
            const groups = jsonBody(await rpc(sPort, 201)).subscriptionGroupTable;
            assert.ok(groups.CG_HA_MASTER, 'CG_HA_MASTER on the slave');

            // A topic and a group deleted on the master go from the slave's tables too.
            const slaveHas = async () => ({
                topic: Boolean(jsonBody(await rpc(sPort, 21)).topicConfigTable.HaGone),
                group: Boolean(jsonBody(await rpc(sPort, 201)).subscriptionGroupTable.CG_HA_GONE),
            });
            assert.equal((await rpc(mPort, 17, { topic: 'HaGone', readQueueNums: '2', writeQueueNums: '2', perm: '6' })).code, 0);
            assert.equal((await rpc(mPort, 200, {}, Buffer.from(JSON.stringify({ groupName: 'CG_HA_GONE' })))).code, 0);
            await until(async () => {
                const h = await slaveHas();
                return h.topic && h.group;
            }, 30000, 'HaGone and CG_HA_GONE on the slave');
            assert.equal((await rpc(mPort, 215, { topic: 'HaGone' })).code, 0);
            assert.equal((await rpc(mPort, 207, { groupName: 'CG_HA_GONE' })).code, 0);
            await until(async () => {
                const h = await slaveHas();
                return !h.topic && !h.group;
            }, 30000, 'HaGone and CG_HA_GONE to leave the slave');
            await slave.waitOutput(/slave: 1 topic\(s\) removed, as master \S+ no longer has them/, 5000);
            await slave.waitOutput(/slave: 1 subscription group\(s\) removed/, 5000);
            // A master that does not answer (stopped with SIGSTOP, so the NameServer still
            // names it): the slave's next metadata sync times out and deletes nothing.
            master.proc.kill('SIGSTOP');
            try {
                await slave.waitOutput(/GET_ALL_SUBSCRIPTIONGROUP_CONFIG from master \S+ failed/, 30000);
            } finally {
                master.proc.kill('SIGCONT');
            }
            assert.match(slave.output(), /GET_ALL_TOPIC_CONFIG from master \S+ failed/);
            assert.ok(jsonBody(await rpc(sPort, 21)).topicConfigTable[TOPIC], `${TOPIC} on the slave`);
            assert.ok(jsonBody(await rpc(sPort, 201)).subscriptionGroupTable.CG_HA_MASTER,
                'CG_HA_MASTER on the slave');

            // The master goes away: a fresh consumer reads everything from the slave.
            const mr = await master.stop();
            assert.equal(mr.code, 0);
            await until(async () => {
                const r = await rpc(ns.port, 105, { topic: TOPIC });
                return r.code === 0 && Object.keys(jsonBody(r).brokerDatas[0].brokerAddrs).join() === '1';
            }, 15000, 'the route to list the slave only');
            const got2 = new Map();
            const c2 = new ons.Consumer({ ...opts, consumerGroup: 'CG_HA_FAILOVER',
                consumeFromWhere: 'CONSUME_FROM_FIRST_OFFSET' });
            c2.on('error', () => {});
            clients.push(c2);
            c2.subscribe(TOPIC, '*', async (msg) => {
                const k = msg.keys;
                got2.set(k, (got2.get(k) ?? 0) + 1);
                assert.equal(msg.body.toString(), `ha-body-${k.slice('ha-key-'.length)}`);
            });
            await until(() => got2.size === N, 60000, () => `${got2.size}/${N} from the slave`);
            // The slave's tables outlived the master too.
            assert.ok(jsonBody(await rpc(sPort, 21)).topicConfigTable[TOPIC], `${TOPIC} on the slave`);
            assert.ok(jsonBody(await rpc(sPort, 201)).subscriptionGroupTable.CG_HA_MASTER,
                'CG_HA_MASTER on the slave');
            await sleep(1500);
            await c2.close();
            for (let i = 0; i < N; i++) assert.equal(got2.get(`ha-key-${i}`), 1, `ha-key-${i}`);
            // Apogee's own C client reads from the slave too (`apogee bench consume` drains
            // every queue with the pull consumer).
            const drained = await runBench(['consume', `--namesrvAddr=${nsAddr}`, `--topic=${TOPIC}`,
                '--group=CG_HA_BENCH', '--json']);
            assert.equal(drained.code, 0, drained.out);
            assert.equal(drained.json?.received, N, drained.out);

            // The master comes back on its store; a restarted slave resumes at its own end:
            // later sends replicate without a gap or a duplicate.
            master = await startMaster(nsAddr, mDir, mPort, haPort);
            await until(async () => {
                const r = await rpc(ns.port, 105, { topic: TOPIC });
                return r.code === 0 && Object.keys(jsonBody(r).brokerDatas[0].brokerAddrs).sort().join() === '0,1';
            }, 15000, 'the route to list the master again');
            await sleep(2500); // the producer polls the NameServer every second
            await sendRange(p, N, N + 100);
            const endBefore = await caughtUp(mPort, sPort);
            const sr = await slave.stop();
            assert.equal(sr.code, 0);
            await sendRange(p, N + 100, N + 200);
            slave = await startSlave(nsAddr, sDir, sPort);
            const end2 = await caughtUp(mPort, sPort);
            assert.match(slave.output(), new RegExp(`reporting commit-log end ${endBefore}\\b`));
            assert.deepEqual(await queueMax(sPort, TOPIC, 4), await queueMax(mPort, TOPIC, 4));
            assert.equal((await queueMax(sPort, TOPIC, 4)).reduce((a, b) => a + b), N + 200);
            sameLogs(mDir, sDir, end2);
            assert.doesNotMatch(slave.output(), /WARN +\[ha\]/);

            // A master with an empty store (replaced): the slave's log is ahead; it refuses
            // to append and says so, and keeps serving what it holds.
            await master.stop();
            fs.rmSync(mDir, { recursive: true, force: true });
            fs.mkdirSync(mDir);
            master = await startMaster(nsAddr, mDir, mPort, haPort);
            await slave.waitOutput(/the logs have diverged .*refusing to append/, 15000);
            await master.waitOutput(/past this master's end 0: the logs have diverged/, 5000);
            assert.equal((await runtime(sPort)).commitLogMaxOffset, String(end2));
            assert.equal((await queueMax(sPort, TOPIC, 4)).reduce((a, b) => a + b), N + 200);
        } finally {
            for (const c of clients) await c.close().catch(() => {});
            const rs = [await slave.stop(), await master.stop(), await ns.stop()];
            fs.rmSync(mDir, { recursive: true, force: true });
            fs.rmSync(sDir, { recursive: true, force: true });
            for (const r of rs) assert.equal(r.code, 0);
        }
    });

// A fake master: answers the slave's report with what it is told to.
function fakeMaster(script) {
    const conns = [];
    const srv = net.createServer((s) => {
        const i = conns.length;
        conns.push(s);
        s.on('error', () => {});
        s.once('data', (d) => {
            assert.ok(d.length >= 8, 'the slave reports its offset first');
            const step = script[i];
            if (step) s.write(step(d.readBigInt64BE(0)));
        });
    });
    return new Promise((res) => srv.listen(0, '127.0.0.1', () => res({ srv, conns, port: srv.address().port })));
}

// One stored record (V1 layout, IPv4 hosts, empty body: CRC 0), as a master's log holds it.
function record(topic, queueId, queueOffset, phys) {
    const t = Buffer.from(topic);
    const props = Buffer.from('TAGS\u0001a\u0002');
    const size = 4 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 8 + 8 + 8 + 8 + 4 + 8 + 4 + 1 + t.length + 2 + props.length;
    const b = Buffer.alloc(size);
    let p = 0;
    b.writeInt32BE(size, p); p += 4;
    b.writeUInt32BE(0xdaa320a7, p); p += 4;
    b.writeInt32BE(0, p); p += 4; // body CRC of the empty body
    b.writeInt32BE(queueId, p); p += 4;
    b.writeInt32BE(0, p); p += 4; // flag
    b.writeBigInt64BE(BigInt(queueOffset), p); p += 8;
    b.writeBigInt64BE(BigInt(phys), p); p += 8;
    b.writeInt32BE(0, p); p += 4; // sysflag
    b.writeBigInt64BE(BigInt(Date.now()), p); p += 8; // born
    b.writeUInt32BE(0x7f000001, p); b.writeUInt32BE(5555, p + 4); p += 8;
    b.writeBigInt64BE(BigInt(Date.now()), p); p += 8; // stored
    b.writeUInt32BE(0x7f000001, p); b.writeUInt32BE(10911, p + 4); p += 8;
    b.writeInt32BE(0, p); p += 4; // reconsume times
    b.writeBigInt64BE(0n, p); p += 8; // prepared transaction offset
    b.writeInt32BE(0, p); p += 4; // body length
    b.writeUInt8(t.length, p); p += 1;
    t.copy(b, p); p += t.length;
    b.writeInt16BE(props.length, p); p += 2;
    props.copy(b, p);
    return b;
}

function frame(off, body = Buffer.alloc(0), size = body.length) {
    const h = Buffer.alloc(12);
    h.writeBigInt64BE(BigInt(off), 0);
    h.writeUInt32BE(size, 8);
    return Buffer.concat([h, body]);
}

test('a wrong offset, a malformed frame or a damaged record closes that HA connection; the slave serves on; an empty slave starts where the master\'s log starts',
    async () => {
        const ns = await startApogee('namesrv', []);
        const fake = await fakeMaster([
            (off) => frame(off + 12345n),                        // not where the slave's log ends
            () => frame(0, Buffer.alloc(0), 0x7fffffff),         // a body no slave reads
            () => frame(0, Buffer.from('0000002cdaa320a7' + '00'.repeat(36), 'hex')), // not a record
            // A master whose log now starts at its third segment: the empty slave starts there.
            () => frame(2 * SEG, record('Adopted', 0, 5, 2 * SEG)),
        ]);
        const dir = tmp('fake');
        const sPort = await freePort();
        const slave = await startSlave(`127.0.0.1:${ns.port}`, dir, sPort,
            [`--haMasterAddress=127.0.0.1:${fake.port}`]);
        try {
            await slave.waitOutput(/WARN +\[ha\] slave: closed the HA connection to master .*offset mismatch: the master sends from 12345 but this slave's commit log ends at 0 \(a gap\)/, 10000);
            await slave.waitOutput(/WARN +\[ha\] slave: closed the HA connection .*malformed frame from the master: frame body of 2147483647 bytes/, 10000);
            await slave.waitOutput(/WARN +\[ha\] slave: closed the HA connection .*the store refused the master's bytes: bad record at offset 0/, 10000);
            assert.ok(fake.conns.length >= 3, 'the slave connected again after each close');
            // The fourth connection: the empty slave's log starts where the master's does.
            await until(async () => (await runtime(sPort)).commitLogMinOffset === String(2 * SEG), 10000,
                'the empty slave to start its log at the master\'s first offset');
            const adopted = await runtime(sPort);
            assert.equal(Number(adopted.commitLogMaxOffset), 2 * SEG + record('Adopted', 0, 5, 0).length);
            assert.equal((await rpc(sPort, 31, { topic: 'Adopted', queueId: '0' })).ext.offset, '5');
            assert.equal((await rpc(sPort, 30, { topic: 'Adopted', queueId: '0' })).ext.offset, '6');
            // It still answers: a pull on an unknown queue and its runtime info.
            const info = await runtime(sPort);
            assert.ok(Number(info.haClosedConnections) >= 3);
            assert.match(info.haLastError, /mismatch|malformed|refused/);
            const pull = await rpc(sPort, 11, {
                consumerGroup: 'CG_FAKE', topic: 'Nothing', queueId: '0', queueOffset: '0',
                maxMsgNums: '32', sysFlag: '0', commitOffset: '0', suspendTimeoutMillis: '0',
                subscription: '*', subVersion: '0',
            });
            assert.equal(typeof pull.code, 'number'); // answered, whatever the queue holds
        } finally {
            const r = await slave.stop();
            fake.srv.close();
            for (const s of fake.conns) s.destroy();
            await ns.stop();
            fs.rmSync(dir, { recursive: true, force: true });
            assert.equal(r.code, 0);
        }
    });

// A slave played by the test: reports what it is told to, and tracks where the master's
// stream got to.
async function fakeSlave(haPort) {
    const s = net.connect({ port: haPort, host: '127.0.0.1' });
    await new Promise((res, rej) => { s.once('connect', res); s.once('error', rej); });
    s.on('error', () => {});
    const st = { sock: s, end: 0n, buf: Buffer.alloc(0) };
    s.on('data', (d) => {
        st.buf = Buffer.concat([st.buf, d]);
        while (st.buf.length >= 12) {
            const size = st.buf.readUInt32BE(8);
            if (st.buf.length < 12 + size) break;
            st.end = st.buf.readBigInt64BE(0) + BigInt(size);
            st.buf = st.buf.subarray(12 + size);
        }
    });
    st.report = (off) => {
        const b = Buffer.alloc(8);
        b.writeBigInt64BE(BigInt(off));
        s.write(b);
    };
    st.report(0);
    return st;
}

function rawSend(client, body) {
    return client.request(310, {
        a: 'PG_SYNC', b: 'SyncTopic', c: 'TBW102', d: '4', e: '0', f: '0',
        g: String(Date.now()), h: '0', i: '', k: 'false',
    }, Buffer.from(body), { timeoutMs: 10000 });
}

test('SYNC_MASTER: a send is answered once a slave holds it; SLAVE_NOT_AVAILABLE without one; FLUSH_SLAVE_TIMEOUT when none confirms',
    async () => {
        const ns = await startApogee('namesrv', []);
        const nsAddr = `127.0.0.1:${ns.port}`;
        const mDir = tmp('sm'), sDir = tmp('ss');
        const mPort = await freePort(), sPort = await freePort(), haPort = await freePort();
        const master = await startApogee('broker', brokerArgs(nsAddr, [`--haListenPort=${haPort}`,
            '--brokerRole=SYNC_MASTER', '--syncFlushTimeout=1000']), { dir: mDir, keepDir: true, port: mPort });
        let slave = null, fake = null;
        const mc = await RemotingClient.connect(mPort);
        try {
            const t = await mc.request(17, { topic: 'SyncTopic', readQueueNums: '4', writeQueueNums: '4', perm: '6' });
            assert.equal(t.code, 0, t.remark);
            // No slave: stored, answered SLAVE_NOT_AVAILABLE (11) with the put's fields.
            const none = await rawSend(mc, 'no-slave');
            assert.equal(none.code, 11, none.remark);
            assert.ok(none.ext.msgId, 'the answer carries the msgId: the message is stored');
            assert.match(none.remark, /no slave/);
            assert.equal((await queueMax(mPort, 'SyncTopic', 4)).reduce((a, b) => a + b), 1);

            // A peer that connects to the HA port and says nothing costs the master no CPU.
            const cpu = () => {
                const f = fs.readFileSync(`/proc/${master.proc.pid}/stat`, 'utf8').split(') ')[1].split(' ');
                return Number(f[11]) + Number(f[12]); // utime + stime, clock ticks
            };
            const mute = net.connect({ port: haPort, host: '127.0.0.1' });
            mute.on('error', () => {});
            await new Promise((res) => mute.once('connect', res));
            await until(async () => (await runtime(mPort)).haConnections === '1', 5000, 'the mute peer');
            const c0 = cpu();
            await sleep(1500);
            const burnt = cpu() - c0;
            mute.destroy();
            assert.ok(burnt < 20, `the master used ${burnt} clock ticks in 1.5 s with a mute HA peer`);
            await until(async () => (await runtime(mPort)).haConnections === '0', 5000, 'the mute peer to go');

            // A slave that holds back its report: the send waits for it.
            fake = await fakeSlave(haPort);
            await until(async () => (await runtime(mPort)).haConnections === '1', 5000, 'the fake slave');
            await until(() => fake.end > 0n, 5000, 'the stream to the fake slave');
            fake.report(fake.end); // it holds the first message
            await sleep(100);
            let answered = null;
            const pending = rawSend(mc, 'held').then((r) => (answered = r));
            await sleep(500);
            assert.equal(answered, null, 'answered before any slave held the message');
            await until(async () => fake.end === BigInt((await runtime(mPort)).commitLogMaxOffset), 5000,
                'the stream to carry the held message');
            fake.report(fake.end);
            await pending;
            assert.equal(answered.code, 0, answered.remark);
            // It never confirms this one: FLUSH_SLAVE_TIMEOUT (12) after syncFlushTimeout.
            const t0 = Date.now();
            const late = await rawSend(mc, 'late');
            assert.equal(late.code, 12, late.remark);
            assert.ok(Date.now() - t0 >= 900, `answered after ${Date.now() - t0} ms`);
            assert.ok(late.ext.msgId);
            fake.sock.destroy();
            fake = null;
            await until(async () => (await runtime(mPort)).haConnections === '0', 5000, 'the fake slave to go');

            // A real slave: every acknowledged message is on the slave when its answer comes.
            slave = await startSlave(nsAddr, sDir, sPort);
            await caughtUp(mPort, sPort);
            for (let i = 0; i < 50; i++) {
                const r = await rawSend(mc, `sync-${i}`);
                assert.equal(r.code, 0, r.remark);
                const end = Number((await runtime(mPort)).commitLogMaxOffset);
                const onSlave = Number((await runtime(sPort)).commitLogMaxOffset);
                assert.ok(onSlave >= end, `acked at ${end}, the slave holds ${onSlave}`);
            }
            const info = await runtime(mPort);
            assert.ok(Number(info.refusedSlaveNotInSync) >= 2);
        } finally {
            mc.close();
            fake?.sock.destroy();
            const rs = [];
            if (slave) rs.push(await slave.stop());
            rs.push(await master.stop(), await ns.stop());
            fs.rmSync(mDir, { recursive: true, force: true });
            fs.rmSync(sDir, { recursive: true, force: true });
            for (const r of rs) assert.equal(r.code, 0);
        }
    });

test('a taken listenPort + 1: an ASYNC_MASTER starts without slaves and says so, a SYNC_MASTER refuses to start',
    async () => {
        // freePort checks only the port it hands out: take another one until
        // the port above it can be held too.
        let port;
        const squatter = net.createServer();
        for (let i = 0; ; i++) {
            port = await freePort();
            const held = await new Promise((res) => {
                squatter.once('error', () => res(false));
                squatter.listen(port + 1, '127.0.0.1', () => res(true));
            });
            if (held) break;
            assert.ok(i < 20, 'no free port whose next port is free too');
        }
        const dir = tmp('adj');
        try {
            const m = await startApogee('broker', ['--allowLoopbackAdvertise=true'], { dir, keepDir: true, port });
            await m.waitOutput(/WARN .*no slave can connect to this master: cannot listen on 127\.0\.0\.1:\d+ for slaves/);
            assert.equal((await runtime(port)).haConnections, '0');
            assert.equal((await m.stop()).code, 0);
            const sm = await runSub('broker', [`--storePathRootDir=${dir}`, '--bindAddress=127.0.0.1',
                `--listenPort=${port}`, '--grpcServerPort=0', '--httpListenPort=0',
                '--allowLoopbackAdvertise=true', '--brokerRole=SYNC_MASTER'], 10000);
            assert.equal(sm.code, 1, sm.out);
            assert.match(sm.out, /cannot listen on 127\.0\.0\.1:\d+ for slaves.*--haListenPort/);
        } finally {
            squatter.close();
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
