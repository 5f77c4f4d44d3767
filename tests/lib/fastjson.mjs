// Reads the JSON that RocketMQ's fastjson writes for maps with non-string keys: a map keyed
// by MessageQueue is written with the key object itself, unquoted, as the key
// ({{"brokerName":"b","queueId":0,"topic":"T"}:{...}}), and integer keys unquoted ({0:5}).
// JSON.parse refuses both. parseFastjson returns plain values; an object that has at least one
// non-string key becomes an array of [key, value] pairs (its `entries`).
export function parseFastjson(text) {
    let i = 0;
    const ws = () => { while (i < text.length && ' \t\r\n'.includes(text[i])) i++; };
    const fail = (what) => { throw new Error(`fastjson: ${what} at ${i}: ${text.slice(i, i + 40)}`); };
    function value() {
        ws();
        const ch = text[i];
        if (ch === '{') return object();
        if (ch === '[') return array();
        if (ch === '"') return string();
        const m = /^(-?\d+(\.\d+)?([eE][-+]?\d+)?|true|false|null)/.exec(text.slice(i, i + 64));
        if (!m) fail('unexpected value');
        i += m[0].length;
        return JSON.parse(m[0]);
    }
    function string() {
        const start = i++;
        while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
        i++;
        return JSON.parse(text.slice(start, i));
    }
    function array() {
        i++;
        const out = [];
        ws();
        if (text[i] === ']') { i++; return out; }
        for (;;) {
            out.push(value());
            ws();
            if (text[i] === ',') { i++; continue; }
            if (text[i] === ']') { i++; return out; }
            fail('expected , or ]');
        }
    }
    function object() {
        i++;
        const pairs = [];
        let plain = true;
        ws();
        if (text[i] === '}') { i++; return {}; }
        for (;;) {
            const k = value();
            if (typeof k !== 'string') plain = false;
            ws();
            if (text[i] !== ':') fail('expected :');
            i++;
            pairs.push([k, value()]);
            ws();
            if (text[i] === ',') { i++; continue; }
            if (text[i] === '}') { i++; break; }
            fail('expected , or }');
        }
        return plain ? Object.fromEntries(pairs) : pairs;
    }
    const v = value();
    ws();
    if (i !== text.length) fail('trailing text');
    return v;
}
