// NameServer integration tests: a real `apogee namesrv` process on 127.0.0.1
// (random free port, temp dir, always cleaned up), driven over the wire.
//
//   APOGEE_BIN=$PWD/build/apogee node --test tests/integration/
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import zlib from 'node:zlib';

import { startApogee, tryConnect } from '../lib/proc.mjs';
import { RemotingClient, encodeFrame, jsonBody } from '../lib/remoting.mjs';

const REQ = {
    PUT_KV_CONFIG: 100, GET_KV_CONFIG: 101, DELETE_KV_CONFIG: 102, REGISTER_BROKER: 103,
    UNREGISTER_BROKER: 104, GET_ROUTEINFO_BY_TOPIC: 105, GET_BROKER_CLUSTER_INFO: 106,
    WIPE_WRITE_PERM_OF_BROKER: 205, GET_ALL_TOPIC_LIST_FROM_NAMESERVER: 206,
    GET_KVLIST_BY_NAMESPACE: 219, GET_TOPICS_BY_CLUSTER: 224, QUERY_DATA_VERSION: 322,
    ADD_WRITE_PERM_OF_BROKER: 327, GET_BROKER_MEMBER_GROUP: 901, BROKER_HEARTBEAT: 904,
};

const CRC_TABLE = (() => {
    const t = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
        let c = n;
        for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
        t[n] = c;
    }
    return t;
})();
function crc32(buf) {
    let c = -1;
    for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ -1) >>> 0;
}

function topicConfig(name, queues, perm = 6) {
    return {
        topicName: name, readQueueNums: queues, writeQueueNums: queues, perm,
        topicFilterType: 'SINGLE_TAG', topicSysFlag: 0, order: false,
    };
}

// RegisterBrokerBody as a 4.9.x Java broker sends it (fastjson, plain JSON).
function registerBody(topics, counter = 1) {
    const table = {};
    for (const t of topics) table[t.topicName] = t;
    return {
        filterServerList: [],
        topicConfigSerializeWrapper: {
            dataVersion: { counter, timestamp: 1700000000000 },
            topicConfigTable: table,
        },
    };
}

// The compressed form (docs/wire.md §4.3).
function compressedRegisterBody(topics, counter = 1) {
    const parts = [];
    const i32 = (n) => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };
    const dv = Buffer.from(JSON.stringify({ counter, timestamp: 1700000000000, stateVersion: 0 }));
    parts.push(i32(dv.length), dv, i32(topics.length));
    for (const t of topics) {
        const s = Buffer.from(`${t.topicName} ${t.readQueueNums} ${t.writeQueueNums} ${t.perm} SINGLE_TAG {}`);
        parts.push(i32(s.length), s);
    }
    const fl = Buffer.from('[]');
    parts.push(i32(fl.length), fl, i32(0));
    return zlib.deflateSync(Buffer.concat(parts), { level: 9 });
}

function regHeader(name, addr, id = 0, cluster = 'DefaultCluster', extra = {}) {
    return {
        brokerName: name, brokerAddr: addr, clusterName: cluster,
        haServerAddr: addr.replace(/:\d+$/, ':10912'), brokerId: String(id), ...extra,
    };
}

describe('apogee namesrv', () => {
    let ns;
    let client;

    before(async () => {
        ns = await startApogee('namesrv', ['--scanNotActiveBrokerInterval=100']);
        client = await RemotingClient.connect(ns.port);
    });
    after(async () => {
        client?.close();
        await ns?.stop();
    });

    test('logs where it listens and where the KV config lives', async () => {
        // The port can accept before the log line has reached our stderr reader.
        const out = await ns.waitOutput(new RegExp(`listening on 127\\.0\\.0\\.1:${ns.port}`));
        assert.ok(out.includes(path.join(ns.dir, 'namesrv', 'kvConfig.json')), out);
    });

    test('unknown topic: TOPIC_NOT_EXIST with a remark saying what to do', async () => {
        const r = await client.request(REQ.GET_ROUTEINFO_BY_TOPIC, { topic: 'NoSuchTopic' });
        assert.equal(r.code, 17);
        assert.equal(r.flag & 1, 1);
        assert.match(r.remark, /No topic route info in name server for the topic: NoSuchTopic/);
        assert.match(r.remark, /`apogee admin updateTopic -c <cluster> -t NoSuchTopic` \(mqadmin updateTopic takes the same options\)/);
        assert.match(r.remark, /autoCreateTopicEnable=true/);
    });

    test('unknown request code: REQUEST_CODE_NOT_SUPPORTED', async () => {
        const r = await client.request(9999, {});
        assert.equal(r.code, 3);
        assert.equal(r.remark, ' request type 9999 not supported');
    });

    test('register (JSON body), read route, cluster info, topic lists', async () => {
        const b = await RemotingClient.connect(ns.port);
        try {
            const body = Buffer.from(JSON.stringify(registerBody([topicConfig('TopicA', 4), topicConfig('TopicShared', 8)])));
            const r = await b.request(REQ.REGISTER_BROKER,
                regHeader('broker-a', '127.0.0.1:20911', 0, 'DefaultCluster',
                    { bodyCrc32: String(crc32(body) & 0x7fffffff), compressed: 'false' }), body);
            assert.equal(r.code, 0, r.remark);

            // A slave of broker-a learns the master and its HA address.
            const s = await b.request(REQ.REGISTER_BROKER, regHeader('broker-a', '127.0.0.1:20921', 1),
                JSON.stringify(registerBody([topicConfig('TopicA', 4)])));
            assert.equal(s.code, 0);
            assert.equal(s.ext.masterAddr, '127.0.0.1:20911');
            assert.equal(s.ext.haServerAddr, '127.0.0.1:10912');

            const route = await client.request(REQ.GET_ROUTEINFO_BY_TOPIC, { topic: 'TopicA' });
            assert.equal(route.code, 0);
            const text = route.body.toString();
            // Numeric map keys are quoted: valid JSON for fastjson, Node and Go.
            assert.match(text, /"brokerAddrs":\{"0":"127\.0\.0\.1:20911","1":"127\.0\.0\.1:20921"\}/);
            const rd = JSON.parse(text);
            assert.equal(rd.brokerDatas.length, 1);
            assert.equal(rd.brokerDatas[0].brokerName, 'broker-a');
            assert.equal(rd.brokerDatas[0].cluster, 'DefaultCluster');
            assert.equal(rd.brokerDatas[0].brokerAddrs['0'], '127.0.0.1:20911');
            assert.deepEqual(rd.queueDatas, [{ brokerName: 'broker-a', perm: 6, readQueueNums: 4, topicSysFlag: 0, writeQueueNums: 4 }]);
            assert.deepEqual(rd.filterServerTable, {});

            // Same answer for a ROCKETMQ-encoded request (answered in its own serialization).
            const route2 = await client.request(REQ.GET_ROUTEINFO_BY_TOPIC, { topic: 'TopicA' }, null, { serialize: 'ROCKETMQ' });
            assert.equal(route2.code, 0);
            assert.deepEqual(jsonBody(route2), rd);

            const ci = jsonBody(await client.request(REQ.GET_BROKER_CLUSTER_INFO));
            assert.deepEqual(ci.clusterAddrTable.DefaultCluster, ['broker-a']);
            assert.equal(ci.brokerAddrTable['broker-a'].brokerAddrs['1'], '127.0.0.1:20921');

            const all = jsonBody(await client.request(REQ.GET_ALL_TOPIC_LIST_FROM_NAMESERVER));
            assert.deepEqual(all.topicList.sort(), ['TopicA', 'TopicShared']);
            const byc = jsonBody(await client.request(REQ.GET_TOPICS_BY_CLUSTER, { cluster: 'DefaultCluster' }));
            assert.deepEqual(byc.topicList.sort(), ['TopicA', 'TopicShared']);

            const mg = jsonBody(await client.request(REQ.GET_BROKER_MEMBER_GROUP, { clusterName: 'DefaultCluster', brokerName: 'broker-a' }));
            assert.equal(mg.brokerMemberGroup.brokerAddrs['0'], '127.0.0.1:20911');

            // QUERY_DATA_VERSION and BROKER_HEARTBEAT
            const q = await b.request(REQ.QUERY_DATA_VERSION,
                { brokerName: 'broker-a', brokerAddr: '127.0.0.1:20911', clusterName: 'DefaultCluster', brokerId: '0' },
                JSON.stringify({ counter: 1, timestamp: 1700000000000 }));
            assert.equal(q.code, 0);
            assert.equal(q.ext.changed, 'false');
            assert.equal(jsonBody(q).counter, 1);
            const hb = await b.request(REQ.BROKER_HEARTBEAT, { clusterName: 'DefaultCluster', brokerAddr: '127.0.0.1:20911', brokerName: 'broker-a' });
            assert.equal(hb.code, 0);

            // Unregister the slave: the master stays.
            const u = await b.request(REQ.UNREGISTER_BROKER, { brokerName: 'broker-a', brokerAddr: '127.0.0.1:20921', clusterName: 'DefaultCluster', brokerId: '1' });
            assert.equal(u.code, 0);
            const rd2 = jsonBody(await client.request(REQ.GET_ROUTEINFO_BY_TOPIC, { topic: 'TopicA' }));
            assert.deepEqual(rd2.brokerDatas[0].brokerAddrs, { 0: '127.0.0.1:20911' });
        } finally {
            await b.close();
        }
        // Closing the broker's connection removes its entries.
        await waitFor(async () => (await client.request(REQ.GET_ROUTEINFO_BY_TOPIC, { topic: 'TopicA' })).code === 17);
    });

    test('register with the zlib-compressed body (ROCKETMQ header) and a CRC check', async () => {
        const b = await RemotingClient.connect(ns.port);
        try {
            const body = compressedRegisterBody([topicConfig('TopicZ', 3), topicConfig('TopicZ2', 5, 4)]);
            const bad = await b.request(REQ.REGISTER_BROKER,
                regHeader('broker-z', '127.0.0.1:30911', 0, 'ZCluster', { compressed: 'true', bodyCrc32: String(((crc32(body) & 0x7fffffff) ^ 1)) }),
                body, { serialize: 'ROCKETMQ' });
            assert.notEqual(bad.code, 0);
            assert.match(bad.remark, /crc32/);
            const r = await b.request(REQ.REGISTER_BROKER,
                regHeader('broker-z', '127.0.0.1:30911', 0, 'ZCluster', { compressed: 'true', bodyCrc32: String(crc32(body) & 0x7fffffff) }),
                body, { serialize: 'ROCKETMQ' });
            assert.equal(r.code, 0, r.remark);
            assert.equal(r.serialize, 'ROCKETMQ');
            const rd = jsonBody(await client.request(REQ.GET_ROUTEINFO_BY_TOPIC, { topic: 'TopicZ2' }));
            assert.deepEqual(rd.queueDatas, [{ brokerName: 'broker-z', perm: 4, readQueueNums: 5, topicSysFlag: 0, writeQueueNums: 5 }]);
            assert.equal(rd.brokerDatas[0].cluster, 'ZCluster');

            // Wipe and restore write permission.
            const w = await client.request(REQ.WIPE_WRITE_PERM_OF_BROKER, { brokerName: 'broker-z' });
            assert.equal(w.code, 0);
            assert.equal(w.ext.wipeTopicCount, '2');
            let qd = jsonBody(await client.request(REQ.GET_ROUTEINFO_BY_TOPIC, { topic: 'TopicZ' })).queueDatas[0];
            assert.equal(qd.perm, 4);
            const a = await client.request(REQ.ADD_WRITE_PERM_OF_BROKER, { brokerName: 'broker-z' });
            assert.equal(a.ext.addTopicCount, '2');
            qd = jsonBody(await client.request(REQ.GET_ROUTEINFO_BY_TOPIC, { topic: 'TopicZ' })).queueDatas[0];
            assert.equal(qd.perm, 6);

            // Garbage that claims to be compressed is refused, connection kept.
            const g = await b.request(REQ.REGISTER_BROKER,
                regHeader('broker-y', '127.0.0.1:30912', 0, 'ZCluster', { compressed: 'true' }), Buffer.from('not zlib at all'));
            assert.equal(g.code, 1);
            assert.match(g.remark, /zlib/);
        } finally {
            await b.close();
        }
    });

    test('a broker expires after its own heartbeatTimeoutMillis', async () => {
        const b = await RemotingClient.connect(ns.port);
        try {
            const r = await b.request(REQ.REGISTER_BROKER,
                regHeader('broker-e', '127.0.0.1:40911', 0, 'DefaultCluster', { heartbeatTimeoutMillis: '400' }),
                JSON.stringify(registerBody([topicConfig('TopicE', 2)])));
            assert.equal(r.code, 0);
            assert.equal((await client.request(REQ.GET_ROUTEINFO_BY_TOPIC, { topic: 'TopicE' })).code, 0);
            const t0 = Date.now();
            await waitFor(async () => (await client.request(REQ.GET_ROUTEINFO_BY_TOPIC, { topic: 'TopicE' })).code === 17, 3000);
            assert.ok(Date.now() - t0 >= 300, 'expired too early');
            const ci = jsonBody(await client.request(REQ.GET_BROKER_CLUSTER_INFO));
            assert.equal(ci.brokerAddrTable['broker-e'], undefined);
            await ns.waitOutput(/broker-e at 127\.0\.0\.1:40911 .* removed: no registration or heartbeat/);
        } finally {
            await b.close();
        }
    });

    test('KV config: put, get, list, delete, persisted to kvConfig.json', async () => {
        let r = await client.request(REQ.PUT_KV_CONFIG, { namespace: 'ORDER_TOPIC_CONFIG', key: 'TopicO', value: 'broker-a:4' });
        assert.equal(r.code, 0);
        r = await client.request(REQ.GET_KV_CONFIG, { namespace: 'ORDER_TOPIC_CONFIG', key: 'TopicO' });
        assert.equal(r.code, 0);
        assert.equal(r.ext.value, 'broker-a:4');
        r = await client.request(REQ.GET_KVLIST_BY_NAMESPACE, { namespace: 'ORDER_TOPIC_CONFIG' });
        assert.deepEqual(jsonBody(r), { table: { TopicO: 'broker-a:4' } });
        const file = JSON.parse(fs.readFileSync(path.join(ns.dir, 'namesrv', 'kvConfig.json'), 'utf8'));
        assert.equal(file.configTable.ORDER_TOPIC_CONFIG.TopicO, 'broker-a:4');

        // REGISTER_BROKER answers with the ORDER_TOPIC_CONFIG list.
        const b = await RemotingClient.connect(ns.port);
        const reg = await b.request(REQ.REGISTER_BROKER, regHeader('broker-k', '127.0.0.1:50911'), JSON.stringify(registerBody([])));
        assert.deepEqual(jsonBody(reg), { table: { TopicO: 'broker-a:4' } });
        await b.close();

        r = await client.request(REQ.DELETE_KV_CONFIG, { namespace: 'ORDER_TOPIC_CONFIG', key: 'TopicO' });
        assert.equal(r.code, 0);
        r = await client.request(REQ.GET_KV_CONFIG, { namespace: 'ORDER_TOPIC_CONFIG', key: 'TopicO' });
        assert.equal(r.code, 22);
        r = await client.request(REQ.GET_KVLIST_BY_NAMESPACE, { namespace: 'ORDER_TOPIC_CONFIG' });
        assert.equal(r.code, 22);
        r = await client.request(REQ.PUT_KV_CONFIG, { namespace: 'X', key: 'k' });
        assert.equal(r.code, 1);
        assert.match(r.remark, /'value' is missing/);
    });

    test('pipelined requests on one connection all get answers', async () => {
        const ps = [];
        for (let i = 0; i < 200; i++) {
            ps.push(client.request(REQ.GET_ROUTEINFO_BY_TOPIC, { topic: `T${i}` }, null, { serialize: i % 2 ? 'ROCKETMQ' : 'JSON' }));
        }
        const rs = await Promise.all(ps);
        rs.forEach((r, i) => assert.match(r.remark, new RegExp(`topic: T${i};`)));
    });

    test('garbage, truncated, malformed and oversized frames close only that connection', async () => {
        const closedMalformed = async () => Number(JSON.parse((await client.request(28, {})).body.toString())
            .table.closedMalformedFrame);
        const before = await closedMalformed();
        const cases = [
            ['garbage', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')],
            ['oversized', (() => { const b = Buffer.alloc(8); b.writeInt32BE(0x7ffffff0, 0); return b; })()],
            ['negative length', (() => { const b = Buffer.alloc(8); b.writeInt32BE(-5, 0); return b; })()],
            ['bad header json', (() => {
                const h = Buffer.from('{"code":105,"opaque":');
                const b = Buffer.alloc(8); b.writeInt32BE(4 + h.length, 0); b.writeInt32BE(h.length, 4);
                return Buffer.concat([b, h]);
            })()],
            ['header longer than frame', (() => {
                const b = Buffer.alloc(12); b.writeInt32BE(8, 0); b.writeInt32BE(1000, 4);
                return b;
            })()],
            ['unknown serialize type', (() => {
                const b = Buffer.alloc(12); b.writeInt32BE(8, 0); b.writeUInt32BE((7 << 24) | 4, 4);
                return b;
            })()],
        ];
        for (const [name, bytes] of cases) {
            const bad = await RemotingClient.connect(ns.port);
            bad.writeRaw(bytes);
            const res = await Promise.race([bad.closed.then(() => 'closed'), sleep(2000).then(() => 'open')]);
            assert.equal(res, 'closed', `${name}: connection should be closed`);
            // The shared connection still works.
            const r = await client.request(REQ.GET_BROKER_CLUSTER_INFO);
            assert.equal(r.code, 0, name);
        }
        // Truncated frame: half a valid frame, then hang up.
        const t = await RemotingClient.connect(ns.port);
        const frame = encodeFrame({ code: 105, opaque: 1, ext: { topic: 'x' } });
        t.writeRaw(frame.subarray(0, frame.length - 5));
        await sleep(50);
        await t.close();
        assert.equal((await client.request(REQ.GET_BROKER_CLUSTER_INFO)).code, 0);
        // One log line per bad connection, naming the peer and the reason.
        const badLine = /closing connection 127\.0\.0\.1:\d+: (bad|malformed) frame/;
        await waitFor(async () => ns.output().split('\n').filter((l) => badLine.test(l)).length >= cases.length, 3000).catch(() => {});
        const lines = ns.output().split('\n').filter((l) => badLine.test(l));
        assert.equal(lines.length, cases.length, lines.join('\n'));
        assert.ok(await tryConnect(ns.port));
        // Counted in the NameServer's runtime info (the truncated frame is a hang-up, not counted).
        assert.equal(await closedMalformed() - before, cases.length);
    });

    test('several NameServers run side by side', async () => {
        const ns2 = await startApogee('namesrv', ['--brokerChannelExpiredTime=500', '--scanNotActiveBrokerInterval=100']);
        try {
            const c2 = await RemotingClient.connect(ns2.port);
            const b1 = await RemotingClient.connect(ns.port);
            const reg = regHeader('broker-s', '127.0.0.1:60911');
            const body = JSON.stringify(registerBody([topicConfig('TopicS', 2)]));
            assert.equal((await c2.request(REQ.REGISTER_BROKER, reg, body)).code, 0);
            assert.equal((await b1.request(REQ.REGISTER_BROKER, reg, body)).code, 0);
            assert.equal((await c2.request(REQ.GET_ROUTEINFO_BY_TOPIC, { topic: 'TopicS' })).code, 0);
            assert.equal((await client.request(REQ.GET_ROUTEINFO_BY_TOPIC, { topic: 'TopicS' })).code, 0);
            // ns2 expires the broker after brokerChannelExpiredTime; ns keeps it (120 s default).
            await waitFor(async () => (await c2.request(REQ.GET_ROUTEINFO_BY_TOPIC, { topic: 'TopicS' })).code === 17, 3000);
            assert.equal((await client.request(REQ.GET_ROUTEINFO_BY_TOPIC, { topic: 'TopicS' })).code, 0);
            await b1.close();
            c2.close();
        } finally {
            const { code } = await ns2.stop();
            assert.equal(code, 0);
            assert.equal(fs.existsSync(ns2.dir), false);
        }
    });

    test('idle connections are closed after serverChannelMaxIdleTimeSeconds', async () => {
        const ns3 = await startApogee('namesrv', ['--serverChannelMaxIdleTimeSeconds=1']);
        try {
            const c = await RemotingClient.connect(ns3.port);
            assert.equal((await c.request(REQ.GET_BROKER_CLUSTER_INFO)).code, 0);
            const t0 = Date.now();
            const res = await Promise.race([c.closed.then(() => 'closed'), sleep(4000).then(() => 'open')]);
            assert.equal(res, 'closed');
            assert.ok(Date.now() - t0 >= 900);
        } finally {
            await ns3.stop();
        }
    });
});

function sleep(ms) {
    return new Promise((r) => setTimeout(r, ms));
}

async function waitFor(fn, timeoutMs = 2000) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
        if (await fn()) return;
        await sleep(25);
    }
    throw new Error('condition not met in time');
}
