// The plain ACL on the NameServer (aclEnable=true, <storePathRootDir>/conf/plain_acl.yml),
// driven over raw remoting with RocketMQ's signature (tests/lib/acl.mjs):
//   - a matrix: NameServer request codes x {no credentials, wrong secret, non-admin account,
//     admin account}, JSON and ROCKETMQ headers, ACL on and off: the client reads need any
//     valid signature, the admin codes and broker registration an admin account; every
//     refusal is NO_PERMISSION (16) with a remark naming the check, and never a secret;
//   - a global white list lets an address through unsigned (reload of the file);
//   - `apogee broker` registers with innerClientAuthenticationCredentials of an admin
//     account; with a wrong secret or a non-admin account it cannot, and logs why.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, runAdmin, startApogee } from '../lib/proc.mjs';
import { RemotingClient, waitForRoute } from '../lib/remoting.mjs';
import { signedRequest, writeAclFile } from '../lib/acl.mjs';

const USER = { ak: 'nsUser001', sk: 'nsUserSecret1' };
const ADMIN = { ak: 'nsAdmin001', sk: 'nsAdminSecret1' };
const WRONG = { ak: ADMIN.ak, sk: 'notTheSecret' };

const ACL_YML = `globalWhiteRemoteAddresses:
accounts:
  - accessKey: ${USER.ak}
    secretKey: ${USER.sk}
    admin: false
    defaultTopicPerm: DENY
    defaultGroupPerm: DENY
  - accessKey: ${ADMIN.ak}
    secretKey: ${ADMIN.sk}
    admin: true
`;

const creds = (c) => `--innerClientAuthenticationCredentials=${JSON.stringify(
    { accessKey: c.ak, secretKey: c.sk })}`;

const regHeader = (name) => ({
    brokerName: name, brokerAddr: '127.0.0.1:50911', clusterName: 'AclCluster',
    haServerAddr: '127.0.0.1:50912', brokerId: '0',
});
const regBody = () => JSON.stringify({
    filterServerList: [],
    topicConfigSerializeWrapper: {
        dataVersion: { counter: 1, timestamp: 1700000000000 },
        topicConfigTable: {
            T_NS_ACL: { topicName: 'T_NS_ACL', readQueueNums: 4, writeQueueNums: 4, perm: 6,
                topicFilterType: 'SINGLE_TAG', topicSysFlag: 0, order: false },
        },
    },
});

// need: 'client' (any valid signature) or 'admin'.
const ROWS = [
    { name: 'GET_ROUTEINFO_BY_TOPIC', code: 105, need: 'client', ext: { topic: 'T_NS_ACL' } },
    { name: 'GET_BROKER_CLUSTER_INFO', code: 106, need: 'client', ext: {} },
    { name: 'GET_ALL_TOPIC_LIST_FROM_NAMESERVER', code: 206, need: 'client', ext: {} },
    { name: 'GET_TOPICS_BY_CLUSTER', code: 224, need: 'client', ext: { cluster: 'AclCluster' } },
    { name: 'GET_KV_CONFIG', code: 101, need: 'client', ext: { namespace: 'NS_ACL', key: 'k' } },
    { name: 'GET_KVLIST_BY_NAMESPACE', code: 219, need: 'client', ext: { namespace: 'NS_ACL' } },
    { name: 'PUT_KV_CONFIG', code: 100, need: 'admin', ext: { namespace: 'NS_ACL', key: 'k', value: 'v' } },
    { name: 'DELETE_KV_CONFIG', code: 102, need: 'admin', ext: { namespace: 'NS_ACL', key: 'gone' } },
    { name: 'DELETE_TOPIC_IN_NAMESRV', code: 216, need: 'admin', ext: { topic: 'T_NS_NONE' } },
    { name: 'UPDATE_NAMESRV_CONFIG', code: 318, need: 'admin', ext: {}, body: 'orderMessageEnable=false' },
    { name: 'GET_NAMESRV_CONFIG', code: 319, need: 'admin', ext: {} },
    { name: 'WIPE_WRITE_PERM_OF_BROKER', code: 205, need: 'admin', ext: { brokerName: 'nobody-b' } },
    { name: 'REGISTER_BROKER', code: 103, need: 'admin', ext: regHeader('acl-b'), body: regBody() },
    { name: 'QUERY_DATA_VERSION', code: 322, need: 'admin', ext: regHeader('acl-b'),
        body: JSON.stringify({ counter: 1, timestamp: 1700000000000 }) },
    { name: 'BROKER_HEARTBEAT', code: 904, need: 'admin', ext: regHeader('acl-b') },
    { name: 'UNREGISTER_BROKER', code: 104, need: 'admin', ext: regHeader('acl-b') },
];

const COLS = [
    { name: 'none', cred: null },
    { name: 'wrong secret', cred: WRONG },
    { name: 'non-admin', cred: USER },
    { name: 'admin', cred: ADMIN },
];

function expected(row, col) {
    if (col.name === 'none') return /^ACL: request .* carries no AccessKey/;
    if (col.name === 'wrong secret') return /^ACL: signature check failed for accessKey 'nsAdmin001'/;
    if (col.name === 'non-admin' && row.need === 'admin')
        return new RegExp(`^ACL: request ${row.name} \\(${row.code}\\) needs an admin account; accessKey 'nsUser001' is not admin`);
    return null;
}

const aclRefused = (r) => r.code === 16 && /^ACL:/.test(r.remark ?? '');

async function runMatrix(c, aclOn) {
    const failures = [];
    let refused = 0;
    for (const serialize of ['JSON', 'ROCKETMQ']) {
        for (const row of ROWS) {
            for (const col of COLS) {
                const r = await signedRequest(c, row.code, { ...row.ext }, row.body ?? null,
                    col.cred, { serialize });
                const want = aclOn ? expected(row, col) : null;
                const cell = `${serialize} ${row.name} x ${col.name}`;
                if (want === null) {
                    if (aclRefused(r)) failures.push(`${cell}: allowed expected, got ${r.code} ${r.remark}`);
                } else if (!aclRefused(r) || !want.test(r.remark)) {
                    failures.push(`${cell}: refusal ${want} expected, got ${r.code} ${r.remark}`);
                } else {
                    refused++;
                    assert.doesNotMatch(r.remark, /Secret1|notTheSecret/); // never a secret
                }
            }
        }
    }
    assert.deepEqual(failures, [], failures.join('\n'));
    return refused;
}

let on;
let off;
let cOn;
let cOff;
before(async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-nsacl-'));
    writeAclFile(dir, ACL_YML);
    on = await startApogee('namesrv', ['--aclEnable=true'], { dir });
    off = await startApogee('namesrv', []);
    cOn = await RemotingClient.connect(on.port);
    cOff = await RemotingClient.connect(off.port);
});
after(async () => {
    cOn?.close();
    cOff?.close();
    for (const s of [on, off]) {
        const r = await s?.stop();
        if (r) assert.equal(r.code, 0, `server exit ${JSON.stringify(r)}`);
    }
});

test('NameServer ACL on: reads need a signature, admin codes and registration an admin account', async () => {
    const refused = await runMatrix(cOn, true);
    // 2 serializations x (16 rows x 2 (none, wrong) + 10 admin rows x non-admin)
    assert.equal(refused, 2 * (ROWS.length * 2 + ROWS.filter((r) => r.need === 'admin').length));
    assert.match(on.output(), /\[namesrv\] ACL on: 2 accounts, 0 global white addresses/);
    assert.match(on.output(), /WARN  \[namesrv\] refused \w+ \(\d+\) from 127\.0\.0\.1:\d+.*: ACL: /);
    // What the admin changed took effect: the KV pair is there for a signed reader.
    const r = await signedRequest(cOn, 101, { namespace: 'NS_ACL', key: 'k' }, null, USER);
    assert.equal(r.code, 0, r.remark);
    assert.equal(r.ext.value, 'v');
});

test('the NameServer counts its refusals: runtime info and apogee admin namesrvStatus', async () => {
    const r = await signedRequest(cOn, 28, {}, null, ADMIN);
    assert.equal(r.code, 0, r.remark);
    const t = JSON.parse(r.body.toString()).table;
    const admins = ROWS.filter((row) => row.need === 'admin').length;
    assert.equal(Number(t.aclRefusedNoAccessKey), 2 * ROWS.length);
    assert.equal(Number(t.aclRefusedSignature), 2 * ROWS.length);
    assert.equal(Number(t.aclRefusedNeedAdmin), 2 * admins);
    assert.equal(Number(t.aclRefusedTotal), 2 * (2 * ROWS.length + admins));
    // It needs an admin account like every other admin code.
    assert.equal((await signedRequest(cOn, 28, {}, null, USER)).code, 16);
    const ns = [`-n`, `127.0.0.1:${on.port}`, `--accessKey=${ADMIN.ak}`, `--secretKey=${ADMIN.sk}`];
    const j = await runAdmin(['namesrvStatus', ...ns, '--json']);
    assert.equal(j.code, 0, j.out);
    const st = JSON.parse(j.out).namesrvs[0];
    assert.equal(st.addr, `127.0.0.1:${on.port}`);
    assert.equal(Number(st.table.aclRefusedNeedAdmin), 2 * admins + 1);
    assert.equal(st.table.closedTlsRefused, '0');
    const tab = await runAdmin(['namesrvStatus', ...ns]);
    assert.equal(tab.code, 0, tab.out);
    assert.match(tab.out, /127\.0\.0\.1:\d+ +aclRefusedSignature +32\n/);
});

test('NameServer ACL off: no cell is refused', async () => {
    assert.equal(await runMatrix(cOff, false), 0);
});

test('a global white list lets an address through unsigned; the file is re-read', async () => {
    const file = path.join(on.dir, 'conf', 'plain_acl.yml');
    fs.writeFileSync(file, ACL_YML.replace('globalWhiteRemoteAddresses:',
        'globalWhiteRemoteAddresses:\n  - 127.0.0.1'));
    await on.waitOutput(/\[namesrv\] ACL reloaded: 2 accounts, 1 global white addresses/, 5000);
    let r = await cOn.request(319, {});
    assert.equal(r.code, 0, r.remark);
    r = await cOn.request(103, regHeader('white-b'), regBody());
    assert.equal(r.code, 0, r.remark);
    fs.writeFileSync(file, ACL_YML);
    await on.waitOutput(/\[namesrv\] ACL reloaded: 2 accounts, 0 global white addresses/, 5000);
    r = await cOn.request(319, {});
    assert.equal(r.code, 16, r.remark);
});

test('apogee broker registers with innerClientAuthenticationCredentials of an admin account', async () => {
    const ns = [`--namesrvAddr=127.0.0.1:${on.port}`, '--allowLoopbackAdvertise=true'];
    const bad = await startApogee('broker', [...ns, '--brokerName=bad-secret', creds(WRONG)]);
    const plain = await startApogee('broker', [...ns, '--brokerName=non-admin', creds(USER)]);
    const good = await startApogee('broker', [...ns, '--brokerName=good-b', creds(ADMIN),
        '--brokerClusterName=GoodCluster']);
    try {
        await bad.waitOutput(/WARN  \[broker\] NameServer 127\.0\.0\.1:\d+ refused REGISTER_BROKER: code 16 ACL: signature check failed for accessKey 'nsAdmin001'/, 5000);
        await plain.waitOutput(/WARN  \[broker\] NameServer 127\.0\.0\.1:\d+ refused REGISTER_BROKER: code 16 ACL: request REGISTER_BROKER \(103\) needs an admin account; accessKey 'nsUser001' is not admin/, 5000);
        assert.doesNotMatch(good.output(), /refused REGISTER_BROKER/);
        // Only the admin-signed broker is in the cluster table.
        await waitForRoute(on.port, 'TBW102', 10000, USER);
        const r = await signedRequest(cOn, 106, {}, null, USER);
        assert.equal(r.code, 0, r.remark);
        const names = Object.keys(JSON.parse(r.body.toString()).brokerAddrTable);
        assert.ok(names.includes('good-b'), names.join());
        assert.ok(!names.includes('bad-secret') && !names.includes('non-admin'), names.join());
        // The secret is not sent back by GET_BROKER_CONFIG.
        const bc = await RemotingClient.connect(good.port);
        try {
            const cfg = await bc.request(26, {});
            assert.equal(cfg.code, 0, cfg.remark);
            assert.match(cfg.body.toString(), /innerClientAuthenticationCredentials=\*\*\*\*\*\*/);
            assert.doesNotMatch(cfg.body.toString(), /nsAdminSecret1/);
        } finally {
            bc.close();
        }
    } finally {
        for (const s of [bad, plain, good]) assert.equal((await s.stop()).code, 0);
    }
});

test('a malformed innerClientAuthenticationCredentials stops the broker at start', async () => {
    await assert.rejects(startApogee('broker', [`--namesrvAddr=127.0.0.1:${await freePort()}`,
        '--allowLoopbackAdvertise=true', '--innerClientAuthenticationCredentials={"accessKey":"x"}'], { startTimeoutMs: 3000 }),
    /innerClientAuthenticationCredentials must be JSON/);
});

test('apogee standalone with aclEnable=true registers its broker with no account configured for it', async () => {
    // The file has no admin account: the in-process hop does not borrow one.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-nsacl-sa-'));
    writeAclFile(dir, ACL_YML.replace(/ {2}- accessKey: nsAdmin001[^]*$/, ''));
    const nsPort = await freePort();
    const sa = await startApogee('standalone', ['--aclEnable=true'],
        { dir, extraPorts: { namesrvListenPort: nsPort } });
    try {
        await waitForRoute(nsPort, 'TBW102', 10000, USER);
        assert.doesNotMatch(sa.output(), /refused REGISTER_BROKER|innerClientAuthenticationCredentials is empty/);
        assert.match(sa.output(), /ACL on: 1 accounts/);
        const c = await RemotingClient.connect(nsPort);
        try {
            // Nobody else can register: unsigned, non-admin and admin-of-another-file are refused.
            for (const cred of [null, USER, ADMIN]) {
                const r = await signedRequest(c, 103, regHeader('intruder-b'), regBody(), cred);
                assert.equal(r.code, 16, r.remark);
            }
            const r = await signedRequest(c, 106, {}, null, USER);
            assert.equal(r.code, 0, r.remark);
            const names = Object.keys(JSON.parse(r.body.toString()).brokerAddrTable);
            assert.deepEqual(names, ['broker-a']);
        } finally {
            c.close();
        }
        assert.doesNotMatch(sa.output(), /apogeeInner/); // the in-process account is never logged
    } finally {
        assert.equal((await sa.stop()).code, 0);
    }
});
