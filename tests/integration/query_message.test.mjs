// QUERY_MESSAGE (12) over the raw protocol: by key (a word of KEYS) in a time range with
// maxNum, by unique key (_UNIQUE_KEY_QUERY=true), QUERY_NOT_FOUND (22) when nothing
// matches, and every key still found after a kill -9 and restart.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { freePort, startApogee } from '../lib/proc.mjs';
import { RemotingClient } from '../lib/remoting.mjs';

const servers = [];
after(async () => {
    for (const s of servers) await s.stop('SIGKILL');
});

function props(obj) {
    return Object.entries(obj).map(([k, v]) => `${k}\u0001${v}\u0002`).join('');
}

function sendHdr(topic, p) {
    return {
        a: 'PG_QUERY', b: topic, c: 'TBW102', d: '4', e: '-1', f: '0',
        g: String(Date.now()), h: '0', i: props(p), k: 'false',
    };
}

// Stored records back to back (IPv4 hosts): topic, properties, body, store time.
function decodeRecords(buf) {
    const out = [];
    let p = 0;
    while (p < buf.length) {
        const size = buf.readInt32BE(p);
        const storeTs = Number(buf.readBigInt64BE(p + 56));
        const bodyLen = buf.readInt32BE(p + 84);
        const body = buf.subarray(p + 88, p + 88 + bodyLen).toString();
        let q = p + 88 + bodyLen;
        const tl = buf.readUInt8(q);
        const topic = buf.subarray(q + 1, q + 1 + tl).toString();
        q += 1 + tl;
        const pl = buf.readInt16BE(q);
        const ps = {};
        for (const kv of buf.subarray(q + 2, q + 2 + pl).toString().split('\u0002')) {
            if (!kv) continue;
            const [k, v] = kv.split('\u0001');
            ps[k] = v;
        }
        out.push({ topic, props: ps, body, storeTs });
        p += size;
    }
    return out;
}

function query(br, topic, key, { maxNum = 32, begin = 0, end = Date.now() + 60000, uniq } = {}) {
    const ext = {
        topic, key, maxNum: String(maxNum), beginTimestamp: String(begin),
        endTimestamp: String(end),
    };
    if (uniq !== undefined) ext._UNIQUE_KEY_QUERY = String(uniq);
    return br.request(12, ext);
}

async function start(args = [], dir) {
    const s = await startApogee('standalone', ['--autoCreateTopicEnable=true', ...args],
        { keepDir: true, extraPorts: { namesrvListenPort: await freePort() }, ...(dir ? { dir } : {}) });
    servers.push(s);
    return s;
}

test('query by key, by unique key, maxNum, time range and topic', async () => {
    const srv = await start();
    const br = await RemotingClient.connect(srv.port);
    try {
        const t0 = Date.now();
        for (let i = 0; i < 10; i++) {
            const r = await br.request(310, sendHdr('T_QUERY', {
                KEYS: `order-${i} shared`, UNIQ_KEY: `UNIQ${String(i).padStart(4, '0')}`,
            }), Buffer.from(`body-${i}`));
            assert.equal(r.code, 0, r.remark);
        }
        const r2 = await br.request(310, sendHdr('T_OTHER', { KEYS: 'shared' }), Buffer.from('x'));
        assert.equal(r2.code, 0, r2.remark);

        let r = await query(br, 'T_QUERY', 'order-3');
        assert.equal(r.code, 0, r.remark);
        let recs = decodeRecords(r.body);
        assert.equal(recs.length, 1);
        assert.equal(recs[0].body, 'body-3');
        assert.equal(recs[0].topic, 'T_QUERY');
        assert.ok(Number(r.ext.indexLastUpdatePhyoffset) > 0, JSON.stringify(r.ext));
        assert.ok(Number(r.ext.indexLastUpdateTimestamp) >= t0, JSON.stringify(r.ext));

        // A key shared by every message: all 10 of this topic, newest first, none of T_OTHER.
        r = await query(br, 'T_QUERY', 'shared');
        recs = decodeRecords(r.body);
        assert.deepEqual(recs.map((m) => m.body),
            Array.from({ length: 10 }, (_, i) => `body-${9 - i}`));
        r = await query(br, 'T_QUERY', 'shared', { maxNum: 3 });
        assert.equal(decodeRecords(r.body).length, 3);

        // Unique key: maxNum is the broker's defaultQueryMaxNum, not the request's.
        r = await query(br, 'T_QUERY', 'UNIQ0007', { maxNum: 0, uniq: true });
        assert.equal(r.code, 0, r.remark);
        recs = decodeRecords(r.body);
        assert.equal(recs.length, 1);
        assert.equal(recs[0].props.UNIQ_KEY, 'UNIQ0007');

        // Nothing: unknown key, other topic, time range before the sends.
        for (const [topic, key, opts] of [['T_QUERY', 'nope', {}], ['T_OTHER', 'order-1', {}],
            ['T_QUERY', 'order-1', { begin: 0, end: t0 - 5000 }]]) {
            r = await query(br, topic, key, opts);
            assert.equal(r.code, 22, `${topic} ${key}: ${r.code} ${r.remark}`);
            assert.match(r.remark, /can not find message/);
            assert.ok('indexLastUpdatePhyoffset' in r.ext);
        }
        // Missing header fields are refused.
        r = await br.request(12, { topic: 'T_QUERY' });
        assert.equal(r.code, 1);
    } finally {
        br.close();
    }
});

test('messageIndexEnable=false: QUERY_MESSAGE finds nothing, no index directory', async () => {
    const srv = await start(['--messageIndexEnable=false']);
    const br = await RemotingClient.connect(srv.port);
    try {
        const r0 = await br.request(310, sendHdr('T_NOIDX', { KEYS: 'k' }), Buffer.from('x'));
        assert.equal(r0.code, 0, r0.remark);
        const r = await query(br, 'T_NOIDX', 'k');
        assert.equal(r.code, 22);
        assert.ok(!fs.existsSync(`${srv.dir}/index`));
    } finally {
        br.close();
    }
});

test('every acknowledged key is found after kill -9 and restart; small files roll', async () => {
    // 64 entries per index file: 300 messages with 2 keys each roll about 10 files.
    const args = ['--maxIndexNum=64', '--maxHashSlotNum=16'];
    const srv = await start(args);
    let br = await RemotingClient.connect(srv.port);
    const acked = [];
    for (let i = 0; i < 300; i++) {
        const r = await br.request(310, sendHdr('T_CRASH', { KEYS: `c-${i}` }), Buffer.from(`m${i}`));
        if (r.code === 0) acked.push(i);
    }
    br.close();
    assert.equal(acked.length, 300);
    assert.ok(fs.readdirSync(`${srv.dir}/index`).length >= 8);
    await srv.stop('SIGKILL');
    const srv2 = await start(args, srv.dir);
    br = await RemotingClient.connect(srv2.port);
    try {
        for (const i of acked) {
            const r = await query(br, 'T_CRASH', `c-${i}`);
            assert.equal(r.code, 0, `c-${i}: ${r.remark}`);
            const recs = decodeRecords(r.body);
            assert.equal(recs.length, 1);
            assert.equal(recs[0].body, `m${i}`);
        }
        // New messages keep being indexed after the restart.
        const r0 = await br.request(310, sendHdr('T_CRASH', { KEYS: 'after' }), Buffer.from('a'));
        assert.equal(r0.code, 0);
        assert.equal((await query(br, 'T_CRASH', 'after')).code, 0);
    } finally {
        br.close();
        fs.rmSync(srv.dir, { recursive: true, force: true });
    }
});
