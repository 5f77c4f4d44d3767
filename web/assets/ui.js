// Small DOM helpers: h() builds elements, table() renders rows, toast() reports.

export function h(tag, attrs = {}, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs ?? {})) {
        if (v === undefined || v === null || v === false) continue;
        if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
        else if (k === 'text') el.textContent = v;
        else el.setAttribute(k, v === true ? '' : v);
    }
    for (const k of kids.flat()) if (k !== null && k !== undefined && k !== false) el.append(k);
    return el;
}

// cols: [[header, row => cell (string or Node), {num}]]
export function table(cols, rows, attrs = {}) {
    return h('table', attrs,
        h('thead', {}, h('tr', {}, cols.map(([t, , o]) => h('th', { class: o?.num ? 'num' : null }, t)))),
        h('tbody', {}, rows.length ? rows.map((r) => h('tr', {}, cols.map(([, f, o]) => {
            const v = f(r);
            return h('td', { class: o?.num ? 'num' : null }, v instanceof Node ? v : String(v ?? ''));
        }))) : h('tr', {}, h('td', { colspan: cols.length, class: 'muted' }, 'none'))));
}

export function toast(msg, err = false) {
    const box = document.getElementById('toast');
    const d = h('div', { class: err ? 'err' : null, text: msg });
    box.append(d);
    setTimeout(() => d.remove(), err ? 8000 : 3000);
}

// Runs fn, reporting its error as a toast; returns its result or undefined.
export async function guard(fn) {
    try {
        return await fn();
    } catch (e) {
        toast(e.code != null ? `${e.message} (code ${e.code})` : e.message, true);
        return undefined;
    }
}

export function field(label, input) {
    return h('label', {}, label, input);
}

export function fmtTime(ms) {
    return ms > 0 ? new Date(ms).toLocaleString() : '-';
}

export function b64ToBytes(b64) {
    const s = atob(b64 ?? '');
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
}

export function hexDump(bytes) {
    const lines = [];
    for (let i = 0; i < bytes.length; i += 16) {
        const row = Array.from(bytes.slice(i, i + 16));
        lines.push(i.toString(16).padStart(6, '0') + '  ' +
            row.map((b) => b.toString(16).padStart(2, '0')).join(' ').padEnd(48) + ' ' +
            row.map((b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : '.')).join(''));
    }
    return lines.join('\n');
}

// A message's detail: fields, properties, body as text and hex.
export function messageDetail(m) {
    const bytes = b64ToBytes(m.body);
    let text;
    try {
        text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
        text = '(not UTF-8 text: see hex)';
    }
    const kv = (k, v) => [h('dt', {}, k), h('dd', {}, String(v))];
    const pre = h('pre', { class: 'body-text' }, text);
    const tabs = h('div', { class: 'tabs' },
        h('button', { class: 'plain', onclick: () => { pre.textContent = text; pre.className = 'body-text'; } }, 'Text'),
        h('button', { class: 'plain', onclick: () => { pre.textContent = hexDump(bytes); pre.className = 'body-hex'; } }, 'Hex'));
    return h('section', { class: 'card message-detail' },
        h('h2', {}, `Message ${m.msgId}`),
        h('dl', { class: 'kv' },
            kv('Topic', m.topic), kv('Queue', `${m.queueId} @ ${m.queueOffset}`),
            kv('Offset msgId', m.offsetMsgId), kv('Commit log offset', m.commitLogOffset),
            kv('Born', `${fmtTime(m.bornTimestamp)} from ${m.bornHost}`),
            kv('Stored', `${fmtTime(m.storeTimestamp)} on ${m.storeHost}`),
            kv('Reconsume times', m.reconsumeTimes), kv('Body size', m.bodySize)),
        h('h2', {}, 'Properties'),
        table([['Name', (r) => r[0]], ['Value', (r) => r[1]]], Object.entries(m.properties ?? {}), { class: 'props' }),
        h('h2', {}, 'Body'), tabs, pre);
}
