// Cluster and broker overview, with the in/out message rate chart: /api/cluster polled every
// 2 s, rates from the change of msgPutTotalTodayNow / msgGetTotalTodayNow between polls; below
// it the request latency percentiles (latency.js, loaded once the page has rendered).
import { get } from './api.js';
import { h, guard, fmtTime } from './ui.js';
import { RateChart } from './chart.js';

export async function overview(main) {
    const info = h('section', { class: 'card', id: 'broker-info' }, 'Loading…');
    const canvas = h('canvas', { id: 'rate-chart', width: 1100, height: 180 });
    const chart = new RateChart(canvas, [['in', '#2563eb'], ['out', '#16a34a']]);
    main.append(h('h1', {}, 'Overview'), info,
        h('section', { class: 'card' }, h('h2', {}, 'Messages per second'),
            h('div', { class: 'legend' }, h('span', {}, h('i', { style: 'background:#2563eb' }), 'in (stored)'),
                h('span', {}, h('i', { style: 'background:#16a34a' }), 'out (delivered)')), canvas));
    let last = null;
    const poll = async () => {
        const c = await guard(() => get('/api/cluster'));
        if (!c) return;
        const t = c.runtime?.table ?? {};
        const now = Date.now();
        const put = Number(t.msgPutTotalTodayNow ?? 0), got = Number(t.msgGetTotalTodayNow ?? 0);
        if (last && now > last.at) {
            const s = (now - last.at) / 1000;
            chart.push([Math.max(0, (put - last.put) / s), Math.max(0, (got - last.got) / s)]);
        }
        last = { at: now, put, got };
        const kv = (k, v) => [h('dt', {}, k), h('dd', {}, String(v ?? '-'))];
        info.replaceChildren(h('dl', { class: 'kv' },
            kv('Cluster', c.clusterName), kv('Broker', `${c.brokerName} (id ${c.brokerId})`),
            kv('Address', c.brokerAddr), kv('Version', t.brokerVersionDesc ?? t.apogeeVersion),
            kv('Started', fmtTime(Number(t.bootTimestamp))),
            kv('Put TPS (10 s, 1 min, 10 min)', t.putTps), kv('Get TPS', t.getTransferredTps ?? t.getTransferedTps),
            kv('Messages stored today', t.msgPutTotalTodayNow), kv('Messages delivered today', t.msgGetTotalTodayNow),
            kv('Commit log disk use', t.commitLogDiskRatio)));
    };
    await poll();
    let latency = null;
    const timer = setInterval(() => {
        poll();
        latency?.poll();
    }, 2000);
    import('./latency.js').then(({ latencyPanel }) => {
        if (!info.isConnected) return; // another page by now
        latency = latencyPanel();
        main.append(latency.el);
        latency.poll();
    });
    return () => clearInterval(timer);
}
