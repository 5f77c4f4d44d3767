// The plain ACL (aclEnable=true, <storePathRootDir>/conf/plain_acl.yml), driven over raw
// remoting with RocketMQ's signature (tests/lib/acl.mjs):
//   - an authorization matrix: request codes x {no credentials, wrong secret, wrong perms,
//     right perms, admin}, JSON and ROCKETMQ headers, ACL on and off; every refusal is
//     NO_PERMISSION (16) with a remark naming the check and is counted in runtime info;
//   - reload: an edited file takes effect, a broken one keeps the rules in force;
//   - a missing file stops the broker from starting.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, runAdmin, runBench, startApogee } from '../lib/proc.mjs';
import { waitForRoute } from '../lib/remoting.mjs';
import { RemotingClient } from '../lib/remoting.mjs';
import { signedRequest, writeAclFile } from '../lib/acl.mjs';

const USER = { ak: 'userAccess1', sk: 'userSecret1' };
const OTHER = { ak: 'otherUser1', sk: 'otherSecret1' };
const ADMIN = { ak: 'adminUser1', sk: 'adminSecret1' };
const WRONG = { ak: USER.ak, sk: 'notTheSecret' };

const ACL_YML = `# test accounts
globalWhiteRemoteAddresses:
accounts:
  - accessKey: ${USER.ak}
    secretKey: ${USER.sk}
    whiteRemoteAddress:
    admin: false
    defaultTopicPerm: DENY
    defaultGroupPerm: DENY
    topicPerms:
      - T_ACL=PUB|SUB
    groupPerms:
      - G_ACL=SUB
  - accessKey: ${OTHER.ak}
    secretKey: "${OTHER.sk}"
    defaultTopicPerm: DENY
    defaultGroupPerm: DENY
  - accessKey: ${ADMIN.ak}
    secretKey: ${ADMIN.sk}
    admin: true
`;

const hb = {
    clientID: '127.0.0.1@acl', producerDataSet: [],
    consumerDataSet: [{
        groupName: 'G_ACL', consumeType: 'CONSUME_PASSIVELY', messageModel: 'CLUSTERING',
        consumeFromWhere: 'CONSUME_FROM_LAST_OFFSET', unitMode: false,
        subscriptionDataSet: [{
            topic: 'T_ACL', subString: '*', classFilterMode: false, tagsSet: [], codeSet: [],
            subVersion: 0, expressionType: 'TAG',
        }],
    }],
};

// need: 'res' (topic/group perms), 'client' (signature only), 'admin'.
const ROWS = [
    { name: 'SEND_MESSAGE_V2', code: 310, need: 'res', body: 'hello',
        ext: () => ({ a: 'PG_ACL', b: 'T_ACL', c: 'TBW102', d: '4', e: '0', f: '0',
            g: String(Date.now()), h: '0', i: '', j: '0', k: 'false' }) },
    { name: 'PULL_MESSAGE', code: 11, need: 'res',
        ext: () => ({ consumerGroup: 'G_ACL', topic: 'T_ACL', queueId: '0', queueOffset: '0',
            maxMsgNums: '1', sysFlag: '0', commitOffset: '0', suspendTimeoutMillis: '0',
            subscription: '*', subVersion: '0', expressionType: 'TAG' }) },
    { name: 'POP_MESSAGE', code: 200050, need: 'res',
        ext: () => ({ consumerGroup: 'G_ACL', topic: 'T_ACL', queueId: '0', maxMsgNums: '1',
            invisibleTime: '60000', pollTime: '0', bornTime: String(Date.now()), initMode: '0' }) },
    { name: 'HEART_BEAT', code: 34, need: 'res', ext: () => ({}), body: JSON.stringify(hb) },
    { name: 'UPDATE_CONSUMER_OFFSET', code: 15, need: 'res',
        ext: () => ({ consumerGroup: 'G_ACL', topic: 'T_ACL', queueId: '0', commitOffset: '0' }) },
    { name: 'GET_CONSUMER_LIST_BY_GROUP', code: 38, need: 'res',
        ext: () => ({ consumerGroup: 'G_ACL' }) },
    { name: 'QUERY_CONSUMER_OFFSET', code: 14, need: 'client',
        ext: () => ({ consumerGroup: 'G_ACL', topic: 'T_ACL', queueId: '0' }) },
    { name: 'GET_MAX_OFFSET', code: 30, need: 'client', ext: () => ({ topic: 'T_ACL', queueId: '0' }) },
    { name: 'UPDATE_AND_CREATE_TOPIC', code: 17, need: 'admin',
        ext: () => ({ topic: 'T_ACL_ADMIN', defaultTopic: 'TBW102', readQueueNums: '4',
            writeQueueNums: '4', perm: '6', topicFilterType: 'SINGLE_TAG', topicSysFlag: '0',
            order: 'false' }) },
    { name: 'GET_BROKER_RUNTIME_INFO', code: 28, need: 'admin', ext: () => ({}) },
    { name: 'GET_ALL_TOPIC_CONFIG', code: 21, need: 'admin', ext: () => ({}) },
    { name: 'UPDATE_BROKER_CONFIG', code: 25, need: 'admin', ext: () => ({}), body: '' },
];

const COLS = [
    { name: 'none', cred: null },
    { name: 'wrong secret', cred: WRONG },
    { name: 'wrong perms', cred: OTHER },
    { name: 'right perms', cred: USER },
    { name: 'admin', cred: ADMIN },
];

// The expected answer under ACL: null (allowed) or [counter, remark pattern].
function expected(row, col) {
    if (col.name === 'none') return ['aclRefusedNoAccessKey', /^ACL: request .* carries no AccessKey/];
    if (col.name === 'wrong secret') return ['aclRefusedSignature', /^ACL: signature check failed for accessKey 'userAccess1'/];
    if (col.name === 'admin') return null;
    if (row.need === 'admin')
        return ['aclRefusedNeedAdmin', new RegExp(`^ACL: request ${row.name} \\(${row.code}\\) needs an admin account; accessKey '${col.cred.ak}' is not admin`)];
    if (row.need === 'res' && col.name === 'wrong perms')
        return ['aclRefusedNoPermission', /^ACL: accessKey 'otherUser1' has no (PUB|SUB) permission on (topic 'T_ACL'|group 'G_ACL')/];
    return null;
}

const aclRefused = (r) => r.code === 16 && /^ACL:/.test(r.remark ?? '');

async function runMatrix(br, aclOn) {
    const refusals = {};
    const failures = [];
    for (const serialize of ['JSON', 'ROCKETMQ']) {
        for (const row of ROWS) {
            // The binary header holds the code in 16 bits: RocketMQ's 2000xx codes travel
            // as JSON only.
            if (serialize === 'ROCKETMQ' && row.code > 32767) continue;
            for (const col of COLS) {
                const r = await signedRequest(br, row.code, row.ext(), row.body ?? null, col.cred,
                    { serialize });
                const want = aclOn ? expected(row, col) : null;
                const cell = `${serialize} ${row.name} x ${col.name}`;
                if (want === null) {
                    if (aclRefused(r)) failures.push(`${cell}: allowed expected, got ${r.code} ${r.remark}`);
                } else if (!aclRefused(r) || !want[1].test(r.remark)) {
                    failures.push(`${cell}: ${want[0]} expected, got ${r.code} ${r.remark}`);
                } else {
                    refusals[want[0]] = (refusals[want[0]] ?? 0) + 1;
                    assert.doesNotMatch(r.remark, /Secret1|notTheSecret/); // never a secret
                }
            }
        }
    }
    assert.deepEqual(failures, [], failures.join('\n'));
    return refusals;
}

let on;
let nsOn;
let nsOff;
let off;
let brOn;
let brOff;
before(async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-acl-'));
    writeAclFile(dir, ACL_YML);
    nsOn = await freePort();
    on = await startApogee('standalone', ['--aclEnable=true',
        `--innerClientAuthenticationCredentials=${JSON.stringify({ accessKey: ADMIN.ak, secretKey: ADMIN.sk })}`],
        { dir, extraPorts: { namesrvListenPort: nsOn } });
    nsOff = await freePort();
    off = await startApogee('standalone', [], { extraPorts: { namesrvListenPort: nsOff } });
    brOn = await RemotingClient.connect(on.port);
    brOff = await RemotingClient.connect(off.port);
});
after(async () => {
    brOn?.close();
    brOff?.close();
    for (const s of [on, off]) {
        const r = await s?.stop();
        if (r) assert.equal(r.code, 0, `server exit ${JSON.stringify(r)}`);
    }
});

async function runtimeInfo(br, cred) {
    const r = await signedRequest(br, 28, {}, null, cred);
    assert.equal(r.code, 0, r.remark);
    return JSON.parse(r.body.toString()).table;
}

test('ACL on: every cell of the matrix answers as expected and every refusal is counted', async () => {
    const refusals = await runMatrix(brOn, true);
    const t = await runtimeInfo(brOn, ADMIN);
    for (const k of ['aclRefusedNoAccessKey', 'aclRefusedSignature', 'aclRefusedNeedAdmin',
        'aclRefusedNoPermission', 'aclRefusedUnknownAccessKey'])
        assert.equal(t[k], String(refusals[k] ?? 0), k);
    const total = Object.values(refusals).reduce((a, b) => a + b, 0);
    assert.equal(t.refusedNoPermission, String(total));
    // Logged like every refusal (at most one line per second per cause).
    await on.waitOutput(/refused SEND_MESSAGE_V2 from 127\.0\.0\.1:\d+: NO_PERMISSION \(16\): ACL: request SEND_MESSAGE_V2 \(310\) carries no AccessKey/);
});

test('ACL on: an unknown accessKey and a body changed after signing are refused', async () => {
    let r = await signedRequest(brOn, 30, { topic: 'T_ACL', queueId: '0' }, null,
        { ak: 'stranger1', sk: 'whatever1' });
    assert.equal(r.code, 16);
    assert.match(r.remark, /accessKey 'stranger1' is not an account/);
    const { signExt } = await import('../lib/acl.mjs');
    const ext = signExt(ROWS[0].ext(), 'hello', USER);
    r = await brOn.request(310, ext, 'HELLO');
    assert.equal(r.code, 16);
    assert.match(r.remark, /signature check failed/);
    r = await brOn.request(310, ext, 'hello');
    assert.equal(r.code, 0, r.remark);
});

test('ACL off: no cell is refused, credentials or not', async () => {
    const refusals = await runMatrix(brOff, false);
    assert.deepEqual(refusals, {});
    const t = await runtimeInfo(brOff, null);
    assert.equal(t.aclRefusedNoAccessKey, '0');
});

test('reload: an edited file takes effect, a broken file keeps the rules in force', async () => {
    const send = () => signedRequest(brOn, 310, ROWS[0].ext(), 'x', OTHER);
    let r = await send();
    assert.equal(r.code, 16, r.remark);
    const file = path.join(on.dir, 'conf', 'plain_acl.yml');
    // otherUser1 may now publish to T_ACL.
    fs.writeFileSync(file, ACL_YML.replace(`secretKey: "${OTHER.sk}"`,
        `secretKey: "${OTHER.sk}"\n    topicPerms: [T_ACL=PUB]`));
    await on.waitOutput(/\[acl\] ACL reloaded: 3 accounts/, 5000);
    r = await send();
    assert.equal(r.code, 0, r.remark);
    // A broken file: logged, counted, and the rules above stay.
    fs.writeFileSync(file, 'accounts:\n  - accessKey: x\n    secretKey: [\n');
    await on.waitOutput(/\[acl\] ACL file changed but was not loaded, the previous rules stay in force: .*plain_acl\.yml: line \d+/, 5000);
    r = await send();
    assert.equal(r.code, 0, r.remark);
    // An empty file (a truncate caught before the write) is refused the same way.
    fs.writeFileSync(file, '');
    await on.waitOutput(/\[acl\] .*previous rules stay in force: .*has no accounts/, 5000);
    r = await send();
    assert.equal(r.code, 0, r.remark);
    let t = await runtimeInfo(brOn, ADMIN);
    assert.equal(t.aclReloads, '1');
    assert.equal(t.aclReloadFailures, '2');
    // A global white list lets 127.0.0.1 in unsigned.
    fs.writeFileSync(file, ACL_YML.replace('globalWhiteRemoteAddresses:',
        'globalWhiteRemoteAddresses:\n  - 127.0.0.1'));
    await on.waitOutput(/\[acl\] ACL reloaded: 3 accounts, 1 global white addresses/, 5000);
    r = await brOn.request(28, {});
    assert.equal(r.code, 0, r.remark);
    r = await send(); // the white list passes before perms are looked at
    assert.equal(r.code, 0, r.remark);
    // Back to the original rules.
    fs.writeFileSync(file, ACL_YML);
    await until(async () => (await send()).code === 16, 5000);
    t = await runtimeInfo(brOn, ADMIN);
    assert.equal(t.aclReloads, '3');
});

test('the C client (apogee bench) signs with accessKey/secretKey: e2e passes, a wrong secret fails', async () => {
    await waitForRoute(nsOn, 'TBW102', 10000, USER);
    const common = [`--namesrvAddr=127.0.0.1:${nsOn}`, '--topic=T_ACL', '--group=G_ACL', '--json'];
    const ok = await runBench(['e2e', ...common, '--messages=500', '--threads=2',
        `--accessKey=${USER.ak}`, `--secretKey=${USER.sk}`]);
    assert.equal(ok.code, 0, ok.out);
    assert.ok(ok.json, ok.out);
    assert.equal(ok.json.received, 500, ok.out);
    assert.equal(ok.json.failed, 0, ok.out);
    const bad = await runBench(['produce', ...common, '--messages=10', `--accessKey=${USER.ak}`,
        '--secretKey=wrongSecret1', '--sendMsgTimeout=2000']);
    assert.notEqual(bad.code, 0, bad.out);
    // The NameServer refuses the route lookup first (it checks the ACL too).
    assert.match(bad.out, /ACL: signature check failed for accessKey 'userAccess1'/);
});

test('apogee admin signs with --accessKey/--secretKey: an admin account reads and changes, others are refused', async () => {
    await waitForRoute(nsOn, 'TBW102', 10000, USER);
    const ns = ['-n', `127.0.0.1:${nsOn}`];
    const b = ['-b', `127.0.0.1:${on.port}`];
    const none = await runAdmin(['brokerStatus', ...b, ...ns]);
    assert.equal(none.code, 1, none.out);
    assert.match(none.out, /refused: 16 ACL: .* carries no AccessKey/);
    const user = await runAdmin(['brokerStatus', ...b, ...ns, `--accessKey=${USER.ak}`, `--secretKey=${USER.sk}`]);
    assert.equal(user.code, 1, user.out);
    assert.match(user.out, /refused: 16 ACL: .*admin/);
    const admin = ['--accessKey', ADMIN.ak, `--secretKey=${ADMIN.sk}`];
    const st = await runAdmin(['brokerStatus', ...b, ...ns, '--json', ...admin]);
    assert.equal(st.code, 0, st.out);
    assert.ok(JSON.parse(st.out), st.out);
    const up = await runAdmin(['updateTopic', '-t', 'T_ADMIN_ACL', ...b, ...ns, ...admin]);
    assert.equal(up.code, 0, up.out);
    const routed = await runAdmin(['topicRoute', '-t', 'T_ADMIN_ACL', ...ns, '--json', ...admin]);
    assert.equal(routed.code, 0, routed.out);
    const bad = await runAdmin(['brokerStatus', ...b, ...ns, `--accessKey=${ADMIN.ak}`, '--secretKey=wrongSecret1']);
    assert.equal(bad.code, 1, bad.out);
    assert.match(bad.out, /signature check failed/);
    const missing = await runAdmin(['brokerStatus', ...b, ...ns, '--accessKey']);
    assert.equal(missing.code, 2, missing.out);
});

test('the ACL admin codes: version info with ACL on, refusals that name the file for the updates', async () => {
    const ns = ['-n', `127.0.0.1:${nsOn}`];
    const b = ['-b', `127.0.0.1:${on.port}`];
    const admin = [`--accessKey=${ADMIN.ak}`, `--secretKey=${ADMIN.sk}`];
    const v = await runAdmin(['clusterAclConfigVersion', ...b, ...ns, '--json', ...admin]);
    assert.equal(v.code, 0, v.out);
    const row = JSON.parse(v.out).brokers[0];
    assert.equal(row.cluster, 'DefaultCluster');
    assert.equal(row.brokerName, 'broker-a');
    assert.equal(row.aclFilePath, path.join(on.dir, 'conf', 'plain_acl.yml'));
    assert.equal(typeof row.counter, 'number');
    assert.ok(Math.abs(row.timestamp - Date.now()) < 600000, JSON.stringify(row));
    // A non-admin account may not read it.
    const user = await runAdmin(['clusterAclConfigVersion', ...b, ...ns, `--accessKey=${USER.ak}`, `--secretKey=${USER.sk}`]);
    assert.equal(user.code, 1, user.out);
    const file = fs.readFileSync(path.join(on.dir, 'conf', 'plain_acl.yml'), 'utf8');
    for (const [args, code, name] of [
        [['updateAclConfig', '-a', 'newUser01', '-s', 'newSecret01'], 209, 'UPDATE_AND_CREATE_ACL_CONFIG'],
        [['deleteAclConfig', '-a', USER.ak], 210, 'DELETE_ACL_CONFIG'],
        [['updateGlobalWhiteAddr', '-g', '10.0.0.*'], 211, 'UPDATE_GLOBAL_WHITE_ADDRS_CONFIG'],
    ]) {
        const r = await runAdmin([...args, ...b, ...ns, ...admin]);
        assert.equal(r.code, 1, r.out);
        assert.match(r.out, new RegExp(`refused ${name}: ${code} .*does not change the ACL over the network; edit .*plain_acl\\.yml`));
    }
    assert.equal(fs.readFileSync(path.join(on.dir, 'conf', 'plain_acl.yml'), 'utf8'), file, 'nothing written');
    const offV = await runAdmin(['clusterAclConfigVersion', '-b', `127.0.0.1:${off.port}`, '-n', `127.0.0.1:${nsOff}`]);
    assert.equal(offV.code, 1, offV.out);
    assert.match(offV.out, /aclEnable=false: this broker has no ACL rules/);
});

async function until(pred, ms) {
    const end = Date.now() + ms;
    while (Date.now() < end) {
        if (await pred()) return;
        await new Promise((r) => setTimeout(r, 50));
    }
    assert.fail('condition not reached');
}

test('aclEnable=true without the file, or with an empty one, does not start', async () => {
    await assert.rejects(startApogee('standalone', ['--aclEnable=true'],
        { extraPorts: { namesrvListenPort: await freePort() }, startTimeoutMs: 3000 }),
    /plain_acl\.yml does not exist: aclEnable=true needs it/);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-acl-empty-'));
    writeAclFile(dir, '# nothing yet\n');
    await assert.rejects(startApogee('standalone', ['--aclEnable=true'],
        { dir, extraPorts: { namesrvListenPort: await freePort() }, startTimeoutMs: 3000 }),
    /plain_acl\.yml has no accounts and no globalWhiteRemoteAddresses/);
});
