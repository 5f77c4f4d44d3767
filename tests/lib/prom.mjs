// A strict Prometheus text-format (0.0.4) parser for the /metrics tests: every line checked
// against the grammar (names, label escapes, values), a family's lines together, no series
// twice, histograms consistent (le increasing, counts not decreasing, _count = +Inf bucket).
// Throws (node:assert) on the first violation; returns name -> {type, help, samples}.
import assert from 'node:assert/strict';

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(s, line) {
    if (s === '+Inf') return Infinity;
    if (s === '-Inf') return -Infinity;
    if (s === 'NaN') return NaN;
    assert.match(s, /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/, `bad value in: ${line}`);
    return Number(s);
}

// Reads labels from `s` at i (just after '{'); returns [labels, index after '}'].
function parseLabels(s, i, line) {
    const labels = {};
    for (;;) {
        if (s[i] === '}') return [labels, i + 1];
        let j = i;
        while (j < s.length && /[a-zA-Z0-9_]/.test(s[j])) j++;
        const name = s.slice(i, j);
        assert.match(name, LABEL, `bad label name in: ${line}`);
        assert.ok(!(name in labels), `label ${name} twice in: ${line}`);
        assert.equal(s.slice(j, j + 2), '="', `expected =" after label ${name} in: ${line}`);
        j += 2;
        let v = '';
        for (;;) {
            assert.ok(j < s.length, `unterminated label value in: ${line}`);
            const c = s[j++];
            if (c === '"') break;
            if (c === '\\') {
                const e = s[j++];
                assert.ok(e === '\\' || e === '"' || e === 'n', `bad escape \\${e} in: ${line}`);
                v += e === 'n' ? '\n' : e;
            } else {
                assert.notEqual(c, '\n');
                v += c;
            }
        }
        labels[name] = v;
        if (s[j] === ',') j++;
        else assert.equal(s[j], '}', `expected , or } in: ${line}`);
        i = j;
    }
}

export function parseProm(text) {
    assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
    const families = new Map(); // name -> {type, help, samples: []}
    const done = new Set(); // families whose samples ended (another family began)
    let current = null;
    const series = new Set();
    const familyOf = (name) => {
        for (const suf of ['_bucket', '_sum', '_count']) {
            if (name.endsWith(suf)) {
                const base = name.slice(0, -suf.length);
                const f = families.get(base);
                if (f && (f.type === 'histogram' || (f.type === 'summary' && suf !== '_bucket'))) return base;
            }
        }
        return name;
    };
    const enter = (name) => {
        if (current === name) return;
        assert.ok(!done.has(name), `lines of family ${name} are not together`);
        if (current) done.add(current);
        current = name;
    };
    for (const line of text.split('\n').slice(0, -1)) {
        if (line === '') continue;
        if (line.startsWith('#')) {
            const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
            if (!m) continue; // a plain comment
            const [, kind, name, rest] = m;
            assert.match(name, NAME, `bad metric name in: ${line}`);
            enter(name);
            const f = families.get(name) ?? { type: 'untyped', help: null, samples: [], typed: false };
            families.set(name, f);
            if (kind === 'TYPE') {
                assert.ok(!f.typed, `TYPE twice for ${name}`);
                assert.equal(f.samples.length, 0, `TYPE after samples for ${name}`);
                assert.ok(TYPES.has(rest), `unknown type ${rest} for ${name}`);
                f.type = rest;
                f.typed = true;
            } else {
                assert.equal(f.help, null, `HELP twice for ${name}`);
                f.help = rest;
            }
            continue;
        }
        const nm = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
        assert.ok(nm, `bad sample line: ${line}`);
        const name = nm[0];
        let i = name.length;
        let labels = {};
        if (line[i] === '{') [labels, i] = parseLabels(line, i + 1, line);
        assert.equal(line[i], ' ', `expected a space before the value in: ${line}`);
        const parts = line.slice(i + 1).split(' ');
        assert.ok(parts.length === 1 || (parts.length === 2 && /^-?\d+$/.test(parts[1])), `bad value/timestamp in: ${line}`);
        const value = parseValue(parts[0], line);
        const fam = familyOf(name);
        enter(fam);
        const f = families.get(fam) ?? { type: 'untyped', help: null, samples: [], typed: false };
        families.set(fam, f);
        const key = name + JSON.stringify(Object.entries(labels).sort());
        assert.ok(!series.has(key), `series twice: ${line}`);
        series.add(key);
        f.samples.push({ name, labels, value });
    }
    for (const [name, f] of families) if (f.type === 'histogram') checkHistogram(name, f);
    return families;
}

function checkHistogram(name, f) {
    const groups = new Map();
    for (const s of f.samples) {
        const { le, ...rest } = s.labels;
        const k = JSON.stringify(Object.entries(rest).sort());
        const g = groups.get(k) ?? { buckets: [], sum: null, count: null };
        groups.set(k, g);
        if (s.name === `${name}_bucket`) {
            assert.ok(le !== undefined, `${name}_bucket without le`);
            g.buckets.push([parseValue(le, le), s.value]);
        } else if (s.name === `${name}_sum`) g.sum = s.value;
        else if (s.name === `${name}_count`) g.count = s.value;
        else assert.fail(`sample ${s.name} in histogram ${name}`);
    }
    for (const [k, g] of groups) {
        assert.ok(g.buckets.length > 0, `${name}${k}: no buckets`);
        for (let i = 1; i < g.buckets.length; i++) {
            assert.ok(g.buckets[i][0] > g.buckets[i - 1][0], `${name}${k}: le not increasing`);
            assert.ok(g.buckets[i][1] >= g.buckets[i - 1][1], `${name}${k}: bucket counts decrease`);
        }
        const last = g.buckets[g.buckets.length - 1];
        assert.equal(last[0], Infinity, `${name}${k}: no +Inf bucket`);
        assert.equal(g.count, last[1], `${name}${k}: _count differs from the +Inf bucket`);
        assert.ok(g.sum !== null && g.sum >= 0, `${name}${k}: no _sum`);
    }
}
