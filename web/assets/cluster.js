// Cluster and brokers: every broker this broker's NameServer knows (GET /api/brokers, asked of
// the NameServer by the broker without holding up its HTTP loop), by cluster, with address and
// role. Loaded on first visit.
import { get } from './api.js';
import { h, table, guard } from './ui.js';

export async function clusterPage(main) {
    const box = h('div', { id: 'cluster-list' }, h('p', { class: 'muted' }, 'Loading…'));
    main.append(h('h1', {}, 'Cluster'), box);
    const r = await guard(() => get('/api/brokers'));
    if (!r) {
        box.replaceChildren(h('p', { class: 'muted' }, 'The NameServer did not answer.'));
        return;
    }
    box.replaceChildren(...r.clusters.map((c) => h('section', { class: 'card cluster' },
        h('h2', {}, `Cluster ${c.cluster}`),
        table([
            ['Broker', (b) => b.brokerName],
            ['Id', (b) => b.brokerId, { num: true }],
            ['Address', (b) => b.addr],
            ['Role', (b) => b.role],
            ['', (b) => (b.self ? 'this broker' : '')],
        ], c.brokers.sort((a, b) => a.brokerName.localeCompare(b.brokerName) || a.brokerId - b.brokerId), { class: 'brokers-table' }))));
}
