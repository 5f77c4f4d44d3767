// Apache RocketMQ 4.9.8 mqadmin (tools/MQAdminStartup) against `apogee standalone`: the
// commands that work today, each with its output checked. The commands that fail, and
// how, are listed in docs/compat.md ("Apache RocketMQ 4.9.8 Java client and mqadmin
// against Apogee"). A Java producer and
// push consumer (tests/interop/java/RefLive.java) stay connected for the connection,
// status and progress commands. Skips (listed in tests/skips.txt) unless
// APOGEE_ROCKETMQ_REF names a build of scripts/rocketmq-ref.sh.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { javaSkip, mqadmin, spawnJava, startStandalone } from './java.mjs';

describe('mqadmin 4.9.8 against apogee standalone', { skip: javaSkip }, () => {
    let env;
    let live;
    let msgId;
    let queueId;
    let offsetMsgId;

    // Runs mqadmin and returns its stdout; a failed command (mqadmin exits 0 after printing
    // the exception) fails the test, except for exception lines matching allow.
    const mqAllowing = async (allow, ...args) => {
        const r = await mqadmin(env.ns, args);
        const all = `${r.out}\n${r.err}`;
        assert.equal(r.code, 0, all);
        for (const line of all.split('\n')) {
            if (/Exception|not exist/.test(line) && !(allow && allow.test(line))) assert.fail(all);
        }
        return r.out;
    };
    const mq = (...args) => mqAllowing(null, ...args);
    // Runs mqadmin for a command expected to fail and returns stdout and stderr together.
    const mqFails = async (...args) => {
        const r = await mqadmin(env.ns, args);
        assert.equal(r.code, 0, `${r.out}\n${r.err}`);
        return `${r.out}\n${r.err}`;
    };
    // Runs check on a command's output until it holds (a broker re-registers with the
    // NameServer on its service thread, so a route can lag an update by a moment).
    const eventually = async (check, ...args) => {
        let out = '';
        for (let i = 0; i < 10; i++) {
            out = await mqFails(...args);
            if (check(out)) return out;
            await new Promise((r) => setTimeout(r, 500));
        }
        assert.fail(`mqadmin ${args.join(' ')}:\n${out}`);
    };
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-mqadmin-'));

    before(async () => {
        env = await startStandalone();
        await mq('updateTopic', '-c', 'DefaultCluster', '-t', 'LiveTopic', '-r', '2', '-w', '2');
        live = spawnJava('RefLive', [env.ns, 'LiveTopic']);
        let out = '';
        let err = '';
        live.stderr.on('data', (d) => { err += d; });
        await new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`RefLive not ready\n${out}\n${err}`)), 60000);
            live.stdout.on('data', (d) => {
                out += d;
                if (out.includes('RESULT ready=true')) {
                    clearTimeout(timer);
                    resolve();
                }
            });
            live.on('close', (code) => reject(new Error(`RefLive exited ${code}\n${out}\n${err}`)));
        });
    });
    after(async () => {
        if (live) {
            const closed = new Promise((r) => live.on('close', r));
            live.stdin.end();
            const kill = setTimeout(() => live.kill('SIGKILL'), 30000); // a client stuck in shutdown
            await closed;
            clearTimeout(kill);
        }
        await env?.srv.stop();
        fs.rmSync(scratch, { recursive: true, force: true });
    });

    test('updateTopic creates a topic; topicRoute and topicClusterList show it', async () => {
        const out = await mq('updateTopic', '-c', 'DefaultCluster', '-t', 'MqaTopic', '-r', '3', '-w', '3');
        assert.match(out, new RegExp(`create topic to ${env.broker} success`));
        assert.match(out, /readQueueNums=3, writeQueueNums=3, perm=RW-/);
        const route = await mq('topicRoute', '-t', 'MqaTopic');
        assert.match(route, /"brokerName":"broker-a"/);
        assert.match(route, new RegExp(`0:"${env.broker}"`));
        assert.match(route, /"readQueueNums":3/);
        assert.match(route, /"perm":6/);
        assert.match(await mq('topicClusterList', '-t', 'MqaTopic'), /^DefaultCluster$/m);
    });

    test('sendMessage, then queryMsgByKey, queryMsgByUniqueKey, queryMsgByOffset, queryMsgById, printMsg', async () => {
        const sent = await mq('sendMessage', '-t', 'MqaTopic', '-p', 'hello-mqadmin', '-k', 'mqa-key', '-c', 'TG');
        const m = sent.match(/^broker-a\s+(\d)\s+SEND_OK\s+([0-9A-F]{32,})$/m);
        assert.ok(m, sent);
        [, queueId, msgId] = m;
        const byKey = await mq('queryMsgByKey', '-t', 'MqaTopic', '-k', 'mqa-key');
        assert.match(byKey, new RegExp(`^${msgId}\\s+${queueId}\\s+0$`, 'm'));
        // Each query prints the message, then its consumer track: no group consumes MqaTopic.
        const byUniq = await mq('queryMsgByUniqueKey', '-t', 'MqaTopic', '-i', msgId);
        assert.match(byUniq, /^Topic:\s+MqaTopic$/m);
        assert.match(byUniq, /^Tags:\s+\[TG\]$/m);
        assert.match(byUniq, /^Keys:\s+\[mqa-key\]$/m);
        assert.match(byUniq, new RegExp(`^Queue ID:\\s+${queueId}$`, 'm'));
        assert.match(byUniq, /^WARN: No Consumer$/m);
        const byOffset = await mq('queryMsgByOffset', '-t', 'MqaTopic', '-b', 'broker-a', '-i', queueId, '-o', '0');
        const o = byOffset.match(/^OffsetID:\s+([0-9A-F]{32})$/m);
        assert.ok(o, byOffset);
        offsetMsgId = o[1];
        assert.match(byOffset, /^Keys:\s+\[mqa-key\]$/m);
        assert.match(byOffset, /^WARN: No Consumer$/m);
        const byId = await mq('queryMsgById', '-i', offsetMsgId);
        assert.match(byId, new RegExp(`^OffsetID:\\s+${offsetMsgId}$`, 'm'));
        assert.match(byId, /^Topic:\s+MqaTopic$/m);
        assert.match(byId, /^Keys:\s+\[mqa-key\]$/m);
        assert.match(byId, /^WARN: No Consumer$/m);
        const printed = await mq('printMsg', '-t', 'MqaTopic');
        assert.match(printed, new RegExp(`MSGID: ${msgId} .*BODY: hello-mqadmin`));
    });

    test('topicList, topicList -c and topicStatus', async () => {
        const list = (await mq('topicList')).split('\n');
        assert.ok(list.includes('MqaTopic') && list.includes('LiveTopic'), list.join('\n'));
        assert.match(await mq('topicList', '-c'), /^DefaultCluster\s+MqaTopic\s*$/m);
        const status = await mq('topicStatus', '-t', 'MqaTopic');
        const rows = [...status.matchAll(/^broker-a\s+(\d)\s+(\d+)\s+(\d+)\s/gm)];
        assert.deepEqual(rows.map((r) => r[1]).sort(), ['0', '1', '2'], status);
        assert.equal(rows.reduce((s, r) => s + Number(r[3]), 0), 1, status);
    });

    test('clusterList lists the broker with its TPS columns, brokerStatus its runtime', async () => {
        const cl = await mq('clusterList');
        const tps = '\\d+\\.\\d\\d\\(\\d+,\\d+ms\\)';
        assert.match(cl, new RegExp(`^DefaultCluster\\s+broker-a\\s+0\\s+${env.broker}\\s+V4_9_8\\s+${tps}\\s+${tps}\\s+\\d+\\s+\\d+\\.\\d\\d\\s+\\d\\.\\d{4}$`, 'm'), cl);
        const st = await mq('brokerStatus', '-b', env.broker);
        assert.match(st, /^brokerVersionDesc\s+: V4_9_8$/m);
        assert.match(st, /^commitLogMaxOffset\s+: \d+$/m);
        assert.match(st, /^putTps\s+: /m);
    });

    test('updateTopicPerm, wipeWritePerm and addWritePerm', async () => {
        await mq('updateTopic', '-c', 'DefaultCluster', '-t', 'PermTopic', '-r', '1', '-w', '1');
        assert.match(await mq('updateTopicPerm', '-c', 'DefaultCluster', '-t', 'PermTopic', '-p', '4'),
            new RegExp(`update topic perm from 6 to 4 in ${env.broker} success`));
        assert.match(await mq('topicRoute', '-t', 'PermTopic'), /"perm":4/);
        assert.match(await mq('wipeWritePerm', '-b', 'broker-a'),
            new RegExp(`wipe write perm of broker\\[broker-a\\] in name server\\[${env.ns}\\] OK`));
        assert.match(await mq('addWritePerm', '-b', 'broker-a'),
            new RegExp(`add write perm of broker\\[broker-a\\] in name server\\[${env.ns}\\] OK`));
    });

    test('producerConnection, consumerConnection and consumerStatus see the live Java clients', async () => {
        assert.match(await mq('producerConnection', '-g', 'PG_JAVA_LIVE', '-t', 'LiveTopic'),
            /@live-p\s+127\.0\.0\.1:\d+\s+JAVA\s+V4_9_8/);
        const cc = await mq('consumerConnection', '-g', 'CG_JAVA_LIVE');
        assert.match(cc, /@live-c\s+127\.0\.0\.1:\d+\s+JAVA\s+V4_9_8/);
        assert.match(cc, /^LiveTopic\s+\*$/m);
        assert.match(cc, /^MessageModel: CLUSTERING$/m);
        const cs = await mq('consumerStatus', '-g', 'CG_JAVA_LIVE');
        assert.match(cs, /@live-c\s+V4_9_8/);
        assert.match(cs, /Same subscription in the same group of consumer/);
        assert.match(cs, /Rebalance OK/);
    });

    test('consumerProgress (one group and all), resetOffsetByTime, skipAccumulatedMessage, cloneGroupOffset', async () => {
        const p = await mq('consumerProgress', '-g', 'CG_JAVA_LIVE');
        const rows = [...p.matchAll(/^LiveTopic\s+broker-a\s+(\d)\s+(\d+)\s+(\d+)\s+(\d+)\s/gm)];
        assert.equal(rows.length, 2, p);
        assert.equal(rows.reduce((s, r) => s + Number(r[2]), 0), 1, 'one message in LiveTopic');
        assert.match(p, /^Diff Total: 0$/m);
        assert.match(await mq('consumerProgress'), /^CG_JAVA_LIVE\s+1\s+V4_9_8\s+PUSH\s+CLUSTERING\s/m);
        const reset = await mq('resetOffsetByTime', '-g', 'CG_JAVA_LIVE', '-t', 'LiveTopic', '-s', '0');
        assert.match(reset, /rollback consumer offset by specified group\[CG_JAVA_LIVE\], topic\[LiveTopic\]/);
        assert.equal([...reset.matchAll(/^broker-a\s+\d\s+0\s*$/gm)].length, 2, reset);
        const skip = await mq('skipAccumulatedMessage', '-g', 'CG_JAVA_LIVE', '-t', 'LiveTopic');
        const skipped = [...skip.matchAll(/^broker-a\s+\d\s+(\d+)\s*$/gm)];
        assert.equal(skipped.length, 2, skip);
        assert.equal(skipped.reduce((s, r) => s + Number(r[1]), 0), 1, `moved to the max offsets: ${skip}`);
        assert.match(await mq('cloneGroupOffset', '-s', 'CG_JAVA_LIVE', '-d', 'CG_CLONE', '-t', 'LiveTopic'),
            /clone group offset success\. srcGroup\[CG_JAVA_LIVE\], destGroup=\[CG_CLONE\]/);
    });

    test('updateSubGroup and getConsumerConfig', async () => {
        assert.match(await mq('updateSubGroup', '-c', 'DefaultCluster', '-g', 'CG_MQA', '-r', '5'),
            new RegExp(`create subscription group to ${env.broker} success`));
        const cfg = await mq('getConsumerConfig', '-g', 'CG_MQA');
        assert.match(cfg, /^groupName\s+=\s+CG_MQA$/m);
        assert.match(cfg, /^retryMaxTimes\s+=\s+5$/m);
    });

    test('updateKvConfig, deleteKvConfig and updateOrderConf (NameServer KV)', async () => {
        assert.match(await mq('updateKvConfig', '-s', 'ns1', '-k', 'k1', '-v', 'v1'),
            /create or update kv config to namespace success/);
        assert.match(await mq('deleteKvConfig', '-s', 'ns1', '-k', 'k1'), /delete kv config from namespace success/);
        assert.match(await mq('updateOrderConf', '-t', 'LiveTopic', '-m', 'put', '-v', 'broker-a:2'),
            /update orderConf success/);
        assert.match(await mq('updateOrderConf', '-t', 'LiveTopic', '-m', 'get'),
            /get orderConf success\. topic=\[LiveTopic\], orderConf=\[broker-a:2\]/);
    });

    test('sendMsgStatus and allocateMQ', async () => {
        const st = await mq('sendMsgStatus', '-b', 'broker-a', '-c', '2');
        assert.equal([...st.matchAll(/sendStatus=SEND_OK/g)].length, 2, st);
        const alloc = JSON.parse((await mq('allocateMQ', '-t', 'MqaTopic', '-i', 'c1,c2')).trim());
        assert.equal(alloc.result.c1.length + alloc.result.c2.length, 3);
    });

    test('deleteTopic and deleteSubGroup remove the broker config and the NameServer route', async () => {
        await mq('updateTopic', '-c', 'DefaultCluster', '-t', 'DelTopic', '-r', '1', '-w', '1');
        assert.match(await mq('topicRoute', '-t', 'DelTopic'), /"brokerName":"broker-a"/);
        const del = await mq('deleteTopic', '-c', 'DefaultCluster', '-t', 'DelTopic');
        assert.match(del, /^delete topic \[DelTopic\] from cluster \[DefaultCluster\] success\.$/m);
        assert.match(del, /^delete topic \[DelTopic\] from NameServer success\.$/m);
        assert.match(await mqFails('topicRoute', '-t', 'DelTopic'), /CODE: 17 .*No topic route info/);
        assert.ok(!(await mq('topicList')).split('\n').includes('DelTopic'));

        await mq('updateSubGroup', '-c', 'DefaultCluster', '-g', 'CG_DEL');
        const dg = await mq('deleteSubGroup', '-c', 'DefaultCluster', '-g', 'CG_DEL');
        assert.match(dg, new RegExp(`delete subscription group \\[CG_DEL\\] from broker \\[${env.broker}\\] in cluster \\[DefaultCluster\\] success`));
        assert.match(dg, /^delete topic \[%RETRY%CG_DEL\] from NameServer success\.$/m);
        assert.doesNotMatch(await mq('getConsumerConfig', '-g', 'CG_DEL'), /groupName/);
    });

    test('getBrokerConfig, updateBrokerConfig (allowed key live, path key refused), exportConfigs', async () => {
        const cfg = await mq('getBrokerConfig', '-b', env.broker);
        assert.match(cfg, /^brokerName\s+=\s+broker-a$/m);
        assert.match(cfg, /^brokerClusterName\s+=\s+DefaultCluster$/m);
        assert.match(cfg, /^brokerPermission\s+=\s+6$/m);

        // brokerPermission=4 (read only): the route has no writable queue, a send finds none.
        await mq('updateTopic', '-c', 'DefaultCluster', '-t', 'CfgTopic', '-r', '1', '-w', '1');
        assert.match(await mq('updateBrokerConfig', '-b', env.broker, '-k', 'brokerPermission', '-v', '4'),
            new RegExp(`update broker config success, ${env.broker}`));
        assert.match(await mq('getBrokerConfig', '-b', env.broker), /^brokerPermission\s+=\s+4$/m);
        await eventually((o) => /No route info of this topic: CfgTopic/.test(o),
            'sendMessage', '-t', 'CfgTopic', '-p', 'ro');
        await mq('updateBrokerConfig', '-c', 'DefaultCluster', '-k', 'brokerPermission', '-v', '6');
        await eventually((o) => /SEND_OK/.test(o), 'sendMessage', '-t', 'CfgTopic', '-p', 'rw');

        const refused = await mqFails('updateBrokerConfig', '-b', env.broker, '-k', 'storePathRootDir', '-v', scratch);
        assert.match(refused, /CODE: 16 .*'storePathRootDir' names a file, directory, command, class or server location/);
        assert.doesNotMatch(await mq('getBrokerConfig', '-b', env.broker), new RegExp(scratch));

        const dir = path.join(scratch, 'configs');
        assert.match(await mq('exportConfigs', '-c', 'DefaultCluster', '-f', dir), /success/);
        const exp = JSON.parse(fs.readFileSync(path.join(dir, 'configs.json'), 'utf8'));
        assert.deepEqual(exp.clusterScale, { namesrvSize: 1, masterBrokerSize: 1, slaveBrokerSize: 0 });
        const bc = exp.brokerConfigs['broker-a'];
        assert.equal(bc.brokerClusterName, 'DefaultCluster');
        assert.equal(bc.brokerRole, 'ASYNC_MASTER');
        assert.equal(bc.useTLS, 'false');
        assert.equal(bc.filterServerNums, '0');
    });

    test('getNamesrvConfig and updateNamesrvConfig (allowed key live, path key refused)', async () => {
        const cfg = await mq('getNamesrvConfig');
        assert.match(cfg, new RegExp(`^============${env.ns}============$`, 'm'));
        assert.match(cfg, /^enableAllTopicList\s+=\s+true$/m);
        assert.match(await mq('updateNamesrvConfig', '-k', 'enableAllTopicList', '-v', 'false'),
            /update name server config success/);
        assert.match(await mqFails('topicList'), /enableAllTopicList=false/);
        await mq('updateNamesrvConfig', '-k', 'enableAllTopicList', '-v', 'true');
        assert.ok((await mq('topicList')).split('\n').includes('MqaTopic'));
        assert.match(await mqFails('updateNamesrvConfig', '-k', 'kvConfigPath', '-v', path.join(scratch, 'kv')),
            /CODE: 16 .*'kvConfigPath' names a file, directory, command, class or server location/);
        assert.match(await mq('getNamesrvConfig'), /^kvConfigPath\s+=\s*$/m);
    });

    test('brokerConsumeStats, statsAll and queryCq', async () => {
        const bcs = await mq('brokerConsumeStats', '-b', env.broker);
        // A row for each queue with a message (LiveTopic has one), consumed up to its end.
        const rows = [...bcs.matchAll(/^LiveTopic\s+CG_JAVA_LIVE\s+broker-a\s+(\d)\s+(\d+)\s+(\d+)\s+(\d+)\s+\d{4}-/gm)];
        assert.deepEqual(rows.map((r) => r.slice(2).join('/')), ['1/1/0'], bcs);
        assert.match(bcs, /^Diff Total: 0$/m);
        const st = await mq('statsAll');
        assert.match(st, /^LiveTopic\s+CG_JAVA_LIVE\s+\d+\s+\d+\.\d\d\s+\d+\.\d\d\s+\d+\s+\d+$/m, st);
        assert.match(st, /^MqaTopic\s+\d+\s+\d+\.\d\d\s+\d+\s+NO_CONSUMER$/m, st);
        const cq = await mq('queryCq', '-t', 'MqaTopic', '-q', queueId, '-i', '0', '-c', '5');
        assert.match(cq, /^max: 1, min: 0$/m);
        assert.match(cq, /ConsumeQueueData\{physicOffset=\d+, physicSize=\d+, tagsCode=\d+/);
    });

    test('consumeMessage, and queryMsgById consumed directly by the live consumer', async () => {
        const cm = await mq('consumeMessage', '-t', 'LiveTopic');
        const m = cm.match(/^MSGID: [0-9A-F]+ MessageExt \[brokerName=broker-a, queueId=(\d).*msgId=([0-9A-F]{32}),.*BODY: live$/m);
        assert.ok(m, cm);
        const cc = await mq('consumerConnection', '-g', 'CG_JAVA_LIVE');
        const clientId = cc.match(/^(\S+@live-c)\s/m)[1];
        // CG_CLONE has offsets (cloneGroupOffset) but no retry topic, as it never connected:
        // its track is UNKNOWN with the route error, as RocketMQ answers too.
        const track = await mqAllowing(/consumerGroup=CG_CLONE, trackType=UNKNOWN, exceptionDesc=.*CODE: 17 /,
            'queryMsgById', '-i', m[2]);
        assert.match(track, /MessageTrack \[consumerGroup=CG_JAVA_LIVE, trackType=CONSUMED, exceptionDesc=null\]/);
        assert.match(track, /MessageTrack \[consumerGroup=CG_CLONE, trackType=UNKNOWN/);
        const direct = await mq('queryMsgById', '-i', m[2], '-g', 'CG_JAVA_LIVE', '-d', clientId);
        assert.match(direct, /ConsumeMessageDirectlyResult \[order=false, autoCommit=true, consumeResult=CR_SUCCESS/);
    });

    test('producer, cleanExpiredCQ, cleanUnusedTopic, deleteExpiredCommitLog; the ACL commands', async () => {
        const prod = await mq('producer', '-b', env.broker);
        assert.match(prod, /^producer group \(PG_JAVA_LIVE\) instance : clientId=\S+@live-p,remoteIP=\/127\.0\.0\.1:\d+, language=JAVA, version=\d+, lastUpdateTimestamp=\d{13}$/m);
        assert.match(await mq('cleanExpiredCQ', '-b', env.broker), /success/);
        assert.match(await mq('cleanUnusedTopic', '-b', env.broker), /success/);
        assert.match(await mq('deleteExpiredCommitLog', '-b', env.broker), /success/);
        // aclEnable=false here: the version query is refused naming the key, the updates
        // with RocketMQ's failure codes naming the file to write.
        assert.match(await mqFails('clusterAclConfigVersion', '-b', env.broker),
            /CODE: 1 .*aclEnable=false: this broker has no ACL rules/);
        assert.match(await mqFails('updateAclConfig', '-b', env.broker, '-a', 'newUser01', '-s', 'newSecret01'),
            /CODE: 209 .*does not change the ACL over the network/);
        assert.match(await mqFails('deleteAclConfig', '-b', env.broker, '-a', 'newUser01'),
            /CODE: 210 .*does not change the ACL over the network/);
        assert.match(await mqFails('updateGlobalWhiteAddr', '-b', env.broker, '-g', '10.0.0.*'),
            /CODE: 211 .*does not change the ACL over the network/);
    });

    test('exportMetadata: the user topics and groups, no system topics', async () => {
        const dir = path.join(scratch, 'meta');
        assert.match(await mq('exportMetadata', '-c', 'DefaultCluster', '-f', dir), /success/);
        const meta = JSON.parse(fs.readFileSync(path.join(dir, 'metadata.json'), 'utf8'));
        const topics = Object.keys(meta.topicConfigTable);
        for (const t of ['MqaTopic', 'LiveTopic']) assert.ok(topics.includes(t), topics.join());
        assert.equal(meta.topicConfigTable.MqaTopic.readQueueNums, 3);
        for (const t of topics) assert.doesNotMatch(t, /^(TBW102|SCHEDULE_TOPIC_XXXX|rmq_sys_|RMQ_SYS_|%RETRY%|broker-a$|DefaultCluster$)/);
        assert.equal(meta.subscriptionGroupTable.CG_MQA.retryMaxTimes, 5);
    });
});
