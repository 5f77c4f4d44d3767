// Topics: the list with create; one topic's queues and offsets, perm and queue edits, delete,
// and a test message.
import { get, post, put, del, enc } from './api.js';
import { h, table, toast, guard, field, fmtTime } from './ui.js';

const PERMS = { 6: 'read/write', 4: 'read only', 2: 'write only', 0: 'none' };
const isSystem = (t) => t.startsWith('%') || t === 'TBW102' || t.startsWith('rmq_sys') ||
    t.includes('SCHEDULE_TOPIC') || t.startsWith('RMQ_SYS') || t.includes('_TRANS_');

export async function topicsPage(main) {
    const list = h('div', { id: 'topic-list' }, 'Loading…');
    const name = h('input', { name: 'topic', placeholder: 'TopicName', required: true });
    const queues = h('input', { name: 'queues', type: 'number', min: 1, max: 1024, value: 4 });
    const perm = h('select', { name: 'perm' }, Object.entries(PERMS).reverse().map(([v, t]) => h('option', { value: v, selected: v === '6' }, t)));
    const showSys = h('input', { type: 'checkbox', name: 'system' });
    const form = h('form', { class: 'row', id: 'create-topic' },
        field('Topic', name), field('Queues', queues), field('Permission', perm),
        h('button', { type: 'submit' }, 'Create topic'));
    form.addEventListener('submit', async (e) => {
        e.preventDefault();
        const r = await guard(() => post('/api/topics', { topic: name.value.trim(), queueNums: Number(queues.value), perm: Number(perm.value) }));
        if (r) {
            toast(`topic ${r.topic} ${r.created ? 'created' : 'updated'}`);
            name.value = '';
            load();
        }
    });
    showSys.addEventListener('change', () => load());
    main.append(h('h1', {}, 'Topics'), h('section', { class: 'card' }, form),
        h('label', { style: 'flex-direction:row;gap:6px;margin-bottom:8px' }, showSys, 'show system topics'), list);
    async function load() {
        const t = await guard(() => get('/api/topics'));
        if (!t) return;
        const rows = Object.values(t.topicConfigTable ?? {})
            .filter((c) => showSys.checked || !isSystem(c.topicName))
            .sort((a, b) => a.topicName.localeCompare(b.topicName));
        list.replaceChildren(table([
            ['Topic', (c) => h('a', { href: `#/topic/${enc(c.topicName)}` }, c.topicName)],
            ['Read queues', (c) => c.readQueueNums, { num: true }],
            ['Write queues', (c) => c.writeQueueNums, { num: true }],
            ['Permission', (c) => PERMS[c.perm & 6] ?? c.perm],
            ['Order', (c) => (c.order ? 'yes' : '')],
        ], rows, { id: 'topics-table' }));
    }
    await load();
}

export async function topicPage(main, topic) {
    const head = h('h1', {}, `Topic ${topic}`);
    const cfgBox = h('section', { class: 'card', id: 'topic-config' });
    const stats = h('div', { id: 'topic-stats' });
    const sendOut = h('div', { id: 'send-result' });
    const route = h('div', { id: 'topic-route' }, h('p', { class: 'muted' }, 'Loading…'));
    main.append(head, cfgBox, h('h2', {}, 'Queues'), stats, h('h2', {}, 'Route (NameServer)'), route,
        h('h2', {}, 'Send a test message'), sendForm(), sendOut);
    // GET_ROUTEINFO_BY_TOPIC: which brokers serve the topic, with how many queues and what perm.
    get(`/api/topics/${enc(topic)}/route`).then((r) => {
        const addrs = Object.fromEntries(r.brokerDatas.map((b) => [b.brokerName, b]));
        route.replaceChildren(table([
            ['Broker', (q) => q.brokerName],
            ['Cluster', (q) => addrs[q.brokerName]?.cluster ?? ''],
            ['Addresses', (q) => Object.entries(addrs[q.brokerName]?.brokerAddrs ?? {}).map(([id, a]) => `${id}: ${a}`).join(', ')],
            ['Read queues', (q) => q.readQueueNums, { num: true }],
            ['Write queues', (q) => q.writeQueueNums, { num: true }],
            ['Permission', (q) => PERMS[q.perm & 6] ?? q.perm],
        ], r.queueDatas, { id: 'route-table' }));
    }, (e) => route.replaceChildren(h('p', { class: 'muted' }, e.message)));

    async function load() {
        const t = await guard(() => get('/api/topics'));
        const c = t?.topicConfigTable?.[topic];
        if (!c) {
            cfgBox.replaceChildren(h('p', { class: 'bad' }, 'This topic does not exist on this broker.'));
            return;
        }
        const rq = h('input', { name: 'readQueueNums', type: 'number', min: 1, max: 1024, value: c.readQueueNums });
        const wq = h('input', { name: 'writeQueueNums', type: 'number', min: 1, max: 1024, value: c.writeQueueNums });
        const perm = h('select', { name: 'perm' }, Object.entries(PERMS).reverse().map(([v, t2]) => h('option', { value: v, selected: Number(v) === (c.perm & 6) }, t2)));
        const f = h('form', { class: 'row', id: 'edit-topic' }, field('Read queues', rq), field('Write queues', wq), field('Permission', perm),
            h('button', { type: 'submit' }, 'Save'),
            h('button', { type: 'button', class: 'danger', id: 'delete-topic', onclick: async () => {
                if (!confirm(`Delete topic ${topic}, its queues and its consumer offsets?`)) return;
                if (await guard(() => del(`/api/topics/${enc(topic)}`))) {
                    toast(`topic ${topic} deleted`);
                    location.hash = '#/topics';
                }
            } }, 'Delete topic'));
        f.addEventListener('submit', async (e) => {
            e.preventDefault();
            const r = await guard(() => put(`/api/topics/${enc(topic)}`, { readQueueNums: Number(rq.value), writeQueueNums: Number(wq.value), perm: Number(perm.value) }));
            if (r) {
                toast('saved');
                load();
            }
        });
        cfgBox.replaceChildren(f);
        const s = await guard(() => get(`/api/topics/${enc(topic)}/stats`));
        if (!s) return;
        const qs = s.offsetTable.sort((a, b) => a.queueId - b.queueId);
        stats.replaceChildren(table([
            ['Queue', (q) => q.queueId, { num: true }],
            ['Min offset', (q) => q.minOffset, { num: true }],
            ['Max offset', (q) => q.maxOffset, { num: true }],
            ['Messages', (q) => q.maxOffset - q.minOffset, { num: true }],
            ['Last stored', (q) => fmtTime(q.lastUpdateTimestamp)],
        ], qs, { id: 'queue-table' }));
    }

    function sendForm() {
        const tags = h('input', { name: 'tags', placeholder: 'TagA' });
        const keys = h('input', { name: 'keys', placeholder: 'key1 key2' });
        const body = h('textarea', { name: 'body', placeholder: 'message body' });
        const f = h('form', { class: 'row', id: 'send-message' }, field('Tags', tags), field('Keys', keys), field('Body', body),
            h('button', { type: 'submit' }, 'Send'));
        f.addEventListener('submit', async (e) => {
            e.preventDefault();
            const r = await guard(() => post(`/api/topics/${enc(topic)}/messages`, { tags: tags.value || undefined, keys: keys.value || undefined, body: body.value }));
            if (r) {
                sendOut.replaceChildren(h('p', { class: 'ok' }, 'Sent: msgId ',
                    h('a', { href: `#/messages?topic=${enc(topic)}&id=${enc(r.msgId)}`, class: 'sent-id' }, r.msgId),
                    ` (queue offset ${r.queueOffset})`));
                load();
            }
        });
        return f;
    }
    await load();
}
