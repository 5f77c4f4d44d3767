// The Apache RocketMQ 4.9.8 Java client and mqadmin against `apogee standalone
// --aclEnable=true` with a plain_acl.yml this test writes: a producer and a push consumer
// signing with AclClientRPCHook(SessionCredentials) send and receive
// (tests/interop/java/RefAcl.java); a wrong secret and a topic the account may not publish
// to are refused with NO_PERMISSION (16); mqadmin signing with an admin account from
// ${ROCKETMQ_HOME}/conf/tools.yml creates a topic, with a non-admin account or none it is
// refused. Skips (listed in tests/skips.txt) unless APOGEE_ROCKETMQ_REF names a build of
// scripts/rocketmq-ref.sh.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { javaSkip, mqadmin, runJava, startStandalone, toolsHome } from './java.mjs';
import { writeAclFile } from '../lib/acl.mjs';

const USER = { ak: 'javaUser01', sk: 'javaSecret01' };
const ADMIN = { ak: 'javaAdmin01', sk: 'javaAdminSecret01' };
const TOPIC = 'JavaAclTopic';
const DENIED = 'JavaAclDenied';

describe('the Java client and mqadmin 4.9.8 with ACL against apogee standalone', { skip: javaSkip }, () => {
    let env;
    let dir;
    let adminHome;
    let userHome;

    before(async () => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-java-acl-'));
        const aclFile = writeAclFile(dir, `accounts:
  - accessKey: ${USER.ak}
    secretKey: ${USER.sk}
    defaultTopicPerm: DENY
    defaultGroupPerm: DENY
    topicPerms: [${TOPIC}=PUB|SUB, ${DENIED}=SUB]
    groupPerms: [CG_JAVA_ACL=SUB]
  - accessKey: ${ADMIN.ak}
    secretKey: ${ADMIN.sk}
    admin: true
`);
        adminHome = toolsHome(path.join(dir, 'admin-home'), ADMIN);
        userHome = toolsHome(path.join(dir, 'user-home'), USER);
        // No innerClientAuthenticationCredentials: standalone's broker registers with its own
        // NameServer by itself, which checks signatures too.
        env = await startStandalone(['--aclEnable=true', `--aclFile=${aclFile}`]);
    });
    after(async () => {
        await env?.srv.stop();
        if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    const admin = async (home, ...args) => {
        const r = await mqadmin(env.ns, args, 60000, home);
        assert.equal(r.code, 0, `${r.out}\n${r.err}`);
        return `${r.out}\n${r.err}`;
    };

    test('mqadmin updateTopic: an admin account in tools.yml creates, a user account or none is refused', async () => {
        for (const t of [TOPIC, DENIED]) {
            const out = await admin(adminHome, 'updateTopic', '-c', 'DefaultCluster', '-t', t, '-r', '2', '-w', '2');
            assert.match(out, new RegExp(`create topic to ${env.broker} success`), out);
        }
        const asUser = await admin(userHome, 'updateTopic', '-c', 'DefaultCluster', '-t', 'JavaAclByUser');
        assert.match(asUser, /CODE: 16 /, asUser);
        const unsigned = await admin(undefined, 'updateTopic', '-c', 'DefaultCluster', '-t', 'JavaAclByUser');
        assert.match(unsigned, /CODE: 16 /, unsigned);
        assert.match(await admin(adminHome, 'topicRoute', '-t', 'JavaAclByUser'), /CODE: 17 /);
        // The NameServer does not check signatures: reads work with any account.
        assert.match(await admin(userHome, 'topicRoute', '-t', TOPIC), /"brokerName":"broker-a"/);
    });

    test('mqadmin clusterAclConfigVersion: the file and its version for an admin account', async () => {
        const out = await admin(adminHome, 'clusterAclConfigVersion', '-c', 'DefaultCluster');
        assert.match(out, /get cluster's plain access config version success/, out);
        assert.match(out, new RegExp(`DefaultCluster\\s+broker-a\\s+${env.broker.replace(/\./g, '\\.')}\\s+\\S*plain_acl\\.yml\\s+0\\s+\\d{4}-`), out);
        assert.match(await admin(userHome, 'clusterAclConfigVersion', '-c', 'DefaultCluster'), /CODE: 16 /);
    });

    test('AclClientRPCHook producer and push consumer send and receive; a wrong secret and a denied topic are refused', async () => {
        const r = await runJava('RefAcl', [env.ns, TOPIC, 'CG_JAVA_ACL', USER.ak, USER.sk, DENIED]);
        assert.equal(r.code, 0, `RefAcl exited ${r.code}\n${r.out}\n${r.err}`);
        assert.equal(r.result.sent, '20', JSON.stringify(r.result));
        assert.equal(r.result.received, '20');
        assert.match(r.result.deniedTopic, new RegExp(`^code 16: .*'${USER.ak}' has no PUB permission on topic '${DENIED}'`));
        // A wrong secret is refused where the client first signs: the NameServer's route
        // lookup (the Java client then reports no route), else the broker (code 16).
        assert.match(r.result.wrongSecret, new RegExp(`^(code 16: .*signature check failed for accessKey '${USER.ak}'|client 10005: No route info of this topic)`));
        assert.ok(!r.result.wrongSecret.includes(USER.sk), 'the remark names no secret');
        await env.srv.waitOutput(new RegExp(`signature check failed for accessKey '${USER.ak}'`), 5000);
    });
});
