// Transactions in flight: the half messages a producer has neither committed nor rolled back
// (GET /api/transactions), with their producer group, topic, msgId, age and how often the
// broker has checked them back. Loaded on first visit, not with the first page; refreshes
// every 5 s while shown.
import { get } from './api.js';
import { h, table, guard, fmtTime } from './ui.js';

const age = (ms) => (ms < 1000 ? `${ms} ms` : ms < 120000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 60000)} min`);

export async function txnsPage(main) {
    const summary = h('p', { class: 'muted', id: 'txn-summary' });
    const list = h('div', { id: 'txn-list' });
    main.append(h('h1', {}, 'Transactions in flight'), summary, list);
    async function load() {
        const r = await guard(() => get('/api/transactions'));
        if (!r) return;
        summary.textContent = `${r.transactions.length}${r.more ? '+' : ''} open; ` +
            `${r.committed} committed, ${r.rolledBack} rolled back, ${r.checks} check-backs, ${r.discarded} discarded since start`;
        list.replaceChildren(table([
            ['Producer group', (t) => t.producerGroup ?? ''],
            ['Topic', (t) => t.topic ?? ''],
            ['msgId', (t) => t.msgId ?? t.offsetMsgId],
            ['Keys', (t) => t.keys ?? ''],
            ['Born', (t) => fmtTime(t.bornTimestamp)],
            ['Age', (t) => age(t.ageMillis), { num: true }],
            ['Checks', (t) => t.checkTimes, { num: true }],
        ], r.transactions, { id: 'txn-table' }));
    }
    await load();
    const timer = setInterval(load, 5000);
    return () => clearInterval(timer);
}
