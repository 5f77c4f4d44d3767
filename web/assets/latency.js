// Latency percentiles on the overview: /metrics is read on each poll, and from the change of
// the `rocketmq_rpc_latency` histogram's buckets since the previous poll the page computes
// p50 and p99 per request code (linear within a bucket, as Prometheus' histogram_quantile
// does), kept for the last 90 polls. The chart shows the selected code; the table, every
// code with requests in the last interval. Loaded after the first page has rendered.
import { h, table } from './ui.js';
import { RateChart } from './chart.js';

const LINE = /^rocketmq_rpc_latency_bucket\{([^}]*)\}\s+(\S+)/;
const LABEL = /(\w+)="((?:[^"\\]|\\.)*)"/g;

// Prometheus text -> Map "<protocol_type> <request_code>" -> [[le, cumulative count]] sorted by le.
export function parseRpcLatency(text) {
    const out = new Map();
    for (const line of text.split('\n')) {
        const m = LINE.exec(line);
        if (!m) continue;
        const l = {};
        for (const [, k, v] of m[1].matchAll(LABEL)) l[k] = v;
        const key = `${l.protocol_type ?? '?'} ${l.request_code ?? '?'}`;
        if (!out.has(key)) out.set(key, []);
        out.get(key).push([l.le === '+Inf' ? Infinity : Number(l.le), Number(m[2])]);
    }
    for (const b of out.values()) b.sort((x, y) => x[0] - y[0]);
    return out;
}

// The q-quantile of cumulative buckets (the deltas of one interval): the bucket where the
// rank falls, interpolated linearly from its lower bound (0 for the first); in the +Inf
// bucket, the largest finite bound. NaN without observations.
export function quantile(buckets, q) {
    const total = buckets.length ? buckets[buckets.length - 1][1] : 0;
    if (!(total > 0)) return NaN;
    const rank = q * total;
    let lo = 0, below = 0;
    for (const [le, cum] of buckets) {
        if (cum >= rank) {
            if (le === Infinity) return lo;
            return cum > below ? lo + ((le - lo) * (rank - below)) / (cum - below) : lo;
        }
        lo = le;
        below = cum;
    }
    return lo;
}

// Per key, the buckets of now minus those of before (a key new since then counts from 0;
// a counter that went back, a restart, counts from 0 too).
export function bucketDeltas(before, now) {
    const out = new Map();
    for (const [key, b] of now) {
        const prev = new Map((before.get(key) ?? []).map(([le, c]) => [le, c]));
        const back = b.some(([le, c]) => c < (prev.get(le) ?? 0));
        out.set(key, b.map(([le, c]) => [le, back ? c : c - (prev.get(le) ?? 0)]));
    }
    return out;
}

const KEEP = 90;

export function latencyPanel() {
    const select = h('select', { id: 'latency-code', style: 'width:auto' });
    const canvas = h('canvas', { id: 'latency-chart', width: 1100, height: 180 });
    const chart = new RateChart(canvas, [['p50', '#2563eb'], ['p99', '#dc2626']], KEEP);
    const rows = h('div', { id: 'latency-rows' });
    const el = h('section', { class: 'card', id: 'latency' }, h('h2', {}, 'Request latency (ms), per request code'),
        h('div', { class: 'legend' }, h('span', {}, h('i', { style: 'background:#2563eb' }), 'p50'),
            h('span', {}, h('i', { style: 'background:#dc2626' }), 'p99'), h('label', {}, 'code ', select)),
        canvas, rows);
    const hist = new Map(); // key -> [[p50, p99]] of the last KEEP polls
    let last = null;
    const redraw = () => {
        chart.data = [0, 1].map((i) => (hist.get(select.value) ?? []).map((p) => p[i]));
        chart.draw();
    };
    select.addEventListener('change', redraw);
    async function poll() {
        let text;
        try {
            const res = await fetch('/metrics');
            if (!res.ok) return;
            text = await res.text();
        } catch {
            return;
        }
        const now = parseRpcLatency(text);
        if (last) {
            const d = bucketDeltas(last, now);
            const shown = [];
            for (const key of new Set([...hist.keys(), ...d.keys()])) {
                const b = d.get(key) ?? [];
                const n = b.length ? b[b.length - 1][1] : 0;
                const p = [quantile(b, 0.5), quantile(b, 0.99)];
                if (!hist.has(key)) hist.set(key, []);
                const s = hist.get(key);
                s.push(p);
                if (s.length > KEEP) s.shift();
                if (n > 0) shown.push({ key, n, p50: p[0], p99: p[1] });
            }
            shown.sort((a, b) => b.n - a.n);
            const keys = [...hist.keys()].sort();
            if (keys.join() !== [...select.options].map((o) => o.value).join()) {
                const keep = select.value || shown[0]?.key;
                select.replaceChildren(...keys.map((k) => h('option', { value: k }, k)));
                if (keep) select.value = keep;
            }
            const ms = (v) => (Number.isFinite(v) ? v.toFixed(v < 10 ? 2 : 0) : '-');
            rows.replaceChildren(table([
                ['Protocol, code', (r) => r.key], ['Requests', (r) => r.n, { num: true }],
                ['p50 ms', (r) => ms(r.p50), { num: true }], ['p99 ms', (r) => ms(r.p99), { num: true }],
            ], shown, { id: 'latency-table' }));
            redraw();
        }
        last = now;
    }
    return { el, poll };
}
