// Interop (ali-ons 3.12.0): transactional messages, as far as ali-ons goes.
//
// ali-ons has no transactional producer (no local-transaction callback, no
// END_TRANSACTION, no check listener): it only marks a message whose TRAN_MSG property is
// set with the prepared transaction type. So its producer sends the half, the verdict is
// sent as a raw END_TRANSACTION (what a Java producer sends), and ali-ons's consumer
// checks what is delivered: nothing before the commit, the committed message once with its
// tag, keys and properties, the rolled back one never. Transactions end to end (local
// transaction and check-back) are tested with the C client
// (tests/integration/client_txn.test.mjs) and on raw remoting (broker_txn.test.mjs).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { onsHarness, ons, until, sleep } from './ons.mjs';

const h = onsHarness();

before(async () => {
    await h.start(['--transactionTimeOut=60000']);
});

after(async () => {
    try {
        await h.stop();
    } finally {
        // ali-ons keeps timers alive; exit with the runner's verdict.
        setImmediate(() => process.exit());
    }
});

test('an ali-ons half message is delivered to an ali-ons consumer only once committed, once', async () => {
    const topic = 'OnsTxTopic';
    const group = 'PG_ONS_TX';
    await h.createTopic(topic, 4);
    const p = await h.newProducer(group, { instanceName: 'p-tx' });
    const got = [];
    h.newConsumer('CG_ONS_TX', 'tx-1').subscribe(topic, '*', async (msg) => {
        got.push(msg);
    });
    await sleep(1500); // rebalanced
    const sent = {};
    for (const body of ['commit-me', 'roll-me-back']) {
        const m = new ons.Message(topic, 'TX', Buffer.from(body));
        m.keys = [`k-${body}`];
        m.properties.color = 'green';
        m.properties.TRAN_MSG = 'true';
        m.properties.PGROUP = group;
        const r = await p.send(m);
        assert.equal(r.sendStatus, 'SEND_OK');
        sent[body] = r;
    }
    await sleep(1500);
    assert.equal(got.length, 0, 'half messages are not delivered');
    const end = (r, verdict) => h.admin.request(37, {
        producerGroup: group, tranStateTableOffset: String(r.queueOffset),
        commitLogOffset: String(BigInt(`0x${r.msgId.slice(-16)}`)), commitOrRollback: String(verdict),
        fromTransactionCheck: 'false', msgId: '', transactionId: '',
    });
    let e = await end(sent['commit-me'], 8);
    assert.equal(e.code, 0, e.remark);
    e = await end(sent['roll-me-back'], 12);
    assert.equal(e.code, 0, e.remark);
    assert.equal((await end(sent['commit-me'], 8)).code, 0, 'a repeated commit is accepted');
    await until(() => got.length === 1, 10000, 'the committed message');
    await sleep(1500);
    assert.equal(got.length, 1, 'delivered once; the rolled back message never');
    const [msg] = got;
    assert.equal(msg.body.toString(), 'commit-me');
    assert.equal(msg.topic, topic);
    assert.equal(msg.tags, 'TX');
    assert.equal(msg.keys, 'k-commit-me');
    assert.equal(msg.properties.color, 'green');
});
