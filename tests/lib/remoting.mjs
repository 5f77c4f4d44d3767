// Minimal RocketMQ remoting client for tests (node ESM, no npm deps).
//
//   encodeFrame({code, opaque, flag, ext, remark, version, language}, body, 'JSON'|'ROCKETMQ') -> Buffer
//   decodeFrame(buf) -> {code, opaque, flag, remark, ext, body, serialize, language, version}
//                       (buf = one whole frame starting at the length word)
//   class RemotingClient
//     static connect(port, host = '127.0.0.1') -> Promise<RemotingClient>
//     request(code, ext = {}, body = null, {serialize, timeoutMs, oneway}) -> Promise<response>
//     oneway(code, ext, body)
//     writeRaw(buf)                          send arbitrary bytes (garbage tests)
//     onRequest = (cmd) => {...}             server-initiated requests
//     closed -> Promise<void> resolves when the socket closes
//     close()
//   queueOffsets(client, group, topic, queues) -> [{committed, max}] per queue id
//
// Responses resolve by opaque, so many requests may be outstanding at once.
import { signExt } from './acl.mjs';
import net from 'node:net';

export const LANG = ['JAVA', 'CPP', 'DOTNET', 'PYTHON', 'DELPHI', 'ERLANG', 'RUBY', 'OTHER',
    'HTTP', 'GO', 'PHP', 'OMS', 'RUST', 'NODE_JS'];

export function encodeFrame(cmd, body = null, serialize = 'JSON') {
    const bodyBuf = body == null ? Buffer.alloc(0) : Buffer.isBuffer(body) ? body : Buffer.from(
        typeof body === 'string' ? body : JSON.stringify(body));
    let header;
    let type;
    if (serialize === 'ROCKETMQ') {
        type = 1;
        const remark = cmd.remark != null ? Buffer.from(cmd.remark) : Buffer.alloc(0);
        const parts = [];
        for (const [k, v] of Object.entries(cmd.ext ?? {})) {
            const kb = Buffer.from(k);
            const vb = Buffer.from(String(v));
            const h = Buffer.alloc(2);
            h.writeInt16BE(kb.length);
            const l = Buffer.alloc(4);
            l.writeInt32BE(vb.length);
            parts.push(h, kb, l, vb);
        }
        const ext = Buffer.concat(parts);
        const fixed = Buffer.alloc(17);
        fixed.writeInt16BE(cmd.code, 0);
        fixed.writeUInt8(cmd.language ?? 0, 2);
        fixed.writeInt16BE(cmd.version ?? 409, 3);
        fixed.writeInt32BE(cmd.opaque ?? 0, 5);
        fixed.writeInt32BE(cmd.flag ?? 0, 9);
        fixed.writeInt32BE(remark.length, 13);
        const extLen = Buffer.alloc(4);
        extLen.writeInt32BE(ext.length);
        header = Buffer.concat([fixed, remark, extLen, ext]);
    } else {
        type = 0;
        const h = {
            code: cmd.code,
            flag: cmd.flag ?? 0,
            language: typeof cmd.language === 'string' ? cmd.language : 'JAVA',
            opaque: cmd.opaque ?? 0,
            serializeTypeCurrentRPC: 'JSON',
            version: cmd.version ?? 409,
        };
        if (cmd.ext && Object.keys(cmd.ext).length) {
            h.extFields = Object.fromEntries(Object.entries(cmd.ext).map(([k, v]) => [k, String(v)]));
        }
        if (cmd.remark != null) h.remark = cmd.remark;
        header = Buffer.from(JSON.stringify(h));
    }
    const pre = Buffer.alloc(8);
    pre.writeInt32BE(4 + header.length + bodyBuf.length, 0);
    pre.writeInt32BE(((type << 24) | header.length) >>> 0, 4);
    return Buffer.concat([pre, header, bodyBuf]);
}

export function decodeFrame(buf) {
    const len = buf.readInt32BE(0);
    const word = buf.readUInt32BE(4);
    const type = word >>> 24;
    const hlen = word & 0xffffff;
    const header = buf.subarray(8, 8 + hlen);
    const body = len - 4 - hlen > 0 ? buf.subarray(8 + hlen, 4 + len) : null;
    if (type === 0) {
        const h = JSON.parse(header.toString('utf8'));
        return {
            code: h.code, opaque: h.opaque, flag: h.flag ?? 0, remark: h.remark ?? null,
            ext: h.extFields ?? {}, body, serialize: 'JSON', language: h.language, version: h.version,
        };
    }
    let p = 0;
    const code = header.readInt16BE(p); p += 2;
    const language = LANG[header.readUInt8(p)]; p += 1;
    const version = header.readInt16BE(p); p += 2;
    const opaque = header.readInt32BE(p); p += 4;
    const flag = header.readInt32BE(p); p += 4;
    const rl = header.readInt32BE(p); p += 4;
    const remark = rl > 0 ? header.subarray(p, p + rl).toString('utf8') : null; p += rl;
    const el = header.readInt32BE(p); p += 4;
    const end = p + el;
    const ext = {};
    while (p < end) {
        const kl = header.readInt16BE(p); p += 2;
        const k = header.subarray(p, p + kl).toString('utf8'); p += kl;
        const vl = header.readInt32BE(p); p += 4;
        ext[k] = header.subarray(p, p + vl).toString('utf8'); p += vl;
    }
    return { code, opaque, flag, remark, ext, body, serialize: 'ROCKETMQ', language, version };
}

export class RemotingClient {
    constructor(sock) {
        this.sock = sock;
        this.nextOpaque = 1;
        this.pending = new Map();
        this.buf = Buffer.alloc(0);
        this.onRequest = null;
        this.closed = new Promise((resolve) => sock.once('close', resolve));
        sock.on('data', (d) => this.#onData(d));
        sock.on('error', () => {});
        sock.once('close', () => {
            for (const [, p] of this.pending) p.reject(new Error('connection closed'));
            this.pending.clear();
        });
    }

    static connect(port, host = '127.0.0.1') {
        return new Promise((resolve, reject) => {
            const s = net.connect({ port, host });
            s.once('connect', () => {
                s.removeListener('error', reject);
                s.setNoDelay(true);
                resolve(new RemotingClient(s));
            });
            s.once('error', reject);
        });
    }

    #onData(d) {
        this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
        while (this.buf.length >= 4) {
            const len = this.buf.readInt32BE(0);
            if (this.buf.length < len + 4) break;
            const frame = this.buf.subarray(0, len + 4);
            this.buf = this.buf.subarray(len + 4);
            const cmd = decodeFrame(frame);
            if (cmd.flag & 1) {
                const p = this.pending.get(cmd.opaque);
                if (p) {
                    this.pending.delete(cmd.opaque);
                    clearTimeout(p.timer);
                    p.resolve(cmd);
                }
            } else if (this.onRequest) {
                this.onRequest(cmd);
            }
        }
    }

    request(code, ext = {}, body = null, opts = {}) {
        const opaque = this.nextOpaque++;
        const frame = encodeFrame({ code, opaque, ext, flag: opts.oneway ? 2 : 0 }, body,
            opts.serialize ?? 'JSON');
        if (opts.oneway) {
            this.sock.write(frame);
            return Promise.resolve(null);
        }
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
                this.pending.delete(opaque);
                reject(new Error(`request ${code} (opaque ${opaque}) timed out`));
            }, opts.timeoutMs ?? 5000);
            this.pending.set(opaque, { resolve, reject, timer });
            this.sock.write(frame);
        });
    }

    oneway(code, ext = {}, body = null, opts = {}) {
        return this.request(code, ext, body, { ...opts, oneway: true });
    }

    // Answers a server-initiated request.
    respond(req, code, ext = {}, body = null, remark = null) {
        this.sock.write(encodeFrame({ code, opaque: req.opaque, flag: 1, ext, remark }, body,
            req.serialize));
    }

    writeRaw(buf) {
        this.sock.write(buf);
    }

    close() {
        this.sock.destroy();
        return this.closed;
    }
}

// Parses a JSON body the way a lenient client would (fastjson-style numeric
// keys are quoted by Apogee, so plain JSON.parse must work).
export function jsonBody(resp) {
    if (!resp.body) return null;
    return JSON.parse(resp.body.toString('utf8'));
}

// Polls the NameServer at 127.0.0.1:nsPort until it serves a route for topic
// (by default TBW102, the auto-create template a broker registers shortly after its
// port opens). Throws after timeoutMs. With cred ({ak, sk}) the request is signed, as a
// NameServer with aclEnable=true asks.
export async function waitForRoute(nsPort, topic = 'TBW102', timeoutMs = 10000, cred = null) {
    const c = await RemotingClient.connect(nsPort);
    try {
        const deadline = Date.now() + timeoutMs;
        while (Date.now() < deadline) {
            const ext = cred ? signExt({ topic }, null, cred) : { topic };
            if ((await c.request(105, ext)).code === 0) return;
            await new Promise((res) => setTimeout(res, 50));
        }
        throw new Error(`no route for ${topic} within ${timeoutMs} ms`);
    } finally {
        c.close();
    }
}

// What the broker at `client` holds for queues 0..queues-1 of topic: the offset committed by
// group (QUERY_CONSUMER_OFFSET, 14; -1 when none is, QUERY_NOT_FOUND) and the queue's max
// offset (GET_MAX_OFFSET, 30), as [{committed, max}].
export async function queueOffsets(client, group, topic, queues) {
    const out = [];
    for (let q = 0; q < queues; q++) {
        const c = await client.request(14, {
            consumerGroup: group, topic, queueId: String(q), setZeroIfNotFound: 'false',
        });
        if (c.code !== 0 && c.code !== 22) throw new Error(`QUERY_CONSUMER_OFFSET: ${c.code} ${c.remark}`);
        const m = await client.request(30, { topic, queueId: String(q) });
        if (m.code !== 0) throw new Error(`GET_MAX_OFFSET: ${m.code} ${m.remark}`);
        out.push({ committed: c.code === 0 ? Number(c.ext.offset) : -1, max: Number(m.ext.offset) });
    }
    return out;
}
