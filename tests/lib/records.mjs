// Stored message records as a pull answer carries them (docs/wire.md §9.2), decoded for
// tests: queue offset, physical offset, store timestamp, reconsume count, body and the
// properties map. Handles IPv4 and IPv6 born/store hosts (sysflag bits 0x10 / 0x20).
export function decodeRecords(buf) {
    const out = [];
    for (let p = 0; buf && p < buf.length;) {
        const total = buf.readInt32BE(p);
        if (total <= 0 || p + total > buf.length) throw new Error(`record at ${p} has size ${total}`);
        const queueId = buf.readInt32BE(p + 12);
        const queueOffset = Number(buf.readBigInt64BE(p + 20));
        const physOffset = Number(buf.readBigInt64BE(p + 28));
        const sysflag = buf.readInt32BE(p + 36);
        let q = p + 40;
        const bornTs = Number(buf.readBigInt64BE(q)); q += 8;
        q += sysflag & 0x10 ? 20 : 8;
        const storeTs = Number(buf.readBigInt64BE(q)); q += 8;
        q += sysflag & 0x20 ? 20 : 8;
        const reconsumeTimes = buf.readInt32BE(q); q += 4 + 8;
        const blen = buf.readInt32BE(q); q += 4;
        const body = buf.subarray(q, q + blen).toString(); q += blen;
        const tlen = buf.readUInt8(q); q += 1;
        const topic = buf.subarray(q, q + tlen).toString(); q += tlen;
        const plen = buf.readInt16BE(q); q += 2;
        const props = {};
        for (const kv of buf.subarray(q, q + plen).toString().split('\u0002')) {
            if (!kv) continue;
            const [k, v] = kv.split('\u0001');
            props[k] = v;
        }
        out.push({ topic, queueId, queueOffset, physOffset, bornTs, storeTs, reconsumeTimes, body, props });
        p += total;
    }
    return out;
}

// A property string (name \x01 value \x02 ...) from an object.
export function propsString(o) {
    return Object.entries(o).map(([k, v]) => `${k}\u0001${v}\u0002`).join('');
}

// Every record of (topic, queueId) from offset 0, pulled with raw PULL_MESSAGE requests on
// a RemotingClient (an empty list when the pull is refused).
export async function pullAll(cl, topic, queueId, subscription = '*', group = 'CG_TEST_PULL') {
    const out = [];
    for (;;) {
        const r = await cl.request(11, {
            consumerGroup: group, topic, queueId: String(queueId),
            queueOffset: String(out.length ? out.at(-1).queueOffset + 1 : 0), maxMsgNums: '32',
            sysFlag: '4', commitOffset: '0', suspendTimeoutMillis: '0', subscription,
            subVersion: '0', expressionType: 'TAG',
        });
        if (r.code !== 0) return out;
        const recs = decodeRecords(r.body);
        if (!recs.length) return out;
        out.push(...recs);
    }
}
