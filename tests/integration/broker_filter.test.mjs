// The broker's own tag filter, seen on the wire with no client in between (the C and Java
// clients filter again on their side, so a broker that returned every tag would pass every
// client-level test). Messages tagged A and B go in with SEND_MESSAGE_V2; PULL_MESSAGE with a
// subscription in the request (sysFlag FLAG_SUBSCRIPTION) must answer only records whose
// stored TAGS property matches, decoded from the pull body.
//
// A pull that scans a range and matches nothing answers PULL_RETRY_IMMEDIATELY
// (NO_MATCHED_MESSAGE) with nextBeginOffset past every entry it scanned, as RocketMQ's
// DefaultMessageStore.getMessage does (offset + entries scanned, at most 800 entries for a
// small maxMsgNums): a consumer behind a run of non-matching messages moves on instead of
// asking for the same range forever.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { freePort, startApogee } from '../lib/proc.mjs';
import { decodeRecords } from '../lib/records.mjs';
import { RemotingClient } from '../lib/remoting.mjs';

const SEND_V2 = 310;
const PULL = 11;
const SUCCESS = 0;
const PULL_RETRY_IMMEDIATELY = 20;
const FLAG_SUBSCRIPTION = 4;

function sendHdr(topic, queueId, tag) {
    return {
        a: 'PG_FILTER', b: topic, c: 'TBW102', d: '1', e: String(queueId), f: '0',
        g: String(Date.now()), h: '0', i: `TAGS\u0001${tag}\u0002`, j: '0', k: 'false',
    };
}

function pullHdr(topic, offset, max, subscription) {
    return {
        consumerGroup: 'CG_FILTER', topic, queueId: '0', queueOffset: String(offset),
        maxMsgNums: String(max), sysFlag: String(FLAG_SUBSCRIPTION), commitOffset: '0',
        suspendTimeoutMillis: '0', subscription, subVersion: '0', expressionType: 'TAG',
    };
}

describe('the broker filters pulls by tag itself', () => {
    let srv;
    let cl;
    before(async () => {
        const nsPort = await freePort();
        srv = await startApogee('standalone', [], { extraPorts: { namesrvListenPort: nsPort } });
        cl = await RemotingClient.connect(srv.port);
        const send = async (topic, tag, body) => {
            const r = await cl.request(SEND_V2, sendHdr(topic, 0, tag), Buffer.from(body));
            assert.equal(r.code, SUCCESS, r.remark);
        };
        // MIX: A B A B ... (10); RUN: 1000 B then one A.
        for (let i = 0; i < 10; i++) await send('MIX', i % 2 ? 'B' : 'A', `mix${i}`);
        const runs = [];
        for (let i = 0; i < 1000; i++) {
            runs.push(cl.request(SEND_V2, sendHdr('RUN', 0, 'B'), Buffer.from(`b${i}`)));
        }
        for (const r of await Promise.all(runs)) assert.equal(r.code, SUCCESS, r.remark);
        await send('RUN', 'A', 'last');
    });
    after(async () => {
        await cl?.close();
        await srv?.stop();
    });

    for (const tag of ['A', 'B']) {
        test(`subscription '${tag}' answers only records tagged ${tag}`, async () => {
            const r = await cl.request(PULL, pullHdr('MIX', 0, 32, tag));
            assert.equal(r.code, SUCCESS, r.remark);
            const recs = decodeRecords(r.body);
            assert.deepEqual(recs.map((x) => x.props.TAGS), Array(5).fill(tag));
            const first = tag === 'A' ? 0 : 1;
            assert.deepEqual(recs.map((x) => x.body), [0, 2, 4, 6, 8].map((i) => `mix${i + first}`));
            assert.deepEqual(recs.map((x) => x.queueOffset), [0, 2, 4, 6, 8].map((i) => i + first));
            assert.equal(r.ext.nextBeginOffset, '10');
        });
    }

    test("subscription 'A || B' and '*' answer every record", async () => {
        for (const sub of ['A || B', '*']) {
            const r = await cl.request(PULL, pullHdr('MIX', 0, 32, sub));
            assert.equal(r.code, SUCCESS, r.remark);
            assert.equal(decodeRecords(r.body).length, 10, sub);
        }
    });

    test('a range with no match moves nextBeginOffset past every entry scanned', async () => {
        // Offsets 1..9 of MIX hold B at odd offsets; from 9 (a B) to the end nothing is A.
        let r = await cl.request(PULL, pullHdr('MIX', 9, 32, 'A'));
        assert.equal(r.code, PULL_RETRY_IMMEDIATELY, r.remark);
        assert.equal(r.ext.nextBeginOffset, '10');
        r = await cl.request(PULL, pullHdr('MIX', 0, 32, 'C'));
        assert.equal(r.code, PULL_RETRY_IMMEDIATELY, r.remark);
        assert.equal(r.ext.nextBeginOffset, '10');
    });

    test('a consumer behind 1,000 non-matching messages reaches the match', async () => {
        let offset = 0;
        const seen = [];
        for (let k = 0; k < 10; k++) {
            const r = await cl.request(PULL, pullHdr('RUN', offset, 32, 'A'));
            const next = Number(r.ext.nextBeginOffset);
            if (r.code === SUCCESS) {
                seen.push(...decodeRecords(r.body));
                offset = next;
                break;
            }
            assert.equal(r.code, PULL_RETRY_IMMEDIATELY, r.remark);
            assert.ok(next > offset, `nextBeginOffset ${next} does not pass ${offset}`);
            assert.ok(next <= 1001);
            offset = next;
        }
        assert.deepEqual(seen.map((x) => [x.body, x.props.TAGS, x.queueOffset]), [['last', 'A', 1000]]);
        assert.equal(offset, 1001);
    });
});
