// The Apache RocketMQ 4.9.8 Java client against `apogee standalone`: orderly consumption
// with a consumer joining mid-run, transactions (commit, rollback, check-back), SQL92
// subscriptions, queries by key and message id, consumer progress and reset. The programs
// are tests/interop/java/Ref*.java; each reports what it saw and the assertions are here.
// Skips (listed in tests/skips.txt) unless APOGEE_ROCKETMQ_REF names a build of
// scripts/rocketmq-ref.sh.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { javaSkip, runJava, startStandalone } from './java.mjs';

describe('the Apache RocketMQ 4.9.8 Java client against apogee standalone', { skip: javaSkip }, () => {
    let env;
    before(async () => {
        env = await startStandalone(['--transactionTimeOut=1000', '--transactionCheckInterval=1000',
            '--enablePropertyFilter=true']);
    });
    after(async () => {
        await env?.srv.stop();
    });

    const run = async (cls) => {
        const r = await runJava(cls, [env.ns]);
        assert.equal(r.code, 0, `${cls} exited ${r.code}\n${r.out}\n${r.err}`);
        return r.result;
    };

    test('MessageListenerOrderly: per-order sequence kept, none lost, while a second consumer joins', async () => {
        const r = await run('RefOrderly');
        assert.equal(r.allDelivered, 'true', JSON.stringify(r));
        assert.equal(r.delivered, r.expected);
        assert.equal(r.expected, '480');
        assert.equal(r.orderBreaks, '0');
        assert.ok(Number(r.second) > 0, `the joining consumer got queues: ${JSON.stringify(r)}`);
        assert.ok(Number(r.first) > 0);
    });

    test('TransactionMQProducer: commit delivered, rollback never, UNKNOW committed on check-back', async () => {
        const r = await run('RefTxn');
        assert.equal(r['send.commit'], 'SEND_OK/COMMIT_MESSAGE');
        assert.equal(r['send.rollback'], 'SEND_OK/ROLLBACK_MESSAGE');
        assert.equal(r['send.check'], 'SEND_OK/UNKNOW');
        assert.ok(!r.deliveredBeforeCheck.includes('check/'), 'the open half is not delivered before its check');
        assert.equal(r.delivered, 'check/key-check,commit/key-commit');
        assert.equal(r.checkedBodies, 'check', 'only the open half is checked back');
        assert.equal(r.checkedTopic, 'JavaTxn', 'the check carries the real topic');
        assert.equal(r.checksAtLeastOne, 'true');
    });

    test('MessageSelector.bySql: only the matching messages are delivered', async () => {
        const r = await run('RefSql');
        assert.equal(r.delivered, 'm10,m12,m14,m16,m18');
    });

    test('queryMessage by key, queryMessageByUniqKey, viewMessage by msgId and offsetMsgId', async () => {
        const r = await run('RefQuery');
        assert.equal(r.byKey, 'q0,q1,q2');
        assert.equal(r.byMissingKey, 'code 208', 'the client reports no message (NO_MESSAGE) for an unknown key');
        assert.equal(r.byUniqKey, 'q5|order-105|Q');
        assert.equal(r.viewByMsgId, 'q5|order-105|Q');
        assert.equal(r.viewByOffsetMsgId, 'q5|order-105|Q');
        assert.equal(r.viewOffsetMsgIdMatches, 'true');
    });

    test('examineConsumeStats and resetOffsetByTimestamp: the online consumer reads again', async () => {
        const r = await run('RefProgress');
        assert.equal(r.consumed, '10');
        // queues / broker offsets / consumer offsets / total diff
        assert.equal(r.statsAfterConsume, '4/10/10/0');
        assert.equal(r.resetQueues, '4');
        assert.equal(r.resetOffsetSum, '0');
        assert.equal(r.consumedAfterReset, '20');
        assert.equal(r.statsAfterReset, '4/10/10/0');
    });
});
