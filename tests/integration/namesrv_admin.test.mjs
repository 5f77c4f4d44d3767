// NameServer admin codes over raw remoting, against a real `apogee namesrv`: the NameServer
// half of deleteTopic (216, with and without 5.x's clusterName), the system and unit topic
// lists (304, 311-313), get/updateNamesrvConfig (319/318) with the runtime allow-list, and
// a replay of CVE-2023-37582's request shape (updateNamesrvConfig setting configStorePath
// to a file plus a crafted key): refused, no file written.
//
//   APOGEE_BIN=$PWD/build/apogee node --test tests/integration/namesrv_admin.test.mjs
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { startApogee } from '../lib/proc.mjs';
import { RemotingClient, jsonBody } from '../lib/remoting.mjs';

const REQ = {
    PUT_KV_CONFIG: 100, REGISTER_BROKER: 103, GET_ROUTEINFO_BY_TOPIC: 105,
    GET_ALL_TOPIC_LIST_FROM_NAMESERVER: 206, DELETE_TOPIC_IN_NAMESRV: 216,
    GET_TOPICS_BY_CLUSTER: 224, GET_SYSTEM_TOPIC_LIST_FROM_NS: 304, GET_UNIT_TOPIC_LIST: 311,
    GET_HAS_UNIT_SUB_TOPIC_LIST: 312, GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST: 313,
    UPDATE_NAMESRV_CONFIG: 318, GET_NAMESRV_CONFIG: 319,
};
const SUCCESS = 0;
const SYSTEM_ERROR = 1;
const NO_PERMISSION = 16;
const TOPIC_NOT_EXIST = 17;

function register(client, cluster, name, addr, topics) {
    const table = {};
    for (const [topicName, sysFlag] of topics) {
        table[topicName] = { topicName, readQueueNums: 4, writeQueueNums: 4, perm: 6, topicSysFlag: sysFlag };
    }
    const body = JSON.stringify({
        filterServerList: [],
        topicConfigSerializeWrapper: { dataVersion: { counter: 1, timestamp: Date.now() }, topicConfigTable: table },
    });
    return client.request(REQ.REGISTER_BROKER,
        { brokerName: name, brokerAddr: addr, clusterName: cluster, haServerAddr: addr, brokerId: '0' }, body);
}

// Java Properties.load for the simple key=value lines GET_NAMESRV_CONFIG answers.
function parseProps(text) {
    const out = {};
    for (const line of text.split('\n')) {
        if (!line || line.startsWith('#')) continue;
        const i = line.indexOf('=');
        out[line.slice(0, i)] = line.slice(i + 1).replace(/\\(.)/g, (_, c) => ({ n: '\n', t: '\t', r: '\r' })[c] ?? c);
    }
    return out;
}

function listFiles(dir) {
    const out = [];
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        out.push(p);
        if (e.isDirectory()) out.push(...listFiles(p));
    }
    return out.sort();
}

describe('NameServer admin codes', () => {
    let ns;
    let client;
    let broker;

    before(async () => {
        ns = await startApogee('namesrv', []);
        client = await RemotingClient.connect(ns.port);
        broker = await RemotingClient.connect(ns.port);
        for (const [cluster, name, addr] of [['C1', 'broker-a', '127.0.0.1:21911'], ['C2', 'broker-b', '127.0.0.1:22911']]) {
            const r = await register(broker, cluster, name, addr,
                [['Shared', 0], ['Unit', 1], ['UnitSub', 2], ['UnitBoth', 3], [`Only-${name}`, 0]]);
            assert.equal(r.code, SUCCESS, r.remark);
        }
    });
    after(async () => {
        client?.close();
        broker?.close();
        await ns?.stop();
    });

    test('DELETE_TOPIC_IN_NAMESRV with clusterName (5.x) drops only that cluster\'s queues', async () => {
        const r = await client.request(REQ.DELETE_TOPIC_IN_NAMESRV, { topic: 'Shared', clusterName: 'C1' });
        assert.equal(r.code, SUCCESS, r.remark);
        const rd = jsonBody(await client.request(REQ.GET_ROUTEINFO_BY_TOPIC, { topic: 'Shared' }));
        assert.deepEqual(rd.queueDatas.map((q) => q.brokerName), ['broker-b']);
        // 4.x sends the topic alone: every broker's queue data goes.
        const r2 = await client.request(REQ.DELETE_TOPIC_IN_NAMESRV, { topic: 'Shared' });
        assert.equal(r2.code, SUCCESS, r2.remark);
        const gone = await client.request(REQ.GET_ROUTEINFO_BY_TOPIC, { topic: 'Shared' });
        assert.equal(gone.code, TOPIC_NOT_EXIST);
        const all = jsonBody(await client.request(REQ.GET_ALL_TOPIC_LIST_FROM_NAMESERVER));
        assert.ok(!all.topicList.includes('Shared'));
        assert.ok(all.topicList.includes('Only-broker-a'));
        // Deleting an unknown topic is not an error (RocketMQ answers SUCCESS too).
        assert.equal((await client.request(REQ.DELETE_TOPIC_IN_NAMESRV, { topic: 'Nope' })).code, SUCCESS);
        // The topic field is required.
        assert.equal((await client.request(REQ.DELETE_TOPIC_IN_NAMESRV, {})).code, SYSTEM_ERROR);
    });

    test('GET_SYSTEM_TOPIC_LIST_FROM_NS: cluster and broker names plus one broker address', async () => {
        const b = jsonBody(await client.request(REQ.GET_SYSTEM_TOPIC_LIST_FROM_NS));
        assert.deepEqual(b.topicList.sort(), ['C1', 'C2', 'broker-a', 'broker-b']);
        assert.ok(['127.0.0.1:21911', '127.0.0.1:22911'].includes(b.brokerAddr), b.brokerAddr);
    });

    test('unit topic lists follow topicSysFlag (1 unit, 2 unit-sub)', async () => {
        const unit = jsonBody(await client.request(REQ.GET_UNIT_TOPIC_LIST));
        assert.deepEqual(unit.topicList.sort(), ['Unit', 'UnitBoth']);
        const sub = jsonBody(await client.request(REQ.GET_HAS_UNIT_SUB_TOPIC_LIST));
        assert.deepEqual(sub.topicList.sort(), ['UnitBoth', 'UnitSub']);
        const subOnly = jsonBody(await client.request(REQ.GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST));
        assert.deepEqual(subOnly.topicList, ['UnitSub']);
    });

    test('GET_NAMESRV_CONFIG answers the configuration as properties text', async () => {
        const r = await client.request(REQ.GET_NAMESRV_CONFIG);
        assert.equal(r.code, SUCCESS);
        const props = parseProps(r.body.toString());
        assert.equal(props.listenPort, String(ns.port));
        assert.equal(props.bindAddress, '127.0.0.1');
        assert.equal(props.orderMessageEnable, 'false');
        assert.equal(props.storePathRootDir, ns.dir);
        assert.equal(props.brokerName, undefined); // broker keys are not the NameServer's
    });

    test('UPDATE_NAMESRV_CONFIG changes allow-listed keys and the NameServer acts on them', async () => {
        await client.request(REQ.PUT_KV_CONFIG, { namespace: 'ORDER_TOPIC_CONFIG', key: 'Unit', value: 'broker-a:4' });
        let rd = jsonBody(await client.request(REQ.GET_ROUTEINFO_BY_TOPIC, { topic: 'Unit' }));
        assert.equal(rd.orderTopicConf, undefined);
        // mqadmin updateNamesrvConfig -k orderMessageEnable -v true sends "key=value\n".
        const r = await client.request(REQ.UPDATE_NAMESRV_CONFIG, {}, 'orderMessageEnable=true\n');
        assert.equal(r.code, SUCCESS, r.remark);
        rd = jsonBody(await client.request(REQ.GET_ROUTEINFO_BY_TOPIC, { topic: 'Unit' }));
        assert.equal(rd.orderTopicConf, 'broker-a:4');
        const props = parseProps((await client.request(REQ.GET_NAMESRV_CONFIG)).body.toString());
        assert.equal(props.orderMessageEnable, 'true');

        const off = await client.request(REQ.UPDATE_NAMESRV_CONFIG, {}, 'enableAllTopicList=false\nenableTopicList=false\n');
        assert.equal(off.code, SUCCESS, off.remark);
        const all = await client.request(REQ.GET_ALL_TOPIC_LIST_FROM_NAMESERVER);
        assert.equal(all.code, SYSTEM_ERROR);
        assert.match(all.remark, /^disable/);
        const byc = await client.request(REQ.GET_TOPICS_BY_CLUSTER, { cluster: 'C1' });
        assert.equal(byc.code, SYSTEM_ERROR);
        assert.match(byc.remark, /enableTopicList=false/);
        assert.equal((await client.request(REQ.GET_UNIT_TOPIC_LIST)).code, SYSTEM_ERROR);
        const on = await client.request(REQ.UPDATE_NAMESRV_CONFIG, {}, 'enableAllTopicList=true\nenableTopicList=true\n');
        assert.equal(on.code, SUCCESS);
        assert.equal((await client.request(REQ.GET_TOPICS_BY_CLUSTER, { cluster: 'C1' })).code, SUCCESS);
        // An empty body changes nothing and succeeds, as in RocketMQ.
        assert.equal((await client.request(REQ.UPDATE_NAMESRV_CONFIG)).code, SUCCESS);
    });

    test('UPDATE_NAMESRV_CONFIG refuses anything off the allow-list, naming the key, changing nothing', async () => {
        const before = (await client.request(REQ.GET_NAMESRV_CONFIG)).body.toString();
        const cases = [
            ['kvConfigPath=/tmp/kv.json', /'kvConfigPath' names a file/],
            ['configStorePath=/tmp/ns.properties', /'configStorePath' names a file/],
            ['rocketmqHome=/tmp', /'rocketmqHome' names a file/],
            ['productEnvName=x', /'productEnvName' names a file/],
            ['storePathRootDir=/tmp', /'storePathRootDir' names a file/],
            ['listenPort=1', /'listenPort' is read only at start-up/],
            ['bindAddress=0.0.0.0', /'bindAddress' is read only at start-up/],
            ['brokerName=x', /'brokerName' is a broker setting/],
            ['clusterTest=true', /'clusterTest' is a RocketMQ setting Apogee does not implement/],
            ['whatever=1', /'whatever' is not a configuration key/],
            // A valid key first: all or nothing.
            ['orderMessageEnable=false\nconfigBlackList=', /'configBlackList' names a file/],
        ];
        for (const [body, re] of cases) {
            const r = await client.request(REQ.UPDATE_NAMESRV_CONFIG, {}, body + '\n');
            assert.equal(r.code, NO_PERMISSION, `${body}: ${r.code} ${r.remark}`);
            assert.match(r.remark, re);
            assert.match(r.remark, /nothing was changed/);
        }
        const bad = await client.request(REQ.UPDATE_NAMESRV_CONFIG, {}, 'scanNotActiveBrokerInterval=abc\n');
        assert.equal(bad.code, SYSTEM_ERROR);
        assert.match(bad.remark, /scanNotActiveBrokerInterval=abc: not an integer/);
        assert.equal((await client.request(REQ.GET_NAMESRV_CONFIG)).body.toString(), before);
        await ns.waitOutput(/UPDATE_NAMESRV_CONFIG from 127\.0\.0\.1:\d+ refused: config key 'kvConfigPath'/);
    });

    test('CVE-2023-37582 replay: configStorePath to a file plus a crafted key is refused, no file written', async () => {
        const victim = fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-cve-'));
        try {
            const target = path.join(victim, 'crontab');
            const marker = path.join(victim, 'pwned');
            const beforeFiles = listFiles(ns.dir);
            // The published exploit: point configStorePath at a file the attacker wants
            // written, and smuggle a line of its content in as a key/value.
            const bodies = [
                `configStorePath=${target}\n* * * * * root touch ${marker}\\n=x\n`,
                `evil\\n*\\ *\\ *\\ *\\ *\\ root\\ touch\\ ${marker}=1\nconfigStorePath=${target}\n`,
                `rocketmqHome=-c $@|sh . echo touch ${marker};\nconfigStorePath=${target}\n`,
            ];
            for (const body of bodies) {
                const r = await client.request(REQ.UPDATE_NAMESRV_CONFIG, {}, body);
                assert.equal(r.code, NO_PERMISSION, r.remark);
                assert.match(r.remark, /nothing was changed/);
                assert.doesNotMatch(r.remark, /[\n\r]/);
            }
            // Give a would-be writer or spawned shell time to act.
            await new Promise((res) => setTimeout(res, 300));
            assert.equal(fs.existsSync(target), false);
            assert.equal(fs.existsSync(marker), false);
            assert.deepEqual(fs.readdirSync(victim), []);
            assert.deepEqual(listFiles(ns.dir), beforeFiles);
            const props = parseProps((await client.request(REQ.GET_NAMESRV_CONFIG)).body.toString());
            assert.equal(props.configStorePath, undefined);
        } finally {
            fs.rmSync(victim, { recursive: true, force: true });
        }
    });
});
