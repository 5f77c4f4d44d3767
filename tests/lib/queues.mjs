// Raw-protocol helpers for suites that look at queues on the broker itself: the max
// offset of a queue, every record of a queue (PULL_MESSAGE from offset 0), and a poll.
import assert from 'node:assert/strict';
import { decodeRecords } from './records.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function pullHdr(topic, queueId, offset, subscription = '*', group = 'CG_QUEUE_READER') {
    return {
        consumerGroup: group, topic, queueId: String(queueId), queueOffset: String(offset),
        maxMsgNums: '32', sysFlag: '4', commitOffset: '0', suspendTimeoutMillis: '0',
        subscription, subVersion: '0', expressionType: 'TAG',
    };
}

// GET_MAX_OFFSET (30).
export async function maxOffset(cl, topic, queueId) {
    const r = await cl.request(30, { topic, queueId: String(queueId) });
    assert.equal(r.code, 0, r.remark);
    return Number(r.ext.offset);
}

// Every record of (topic, queueId) from offset 0, decoded.
export async function readAll(cl, topic, queueId, subscription = '*') {
    const out = [];
    for (;;) {
        const r = await cl.request(11, pullHdr(topic, queueId, out.length ? out.at(-1).queueOffset + 1 : 0, subscription));
        if (r.code !== 0) return out;
        const recs = decodeRecords(r.body);
        if (!recs.length) return out;
        out.push(...recs);
    }
}

// Polls pred every 20 ms until it holds; fails the test after ms.
export async function until(pred, ms, what) {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
        if (await pred()) return;
        await sleep(20);
    }
    assert.fail(`timed out waiting for ${what}`);
}
