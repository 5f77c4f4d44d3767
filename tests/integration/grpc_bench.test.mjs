// The gRPC load generators and the batched SendMessage path of apogee standalone's gRPC port.
// `apogee bench produce --protocol=grpc --messages=N` sends exactly N messages over one
// connection; `apogee bench consume --protocol=grpc --consumers=3 --messages=N` receives and
// acknowledges all N with none delivered twice and none lost, a second group run over the
// same topic finds every message again, the first group finds nothing left, and a run told
// to expect one message more than there is reports it lost and fails.
// SendMessage calls sent together on one connection (so the broker stores the appends of
// one read together) are each answered as if sent alone, under ASYNC_FLUSH and SYNC_FLUSH:
// a missing topic fails only its own call (TOPIC_NOT_FOUND), a request of several messages
// gets one entry per message, and remoting pulls find exactly the bodies answered OK.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { freePort, runBench, startApogee, waitForPort } from '../lib/proc.mjs';
import { RemotingClient } from '../lib/remoting.mjs';
import { pullAll } from '../lib/records.mjs';

const QUEUES = 4;
const OK = 20000;
const TOPIC_NOT_FOUND = 40402;

async function startBroker(args = []) {
    const grpcPort = await freePort();
    const srv = await startApogee('standalone', [`--grpcServerPort=${grpcPort}`, ...args],
        { extraPorts: { namesrvListenPort: await freePort() } });
    await waitForPort(grpcPort);
    const br = await RemotingClient.connect(srv.port);
    return { srv, br, grpcPort };
}

async function createTopic(br, topic) {
    const r = await br.request(17, { topic, readQueueNums: String(QUEUES),
        writeQueueNums: String(QUEUES), perm: '6' });
    assert.equal(r.code, 0);
}

// ---- a few protobuf fields by hand ----

function varint(n) {
    const out = [];
    let v = BigInt(n);
    do {
        let b = Number(v & 0x7fn);
        v >>= 7n;
        if (v) b |= 0x80;
        out.push(b);
    } while (v);
    return Buffer.from(out);
}
const field = (no, payload) => Buffer.concat([varint((no << 3) | 2), varint(payload.length), payload]);
const str = (no, s) => field(no, Buffer.from(s));

function message(topic, id, body) {
    const sys = Buffer.concat([str(3, id), Buffer.from([6 << 3, 1])]); // message_id, NORMAL
    return Buffer.concat([field(1, str(2, topic)), field(3, sys), field(4, Buffer.from(body))]);
}

function sendRequest(msgs) {
    return Buffer.concat(msgs.map((m) => field(1, m)));
}

// Fields of one message: { no: [value (Buffer or BigInt), ...] }.
function decode(buf) {
    const out = {};
    let i = 0;
    const rv = () => {
        let v = 0n;
        let s = 0n;
        for (;;) {
            const b = buf[i++];
            v |= BigInt(b & 0x7f) << s;
            s += 7n;
            if (!(b & 0x80)) return v;
        }
    };
    while (i < buf.length) {
        const key = Number(rv());
        let val;
        if ((key & 7) === 0) val = rv();
        else if ((key & 7) === 2) {
            const n = Number(rv());
            val = buf.subarray(i, i + n);
            i += n;
        } else throw new Error(`wire type ${key & 7}`);
        (out[key >> 3] ??= []).push(val);
    }
    return out;
}

const statusCode = (st) => Number(decode(st)[1]?.[0] ?? 0n);

function grpcMessage(payload) {
    const b = Buffer.alloc(5 + payload.length);
    b.writeUInt32BE(payload.length, 1);
    payload.copy(b, 5);
    return b;
}

// Every call started in the same tick: node writes them together.
function sendAll(grpcPort, requests) {
    const s = http2.connect(`http://127.0.0.1:${grpcPort}`);
    const calls = requests.map((body) => new Promise((resolve, reject) => {
        const req = s.request({ ':method': 'POST',
            ':path': '/apache.rocketmq.v2.MessagingService/SendMessage',
            'content-type': 'application/grpc', te: 'trailers' });
        const chunks = [];
        let trailers = {};
        req.on('trailers', (t) => (trailers = t));
        req.on('data', (d) => chunks.push(d));
        req.on('error', reject);
        req.on('end', () => {
            const b = Buffer.concat(chunks);
            assert.equal(trailers['grpc-status'], '0');
            const r = decode(b.subarray(5, 5 + b.readUInt32BE(1)));
            resolve({ code: statusCode(r[1][0]),
                entries: (r[2] ?? []).map((e) => {
                    const f = decode(e);
                    // proto3 leaves an offset of 0 out
                    return { code: statusCode(f[1][0]), offset: Number(f[4]?.[0] ?? 0n) };
                }) });
        });
        req.end(grpcMessage(body));
    }));
    return Promise.all(calls).finally(() => s.close());
}

async function batchedSends(flush) {
    const { srv, br, grpcPort } = await startBroker(flush ? [`--flushDiskType=${flush}`] : []);
    const topic = 'GrpcBatch';
    try {
        await createTopic(br, topic);
        const reqs = [];
        const want = [];
        for (let i = 0; i < 48; i++) {
            const missing = i % 4 === 3;
            reqs.push(sendRequest([message(missing ? 'NoSuchTopic' : topic, `ID${i}`, `body-${i}`)]));
            want.push(missing ? TOPIC_NOT_FOUND : OK);
        }
        // Three messages in one request, the middle one to a missing topic.
        reqs.push(sendRequest([message(topic, 'M0', 'multi-0'), message('NoSuchTopic', 'M1', 'multi-1'),
            message(topic, 'M2', 'multi-2')]));
        const got = await sendAll(grpcPort, reqs);
        for (let i = 0; i < 48; i++) {
            assert.equal(got[i].code, want[i], `call ${i}`);
            assert.equal(got[i].entries.length, 1);
            assert.equal(got[i].entries[0].code, want[i]);
            if (want[i] === OK) assert.ok(got[i].entries[0].offset >= 0);
        }
        const multi = got[48];
        assert.notEqual(multi.code, OK); // MULTIPLE_RESULTS
        assert.deepEqual(multi.entries.map((e) => e.code), [OK, TOPIC_NOT_FOUND, OK]);
        const bodies = [];
        for (let q = 0; q < QUEUES; q++) bodies.push(...(await pullAll(br, topic, q)).map((m) => m.body));
        const expect = [...Array(48).keys()].filter((i) => i % 4 !== 3).map((i) => `body-${i}`);
        assert.deepEqual(bodies.sort(), [...expect, 'multi-0', 'multi-2'].sort());
    } finally {
        br.close();
        await srv.stop();
    }
}

describe('SendMessage calls of one read', () => {
    test('ASYNC_FLUSH: each answered as if alone, every OK one stored', () => batchedSends(null));
    test('SYNC_FLUSH: each answered as if alone, every OK one stored', () => batchedSends('SYNC_FLUSH'));
});

describe('apogee bench --protocol=grpc', () => {
    let b;
    const topic = 'GrpcBenchTopic';
    const N = 3000;
    before(async () => {
        b = await startBroker();
        await createTopic(b.br, topic);
    });
    after(async () => {
        b?.br.close();
        await b?.srv.stop();
    });

    const consume = (group, n, extra = []) => runBench(['consume', '--protocol=grpc',
        `--grpcAddr=127.0.0.1:${b.grpcPort}`, `--topic=${topic}`, `--group=${group}`,
        `--messages=${n}`, '--duration=30', '--json', ...extra]);

    test('produce --messages sends exactly that many', async () => {
        const r = await runBench(['produce', '--protocol=grpc', `--grpcAddr=127.0.0.1:${b.grpcPort}`,
            `--topic=${topic}`, `--messages=${N}`, '--streams=16', '--duration=30', '--json']);
        assert.equal(r.code, 0, r.out);
        assert.equal(r.json.sent, N, r.out);
        assert.equal(r.json.errors, 0, r.out);
    });

    test('consume: 3 SimpleConsumers receive and acknowledge every message once', async () => {
        const r = await consume('GB1', N, ['--consumers=3', '--pullBatch=16']);
        assert.equal(r.code, 0, r.out);
        assert.equal(r.json.distinct, N, r.out);
        assert.equal(r.json.acked, N, r.out);
        assert.equal(r.json.dup_invisible, 0, r.out);
        assert.equal(r.json.lost, 0, r.out);
        assert.equal(r.json.ack_errors, 0, r.out);
        assert.ok(r.json.msgs_per_s > 0, r.out);
    });

    test('consume: the acknowledged group finds nothing left; another group finds all', async () => {
        const again = await consume('GB1', 0);
        assert.equal(again.json.received, 0, again.out);
        const other = await consume('GB2', N, ['--consumers=2']);
        assert.equal(other.code, 0, other.out);
        assert.equal(other.json.distinct, N, other.out);
    });

    test('consume: a message expected but never delivered is reported lost', async () => {
        const r = await consume('GB3', N + 1);
        assert.equal(r.code, 1, r.out);
        assert.equal(r.json.distinct, N, r.out);
        assert.equal(r.json.lost, 1, r.out);
    });
});
