// Message search (by key within a stored-time range, by topic and stored-time range without a
// key, by client msgId with its topic, by offset msgId) with detail, delivery status per group and trace, and
// the dead-letter queue of a group with resend.
import { get, getText, post, enc } from './api.js';
import { h, table, toast, guard, field, fmtTime, messageDetail } from './ui.js';

export async function messagesPage(main, query) {
    const q = new URLSearchParams(query ?? '');
    const topic = h('input', { name: 'topic', placeholder: 'Topic', value: q.get('topic') ?? '' });
    const key = h('input', { name: 'key', placeholder: 'key', value: q.get('key') ?? '' });
    const id = h('input', { name: 'id', placeholder: 'msgId or offset msgId', size: 40, value: q.get('id') ?? '' });
    const results = h('div', { id: 'search-results' });
    const detail = h('div', { id: 'message-detail' });
    // begin/end: the stored-time range (local time, to the second); empty: no bound.
    const begin = h('input', { name: 'begin', type: 'datetime-local', step: 1 });
    const end = h('input', { name: 'end', type: 'datetime-local', step: 1 });
    const byKey = h('form', { class: 'row', id: 'search-key' }, field('Topic', topic), field('Key', key),
        field('Stored from', begin), field('to', end), h('button', { type: 'submit' }, 'Find by key'));
    // the search without a key: a topic's messages stored in a range, oldest first
    const rTopic = h('input', { name: 'rtopic', placeholder: 'Topic', value: q.get('topic') ?? '' });
    const rBegin = h('input', { name: 'rbegin', type: 'datetime-local', step: 1, required: true });
    const rEnd = h('input', { name: 'rend', type: 'datetime-local', step: 1, required: true });
    const rMax = h('input', { name: 'rmax', type: 'number', min: 1, max: 2000, value: 64, size: 5 });
    const byTime = h('form', { class: 'row', id: 'search-time' }, field('Topic', rTopic), field('Stored from', rBegin),
        field('to', rEnd), field('At most', rMax), h('button', { type: 'submit' }, 'Find by time range'));
    const byId = h('form', { class: 'row', id: 'search-id' }, field('Message id', id), h('button', { type: 'submit' }, 'Find by id'));
    main.append(h('h1', {}, 'Messages'), h('section', { class: 'card' }, byKey, byTime, byId,
        h('p', { class: 'muted' }, 'A msgId (the client id, UNIQ_KEY) needs the topic above; an offset msgId does not.')), results, detail);

    // The detail plus each consumer group's delivery status (GET /api/messages/<id>/track) and
    // the trace clients with trace on stored (GET /api/messages/<msgId>/trace).
    const open = async (m) => {
        const track = h('section', { class: 'card', id: 'message-track' }, h('h2', {}, 'Delivery per consumer group'), h('p', { class: 'muted' }, 'Loading…'));
        const trace = h('section', { class: 'card', id: 'message-trace' }, h('h2', {}, 'Trace'), h('p', { class: 'muted' }, 'Loading…'));
        detail.replaceChildren(messageDetail(m), track, trace);
        get(`/api/messages/${enc(m.msgId)}/trace`).then((r) => trace.replaceChildren(trace.firstChild, r.traces.length ? table([
            ['Step', (t) => t.traceType], ['Group', (t) => t.groupName ?? ''], ['Time', (t) => fmtTime(t.timestamp)],
            ['Cost ms', (t) => t.costTime ?? '', { num: true }],
            ['Status', (t) => (t.success === undefined ? '' : t.success ? 'success' : 'failed') + (t.consumeStatus && t.consumeStatus !== 'SUCCESS' ? ` (${t.consumeStatus})` : '')],
            ['Detail', (t) => (t.traceType === 'Pub' ? `${t.msgType ?? ''} from ${t.clientHost || '?'} to ${t.storeHost ?? '?'}` : t.traceType === 'SubBefore' ? `retry ${t.retryTimes}` : t.transactionState ?? '')],
        ], r.traces, { id: 'trace-table' }) : h('p', { class: 'muted' }, `No trace records in ${r.traceTopic} (the clients did not enable message trace).`)),
        (e) => trace.replaceChildren(trace.firstChild, h('p', { class: 'muted' }, e.message)));
        const r = await guard(() => get(`/api/messages/${enc(m.offsetMsgId)}/track`));
        if (!r) return;
        track.replaceChildren(track.firstChild, table([
            ['Group', (t) => h('a', { href: `#/group/${enc(t.consumerGroup)}` }, t.consumerGroup)],
            ['Status', (t) => h('span', { class: `track track-${t.trackType}` }, t.trackType)],
            ['Committed offset', (t) => t.consumerOffset, { num: true }],
            ['Note', (t) => t.exceptionDesc],
        ], r.tracks, { id: 'track-table' }),
        h('p', { class: 'muted' }, `The message is at queue offset ${r.message.queueOffset} of queue ${r.message.queueId}; a group has consumed it once its committed offset is past that.`));
    };
    const show = (msgs) => {
        detail.replaceChildren();
        results.replaceChildren(table([
            ['msgId', (m) => h('a', { href: 'javascript:void 0', class: 'result-id', onclick: () => open(m) }, m.msgId)],
            ['Topic', (m) => m.topic], ['Tags', (m) => m.properties?.TAGS ?? ''], ['Keys', (m) => m.properties?.KEYS ?? ''],
            ['Stored', (m) => fmtTime(m.storeTimestamp)], ['Size', (m) => m.bodySize, { num: true }],
        ], msgs, { id: 'results-table' }));
        if (msgs.length === 1) open(msgs[0]);
    };
    // One page of the range search. A cut list gets "Next page", which searches again from the
    // last listed store time: the broker lists that millisecond's messages again, so the next
    // page asks for that many more and leaves out the ones already shown (shown).
    const rangePage = async (topicName, from, to, max, shown) => {
        const ask = Math.min(2000, max + shown.size);
        const r = await guard(() => get(`/api/messages?topic=${enc(topicName)}&begin=${from}&end=${to}&max=${ask}`));
        if (!r) return;
        const fresh = r.messages.filter((m) => !shown.has(m.offsetMsgId));
        const msgs = fresh.slice(0, max);
        const more = r.truncated || fresh.length > max;
        const last = msgs.at(-1);
        const again = (m) => m.storeTimestamp === last.storeTimestamp;
        const next = more && last
            ? h('button', { class: 'plain', id: 'range-next', onclick: () => rangePage(topicName, last.storeTimestamp, to, max,
                new Set([...(last.storeTimestamp === from ? shown : []), ...msgs.filter(again).map((m) => m.offsetMsgId)])) }, 'Next page')
            : '';
        const note = !more ? `${msgs.length} message(s) stored in this range, oldest first.`
            : msgs.length ? `${msgs.length} message(s), oldest first; more are stored in this range.`
                : 'More than 2000 messages share one millisecond: narrow the range.';
        detail.replaceChildren();
        results.replaceChildren(
            h('p', { class: 'muted', id: 'range-note' }, note, ' ', next),
            table([
                ['msgId', (m) => h('a', { href: 'javascript:void 0', class: 'result-id', onclick: () => open(m) }, m.msgId)],
                ['Queue', (m) => m.queueId, { num: true }], ['Offset', (m) => m.queueOffset, { num: true }],
                ['Stored', (m) => fmtTime(m.storeTimestamp)], ['Tags', (m) => m.properties?.TAGS ?? ''],
                ['Keys', (m) => m.properties?.KEYS ?? ''],
            ], msgs, { id: 'range-table' }));
    };
    // datetime-local <-> ms since the epoch, in local time to the second
    const toMs = (i, last) => new Date(i.value).getTime() + (last ? 999 : 0);
    const toLocal = (ms) => {
        const d = new Date(Number(ms) - new Date(Number(ms)).getTimezoneOffset() * 60000);
        return d.toISOString().slice(0, 19);
    };
    if (q.get('begin') && q.get('end')) {
        rBegin.value = toLocal(q.get('begin'));
        rEnd.value = toLocal(q.get('end'));
    }
    byTime.addEventListener('submit', async (e) => {
        e.preventDefault();
        await rangePage(rTopic.value.trim(), toMs(rBegin), toMs(rEnd, true), Math.max(1, Math.min(2000, Number(rMax.value) || 64)), new Set());
    });
    byKey.addEventListener('submit', async (e) => {
        e.preventDefault();
        const range = [['begin', begin], ['end', end]].filter(([, i]) => i.value)
            .map(([n, i]) => `&${n}=${new Date(i.value).getTime() + (n === 'end' ? 999 : 0)}`).join('');
        const r = await guard(() => get(`/api/messages?topic=${enc(topic.value.trim())}&key=${enc(key.value.trim())}${range}`));
        if (r) show(r.messages);
    });
    byId.addEventListener('submit', async (e) => {
        e.preventDefault();
        const t = topic.value.trim();
        const r = await guard(() => get(`/api/messages/${enc(id.value.trim())}${t ? `?topic=${enc(t)}` : ''}`));
        if (r) show(r.messages);
    });
    if (q.get('id')) byId.requestSubmit();
    else if (q.get('key') && q.get('topic')) byKey.requestSubmit();
    else if (q.get('topic') && q.get('begin') && q.get('end')) byTime.requestSubmit();
}

export async function dlqPage(main, group) {
    const g = h('input', { name: 'group', placeholder: 'consumer group', value: group ?? '' });
    const f = h('form', { class: 'row', id: 'dlq-form' }, field('Consumer group', g), h('button', { type: 'submit' }, 'Show dead letters'));
    const list = h('div', { id: 'dlq-list' });
    const detail = h('div', { id: 'dlq-detail' });
    main.append(h('h1', {}, 'Dead letters'), h('section', { class: 'card' }, f), list, detail);
    f.addEventListener('submit', (e) => {
        e.preventDefault();
        if (g.value.trim()) location.hash = `#/dlq/${enc(g.value.trim())}`;
    });
    if (!group) return;
    async function load() {
        const r = await guard(() => get(`/api/dlq/${enc(group)}`));
        if (!r) return;
        const exportBtn = h('button', { class: 'plain', id: 'dlq-export', onclick: async () => {
            const text = await guard(() => getText(`/api/dlq/${enc(group)}/export?max=10000`));
            if (text === undefined) return;
            const a = h('a', { href: URL.createObjectURL(new Blob([text], { type: 'application/x-ndjson' })), download: `dlq-${group}.jsonl` });
            a.click();
            setTimeout(() => URL.revokeObjectURL(a.href), 1000);
        } }, 'Export (JSON lines, up to 10,000)');
        list.replaceChildren(h('p', { class: 'muted' }, `${r.topic}: offsets ${r.minOffset}..${r.maxOffset} `, exportBtn),
            table([
                ['msgId', (m) => h('a', { href: 'javascript:void 0', onclick: () => detail.replaceChildren(messageDetail(m)) }, m.msgId)],
                ['Original topic', (m) => m.properties?.RETRY_TOPIC ?? '?'],
                ['Keys', (m) => m.properties?.KEYS ?? ''],
                ['Reconsumed', (m) => m.reconsumeTimes, { num: true }],
                ['Stored', (m) => fmtTime(m.storeTimestamp)],
                ['', (m) => h('button', { class: 'plain resend', onclick: async () => {
                    const x = await guard(() => post(`/api/dlq/${enc(group)}/resend`, { commitLogOffset: m.commitLogOffset }));
                    if (x) toast(`resent to ${x.topic} (queue offset ${x.queueOffset})`);
                } }, 'Resend')],
            ], r.messages, { id: 'dlq-table' }));
    }
    await load();
}
