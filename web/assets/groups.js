// Consumer groups: the list (online or not); one group's clients with their own subscriptions
// and whether they agree (consistency),
// per-queue lag (polled every 2 s, with a lag chart), offset reset with preview and skip backlog.
import { get, post, enc } from './api.js';
import { h, table, toast, guard, field, fmtTime } from './ui.js';
import { RateChart } from './chart.js';

export async function groupsPage(main) {
    const list = h('div', { id: 'group-list' }, 'Loading…');
    main.append(h('h1', {}, 'Consumer groups'), list);
    const g = await guard(() => get('/api/groups'));
    if (!g) return;
    const rows = g.groups.filter((r) => !r.group.startsWith('CID_RMQ_SYS') && r.group !== 'TOOLS_CONSUMER')
        .sort((a, b) => a.group.localeCompare(b.group));
    list.replaceChildren(table([
        ['Group', (r) => h('a', { href: `#/group/${enc(r.group)}` }, r.group)],
        ['Online', (r) => (r.online ? h('span', { class: 'ok' }, 'online') : h('span', { class: 'muted' }, 'offline'))],
        ['Consume enabled', (r) => (r.config ? String(r.config.consumeEnable) : '-')],
        ['Retry queues', (r) => r.config?.retryQueueNums ?? '-', { num: true }],
        ['Max retries', (r) => r.config?.retryMaxTimes ?? '-', { num: true }],
    ], rows, { id: 'groups-table' }));
}

// A client's own subscriptions as text ("topic: expression; ..."), the group's retry topic
// left out (the client library subscribes it by itself).
function memberSubs(m) {
    return Object.entries(m?.subscriptionTable ?? {}).filter(([t]) => !t.startsWith('%RETRY%'))
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([t, s]) => `${t}: ${s.expressionType && s.expressionType !== 'TAG' ? `${s.expressionType} ` : ''}${s.subString}`).join('; ');
}

export async function groupPage(main, group) {
    const conn = h('section', { class: 'card', id: 'group-clients' }, 'Loading…');
    const lagTotal = h('p', { id: 'lag-total' });
    const lag = h('div', { id: 'lag-table' });
    const canvas = h('canvas', { id: 'lag-chart', width: 1100, height: 160 });
    const chart = new RateChart(canvas, [['lag', '#dc2626']]);
    const reset = h('section', { class: 'card', id: 'reset-offset' });
    main.append(h('h1', {}, `Consumer group ${group}`), h('h2', {}, 'Clients'), conn,
        h('h2', {}, 'Lag'), lagTotal, lag, canvas, h('h2', {}, 'Reset offsets'), reset,
        h('p', {}, h('a', { href: `#/dlq/${enc(group)}` }, 'Dead letters of this group')));

    async function loadConn() {
        const c = await guard(() => get(`/api/groups/${enc(group)}/connections`));
        if (!c) return;
        const subs = Object.entries(c.subscriptionTable ?? {});
        // The subscriptions most clients have; the others are marked (all of them on a tie).
        const counts = new Map();
        for (const m of c.connectionSet ?? []) counts.set(memberSubs(m), (counts.get(memberSubs(m)) ?? 0) + 1);
        const ranked = [...counts].sort((a, b) => b[1] - a[1]);
        const usual = ranked.length > 1 && ranked[0][1] === ranked[1][1] ? null : ranked[0]?.[0];
        conn.replaceChildren(
            h('p', {}, c.online ? h('span', { class: 'ok' }, `online: ${c.connectionSet.length} client(s)`) : h('span', { class: 'muted' }, 'no client online'),
                ' · subscriptions ', c.consistent ? h('span', { class: 'ok', id: 'consistency' }, 'consistent') : h('span', { class: 'bad', id: 'consistency' }, 'not consistent')),
            ...(c.problems ?? []).map((p) => h('p', { class: 'bad' }, p)),
            table([['Client id', (m) => m.clientId], ['Address', (m) => m.clientAddr], ['Language', (m) => m.language], ['Version', (m) => m.version, { num: true }],
                ['Subscriptions', (m) => {
                    const mine = memberSubs(m);
                    return h('span', { class: c.consistent || mine === usual ? '' : 'bad' }, mine || '-');
                }]], c.connectionSet ?? [], { id: 'clients-table' }),
            h('h2', {}, 'Subscriptions (the group\'s, from the last heartbeat)'),
            table([['Topic', (s) => s[0]], ['Type', (s) => s[1].expressionType ?? 'TAG'], ['Expression', (s) => s[1].subString]], subs));
    }

    let resetTopics = null;
    async function loadLag() {
        const s = await guard(() => get(`/api/groups/${enc(group)}/consume-stats`));
        if (!s) return;
        const rows = s.offsetTable.sort((a, b) => a.topic.localeCompare(b.topic) || a.queueId - b.queueId);
        lagTotal.replaceChildren('Total lag: ', h('strong', { id: 'lag-value' }, String(s.diffTotal)), ` · ${s.consumeTps} msg/s consumed`);
        chart.push([s.diffTotal]);
        lag.replaceChildren(table([
            ['Topic', (q) => q.topic], ['Queue', (q) => q.queueId, { num: true }],
            ['Broker offset', (q) => q.brokerOffset, { num: true }],
            ['Consumer offset', (q) => q.consumerOffset, { num: true }],
            ['Lag', (q) => q.brokerOffset - q.consumerOffset, { num: true }],
            ['Last consumed stored at', (q) => fmtTime(q.lastTimestamp)],
        ], rows));
        // The reset form lists the group's topics: built again when they
        // change (the first poll can come before the group has offsets).
        const topics = [...new Set(rows.map((q) => q.topic))];
        if (topics.join('\n') !== resetTopics) {
            resetTopics = topics.join('\n');
            resetForm(topics);
        }
        return rows;
    }

    function resetForm(topics) {
        const topic = h('select', { name: 'topic' }, topics.map((t) => h('option', { value: t }, t)));
        const when = h('input', { name: 'time', type: 'datetime-local' });
        const force = h('input', { name: 'force', type: 'checkbox', checked: true });
        const out = h('div', { id: 'reset-preview' });
        const body = () => ({ topic: topic.value, timestamp: when.value ? new Date(when.value).getTime() : 0, force: force.checked });
        const show = (r, what) => out.replaceChildren(h('p', {}, what),
            table([['Queue', (q) => q.queueId, { num: true }], ['New offset', (q) => q.offset, { num: true }]], r.offsetTable.sort((a, b) => a.queueId - b.queueId)));
        const preview = async (b) => {
            const r = await guard(() => post(`/api/groups/${enc(group)}/reset-offset`, { ...b, preview: true }));
            if (r) show(r, 'Preview (nothing changed yet):');
        };
        const apply = async (b, question) => {
            if (!confirm(question)) return;
            const r = await guard(() => post(`/api/groups/${enc(group)}/reset-offset`, b));
            if (r) {
                show(r, `Reset; ${r.membersTold} online client(s) told.`);
                toast('offsets reset');
                loadLag();
            }
        };
        // Skip backlog (RocketMQ dashboard's "skip accumulate"): every queue of the topic to
        // its max offset (timestamp -1), so the group consumes only what arrives from now on.
        const skip = () => ({ topic: topic.value, timestamp: -1, force: true });
        const f = h('form', { class: 'row' }, field('Topic', topic), field('To messages stored at or after (empty: the start)', when),
            h('label', { style: 'flex-direction:row;gap:4px' }, force, 'also move forward'),
            h('button', { type: 'button', class: 'plain', id: 'reset-preview-btn', onclick: () => preview(body()) }, 'Preview'),
            h('button', { type: 'button', id: 'reset-apply-btn', onclick: () => apply(body(), `Reset the offsets of ${group} on ${topic.value}?`) }, 'Reset'));
        const s = h('form', { class: 'row', id: 'skip-backlog' },
            h('span', {}, 'Skip the backlog of the topic above: every queue to its max offset.'),
            h('button', { type: 'button', class: 'plain', id: 'skip-preview-btn', onclick: () => preview(skip()) }, 'Preview skip'),
            h('button', { type: 'button', class: 'danger', id: 'skip-apply-btn', onclick: () => apply(skip(), `Skip the backlog of ${group} on ${topic.value}: the messages not consumed yet will not be?`) }, 'Skip backlog'));
        reset.replaceChildren(...(topics.length ? [f, s] : [h('p', { class: 'muted' }, 'The group has no offsets yet.')]), out);
    }

    await loadConn();
    if (!(await loadLag()))
        resetForm([]);
    const t1 = setInterval(loadLag, 2000);
    const t2 = setInterval(loadConn, 5000);
    return () => {
        clearInterval(t1);
        clearInterval(t2);
    };
}
