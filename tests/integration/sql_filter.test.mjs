// SQL92 subscriptions filtered by the broker itself, seen on the wire with no client in
// between (a client that filtered again would hide a broker that does not). Messages with
// properties a (a number, absent from some) and color go in with SEND_MESSAGE_V2; pulls whose
// subscription is SQL92 - in the request (sysFlag FLAG_SUBSCRIPTION) or from the group's
// heartbeat - must answer exactly the records whose properties match, decoded from the body.
// CHECK_CLIENT_CONFIG refuses an expression that does not compile with the position of the
// error, and a broker with enablePropertyFilter=false (RocketMQ's default) refuses SQL92
// subscriptions with RocketMQ's remark.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { freePort, startApogee } from '../lib/proc.mjs';
import { decodeRecords } from '../lib/records.mjs';
import { RemotingClient } from '../lib/remoting.mjs';

const SEND_V2 = 310;
const PULL = 11;
const HEART_BEAT = 34;
const CHECK_CLIENT_CONFIG = 46;
const SUCCESS = 0;
const SYSTEM_ERROR = 1;
const SUBSCRIPTION_PARSE_FAILED = 23;
const PULL_RETRY_IMMEDIATELY = 20;
const FLAG_SUBSCRIPTION = 4;
const TOPIC = 'SQL_T';

function sendHdr(props) {
    const p = Object.entries(props).map(([k, v]) => `${k}\u0001${v}\u0002`).join('');
    return {
        a: 'PG_SQL', b: TOPIC, c: 'TBW102', d: '1', e: '0', f: '0',
        g: String(Date.now()), h: '0', i: p, j: '0', k: 'false',
    };
}

function pullHdr(group, subscription, type, withSub = true) {
    const h = {
        consumerGroup: group, topic: TOPIC, queueId: '0', queueOffset: '0', maxMsgNums: '32',
        sysFlag: String(withSub ? FLAG_SUBSCRIPTION : 0), commitOffset: '0',
        suspendTimeoutMillis: '0', subVersion: '0', expressionType: type,
    };
    if (withSub) h.subscription = subscription;
    return h;
}

// Bodies of the stored records of a pull answer.
function bodies(buf) {
    return decodeRecords(buf).map((r) => r.body);
}

function checkBody(expr, type = 'SQL92') {
    return Buffer.from(JSON.stringify({
        clientId: 'sql-test', group: 'CG_SQL',
        subscriptionData: { topic: TOPIC, subString: expr, expressionType: type, classFilterMode: false, tagsSet: [], codeSet: [], subVersion: 1 },
    }));
}

// Message i: a = i except every fifth has none; color red for even i, blue for odd.
const N = 20;
function props(i) {
    const p = { TAGS: 'T', color: i % 2 ? 'blue' : 'red' };
    if (i % 5 !== 4) p.a = String(i);
    return p;
}
function expected(pred) {
    const out = [];
    for (let i = 0; i < N; i++) if (pred(props(i))) out.push(`m${i}`);
    return out;
}

async function sendAll(cl) {
    for (let i = 0; i < N; i++) {
        const r = await cl.request(SEND_V2, sendHdr(props(i)), Buffer.from(`m${i}`));
        assert.equal(r.code, SUCCESS, r.remark);
    }
}

describe('the broker filters SQL92 subscriptions itself', () => {
    let srv;
    let cl;
    before(async () => {
        const nsPort = await freePort();
        srv = await startApogee('standalone', ['--enablePropertyFilter=true'], { extraPorts: { namesrvListenPort: nsPort } });
        cl = await RemotingClient.connect(srv.port);
        await sendAll(cl);
    });
    after(async () => {
        await cl?.close();
        await srv?.stop();
    });

    const cases = [
        ["a > 5 AND color = 'red'", (p) => p.a !== undefined && Number(p.a) > 5 && p.color === 'red'],
        ['a BETWEEN 3 AND 8', (p) => p.a !== undefined && Number(p.a) >= 3 && Number(p.a) <= 8],
        ["color IN ('blue') OR a IS NULL", (p) => p.color === 'blue' || p.a === undefined],
        ['a IS NULL', (p) => p.a === undefined],
        ["NOT (color = 'red') AND a < 10", (p) => p.color !== 'red' && p.a !== undefined && Number(p.a) < 10],
        ["a <> '3'", (p) => p.a !== undefined && p.a !== '3'],
    ];
    for (const [expr, pred] of cases) {
        test(`pull with subscription "${expr}" answers exactly the matching records`, async () => {
            const r = await cl.request(PULL, pullHdr('CG_SQL', expr, 'SQL92'));
            assert.equal(r.code, SUCCESS, r.remark);
            assert.deepEqual(bodies(r.body), expected(pred));
            assert.equal(r.ext.nextBeginOffset, String(N));
        });
    }

    test('a subscription nothing matches moves past the scanned records', async () => {
        const r = await cl.request(PULL, pullHdr('CG_SQL', "color = 'green'", 'SQL92'));
        assert.equal(r.code, PULL_RETRY_IMMEDIATELY, r.remark);
        assert.equal(r.ext.nextBeginOffset, String(N));
    });

    test('a pull without a subscription uses the SQL92 one from the heartbeat', async () => {
        const expr = "a >= 10 AND color = 'blue'";
        const hb = {
            clientID: 'sql-hb', consumerDataSet: [{
                groupName: 'CG_SQL_HB', consumeType: 'CONSUME_PASSIVELY', messageModel: 'CLUSTERING',
                consumeFromWhere: 'CONSUME_FROM_FIRST_OFFSET', unitMode: false,
                subscriptionDataSet: [{ topic: TOPIC, subString: expr, expressionType: 'SQL92', classFilterMode: false, tagsSet: [], codeSet: [], subVersion: 1 }],
            }], producerDataSet: [],
        };
        let r = await cl.request(HEART_BEAT, {}, Buffer.from(JSON.stringify(hb)));
        assert.equal(r.code, SUCCESS, r.remark);
        r = await cl.request(PULL, pullHdr('CG_SQL_HB', null, 'SQL92', false));
        assert.equal(r.code, SUCCESS, r.remark);
        assert.deepEqual(bodies(r.body), expected((p) => p.a !== undefined && Number(p.a) >= 10 && p.color === 'blue'));
    });

    test('CHECK_CLIENT_CONFIG accepts a valid SQL92 or TAG subscription', async () => {
        for (const [expr, type] of [["a > 5 AND b = 'x'", 'SQL92'], ['*', 'TAG'], ['*', null]]) {
            const r = await cl.request(CHECK_CLIENT_CONFIG, {}, checkBody(expr, type));
            assert.equal(r.code, SUCCESS, `${expr}: ${r.remark}`);
        }
    });

    test('CHECK_CLIENT_CONFIG refuses an expression that does not compile, with the position', async () => {
        let r = await cl.request(CHECK_CLIENT_CONFIG, {}, checkBody('a > 5 AND'));
        assert.equal(r.code, SUBSCRIPTION_PARSE_FAILED);
        assert.match(r.remark, /position 10: expected a value/);
        r = await cl.request(CHECK_CLIENT_CONFIG, {}, checkBody('a BETWEEN 9 AND 1'));
        assert.equal(r.code, SUBSCRIPTION_PARSE_FAILED);
        assert.match(r.remark, /position 3: BETWEEN/);
    });

    test('a pull with a SQL92 subscription that does not compile is refused', async () => {
        const r = await cl.request(PULL, pullHdr('CG_SQL', "a = 'x", 'SQL92'));
        assert.equal(r.code, SUBSCRIPTION_PARSE_FAILED);
        assert.match(r.remark, /position 5/);
    });

    test('TAG pulls are unchanged', async () => {
        const r = await cl.request(PULL, pullHdr('CG_SQL', 'T', 'TAG'));
        assert.equal(r.code, SUCCESS, r.remark);
        assert.equal(bodies(r.body).length, N);
    });
});

describe('enablePropertyFilter=false (the default) refuses SQL92', () => {
    let srv;
    let cl;
    before(async () => {
        const nsPort = await freePort();
        srv = await startApogee('standalone', [], { extraPorts: { namesrvListenPort: nsPort } });
        cl = await RemotingClient.connect(srv.port);
        await sendAll(cl);
    });
    after(async () => {
        await cl?.close();
        await srv?.stop();
    });

    test('CHECK_CLIENT_CONFIG and PULL answer SYSTEM_ERROR with RocketMQ\'s remark', async () => {
        let r = await cl.request(CHECK_CLIENT_CONFIG, {}, checkBody('a > 5'));
        assert.equal(r.code, SYSTEM_ERROR);
        assert.match(r.remark, /^The broker does not support consumer to filter message by SQL92/);
        assert.match(r.remark, /enablePropertyFilter=true/);
        r = await cl.request(PULL, pullHdr('CG_SQL', 'a > 5', 'SQL92'));
        assert.equal(r.code, SYSTEM_ERROR);
        assert.match(r.remark, /^The broker does not support consumer to filter message by SQL92/);
        r = await cl.request(CHECK_CLIENT_CONFIG, {}, checkBody('*', 'TAG'));
        assert.equal(r.code, SUCCESS);
    });
});
