// OpenTelemetry metrics push (metricsExporterType=OTLP_GRPC / otlp): a node HTTP server plays
// the collector, reads each POST /v1/metrics as an OTLP ExportMetricsServiceRequest in the
// protobuf JSON mapping, and checks the metric names, kinds, attributes (labels, metricsLabel),
// the configured headers, and that counters grow with traffic sent and pulled meanwhile. Also:
// a collector that never answers does not slow sends, and bad settings stop the start with an
// error naming the key.
//
//   APOGEE_BIN=$PWD/build/apogee node --test tests/integration/otlp.test.mjs
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { freePort, runSub, startApogee } from '../lib/proc.mjs';
import { RemotingClient } from '../lib/remoting.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A collector: every request is kept as {path, headers, body (parsed JSON)}.
async function collector(status = 200) {
    const got = [];
    const srv = http.createServer((req, res) => {
        const parts = [];
        req.on('data', (d) => parts.push(d));
        req.on('end', () => {
            const text = Buffer.concat(parts).toString();
            let body = null;
            try {
                body = JSON.parse(text);
            } catch {
                body = { unparsable: text.slice(0, 200) };
            }
            got.push({ path: req.url, method: req.method, headers: req.headers, body });
            res.writeHead(status, { 'Content-Type': 'application/json' });
            res.end('{}');
        });
    });
    const port = await freePort();
    await new Promise((r) => srv.listen(port, '127.0.0.1', r));
    return { port, got, close: () => new Promise((r) => srv.close(r)) };
}

async function until(pred, ms, what) {
    const end = Date.now() + ms;
    for (;;) {
        const v = await pred();
        if (v) return v;
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await sleep(50);
    }
}

// The metrics of one export: name -> metric.
function metricsOf(req) {
    const rm = req.body.resourceMetrics;
    assert.equal(rm.length, 1);
    const attrs = Object.fromEntries(rm[0].resource.attributes.map((a) => [a.key, a.value.stringValue]));
    assert.equal(attrs['service.name'], 'apogee');
    const sm = rm[0].scopeMetrics;
    assert.equal(sm.length, 1);
    assert.equal(sm[0].scope.name, 'apogee');
    return new Map(sm[0].metrics.map((m) => [m.name, m]));
}

const attrsOf = (dp) => Object.fromEntries(dp.attributes.map((a) => [a.key, a.value.stringValue]));

function point(metrics, name, match) {
    const m = metrics.get(name);
    if (!m) return undefined;
    const kind = m.sum ?? m.gauge ?? m.histogram;
    return kind.dataPoints.find((dp) => {
        const a = attrsOf(dp);
        return Object.entries(match).every(([k, v]) => a[k] === v);
    });
}

function send(br, topic, body, queueId = 0) {
    return br.request(310, {
        a: 'PG_OTLP', b: topic, c: 'TBW102', d: '4', e: String(queueId), f: '0',
        g: String(Date.now()), h: '0', i: '', j: '0', k: 'false',
    }, Buffer.from(body));
}

test('OTLP_GRPC pushes the /metrics families as OTLP/HTTP JSON, counters growing with traffic', async () => {
    const col = await collector();
    const srv = await startApogee('standalone', [
        '--metricsExporterType=OTLP_GRPC',
        `--metricsGrpcExporterTarget=http://127.0.0.1:${col.port}`,
        '--metricGrpcExporterIntervalInMills=200',
        '--metricsGrpcExporterHeader=authorization:Bearer t0k3n,x-tenant:t1',
        '--metricsLabel=instance_id:i-42,uid:u7',
        '--httpListenPort=0',
    ], { extraPorts: { namesrvListenPort: await freePort() } });
    const br = await RemotingClient.connect(srv.port);
    try {
        const topic = 'OtlpTopic';
        let r = await br.request(17, { topic, readQueueNums: '4', writeQueueNums: '4', perm: '6' });
        assert.equal(r.code, 0, r.remark);
        for (let i = 0; i < 5; i++) assert.equal((await send(br, topic, `a${i}`)).code, 0);
        const first = await until(() => col.got.find((g) => {
            const dp = point(metricsOf(g), 'rocketmq_messages_in_total', { topic });
            return dp && dp.asInt === '5';
        }), 10000, 'an export with 5 messages in');
        assert.equal(first.method, 'POST');
        assert.equal(first.path, '/v1/metrics');
        assert.match(first.headers['content-type'], /^application\/json/);
        assert.equal(first.headers.authorization, 'Bearer t0k3n');
        assert.equal(first.headers['x-tenant'], 't1');

        const m = metricsOf(first);
        for (const name of ['rocketmq_broker_permission', 'rocketmq_messages_in_total',
            'rocketmq_throughput_in_total', 'rocketmq_producer_connections', 'rocketmq_rpc_latency',
            'rocketmq_storage_size', 'rocketmq_storage_message_reserve_time', 'rocketmq_timer_dequeue_total'])
            assert.ok(m.has(name), `metric ${name} exported`);
        const inTotal = m.get('rocketmq_messages_in_total');
        assert.equal(inTotal.sum.isMonotonic, true);
        assert.equal(inTotal.sum.aggregationTemporality, 2); // CUMULATIVE
        assert.ok(inTotal.description.length > 0);
        assert.ok(m.get('rocketmq_broker_permission').gauge);
        const dp = point(m, 'rocketmq_messages_in_total', { topic });
        assert.deepEqual(attrsOf(dp), {
            cluster: 'DefaultCluster', node_type: 'broker', node_id: 'broker-a', topic,
            instance_id: 'i-42', uid: 'u7',
        });
        assert.match(dp.timeUnixNano, /^\d{19}$/); // int64 as a decimal string (JSON mapping)
        assert.match(dp.startTimeUnixNano, /^\d{19}$/);
        assert.ok(BigInt(dp.startTimeUnixNano) <= BigInt(dp.timeUnixNano));
        assert.equal(point(m, 'rocketmq_broker_permission', {}).asInt, '6');

        // The histogram: per-bucket counts (not cumulative), bounds without +Inf.
        const h = point(m, 'rocketmq_rpc_latency', { request_code: '310' });
        assert.ok(h, 'rpc latency of SEND_MESSAGE_V2');
        assert.equal(attrsOf(h).protocol_type, 'remoting');
        assert.equal(attrsOf(h).le, undefined);
        assert.equal(h.bucketCounts.length, h.explicitBounds.length + 1);
        assert.deepEqual(h.explicitBounds, [1, 3, 5, 7, 10, 100, 1000, 2000, 3000]);
        assert.equal(h.bucketCounts.reduce((s, c) => s + Number(c), 0), Number(h.count));
        assert.ok(Number(h.count) >= 5);
        assert.equal(typeof h.sum, 'number');

        // More traffic: sends and a pull by a group; the next exports follow.
        for (let i = 0; i < 7; i++) assert.equal((await send(br, topic, `b${i}`)).code, 0);
        r = await br.request(11, {
            consumerGroup: 'CG_OTLP', topic, queueId: '0', queueOffset: '0', maxMsgNums: '32',
            sysFlag: '0', commitOffset: '0', suspendTimeoutMillis: '0', subscription: '*',
            subVersion: '0', expressionType: 'TAG',
        });
        assert.equal(r.code, 0, r.remark);
        const n = col.got.length;
        const later = await until(() => col.got.slice(n).find((g) => {
            const mm = metricsOf(g);
            const out = point(mm, 'rocketmq_messages_out_total', { topic, consumer_group: 'CG_OTLP' });
            return point(mm, 'rocketmq_messages_in_total', { topic })?.asInt === '12' && out?.asInt === '12' && g;
        }), 10000, 'an export with 12 messages in and out');
        const lm = metricsOf(later);
        assert.ok(Number(point(lm, 'rocketmq_rpc_latency', { request_code: '310' }).count) >= 12);
        assert.ok(Number(point(lm, 'rocketmq_throughput_in_total', {}).asInt) >
            Number(point(m, 'rocketmq_throughput_in_total', {}).asInt));
        assert.ok(lm.get('rocketmq_messages_out_total').sum.isMonotonic);
    } finally {
        br.close();
        await srv.stop();
        await col.close();
    }
});

test('a collector that never answers or refuses does not hold up sends', async () => {
    // Accepts connections and never answers: every export waits for its 300 ms timeout.
    const held = [];
    const mute = net.createServer((s) => held.push(s));
    const mutePort = await freePort();
    await new Promise((r) => mute.listen(mutePort, '127.0.0.1', r));
    const srv = await startApogee('standalone', [
        '--metricsExporterType=otlp',
        `--metricsGrpcExporterTarget=127.0.0.1:${mutePort}/otlp/v1/metrics`,
        '--metricGrpcExporterIntervalInMills=100', '--metricGrpcExporterTimeOutInMills=300',
        '--httpListenPort=0',
    ], { extraPorts: { namesrvListenPort: await freePort() } });
    const br = await RemotingClient.connect(srv.port);
    try {
        await until(() => held.length > 0, 5000, 'the exporter to connect');
        let worst = 0;
        for (let i = 0; i < 200; i++) {
            const t0 = performance.now();
            const r = await send(br, 'OtlpMute', `m${i}`);
            worst = Math.max(worst, performance.now() - t0);
            assert.equal(r.code, 0, r.remark);
        }
        assert.ok(worst < 250, `worst send ${worst.toFixed(1)} ms while the collector hangs`);
        await srv.waitOutput(/metrics export failed: no HTTP answer from 127\.0\.0\.1/, 5000);
    } finally {
        br.close();
        await srv.stop();
        for (const s of held) s.destroy();
        mute.close();
    }
});

test('bad exporter settings stop the start with an error naming the key', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-otlp-'));
    const base = async () => [`--storePathRootDir=${dir}`, '--bindAddress=127.0.0.1',
        `--listenPort=${await freePort()}`, `--namesrvListenPort=${await freePort()}`,
        '--httpListenPort=0', '--grpcServerPort=0'];
    const cases = [
        [['--metricsExporterType=PROMETHEUS'], /metricsExporterType=PROMETHEUS: expected one of/],
        [['--metricsExporterType=OTLP_GRPC'], /metricsGrpcExporterTarget is empty/],
        [['--metricsExporterType=OTLP_GRPC', '--metricsGrpcExporterTarget=https://c:4318'],
            /metricsGrpcExporterTarget=https:\/\/c:4318: only http:\/\//],
        [['--metricsExporterType=otlp', '--metricsGrpcExporterTarget=http://c:99999'],
            /metricsGrpcExporterTarget=http:\/\/c:99999: bad port/],
        [['--metricsExporterType=otlp', '--metricsGrpcExporterTarget=c:4318',
            '--metricsGrpcExporterHeader=novalue'], /metricsGrpcExporterHeader=novalue/],
        [['--metricsExporterType=otlp', '--metricsGrpcExporterTarget=c:4318', '--metricsLabel=a'],
            /metricsLabel=a/],
        [['--metricGrpcExporterIntervalInMills=5'], /metricGrpcExporterIntervalInMills=5: out of range/],
    ];
    try {
        for (const [args, re] of cases) {
            const r = await runSub('standalone', [...await base(), ...args], 10000);
            assert.notEqual(r.code, 0, `${args.join(' ')} must not start:\n${r.out}`);
            assert.match(r.out, re, args.join(' '));
        }
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
});
