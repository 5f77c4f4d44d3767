// The console's entry: a hash router (#/topics, #/group/<name>, ...) that renders one page
// into <main>. Pages stop their timers when the route changes (the returned cleanup).
import { account } from './api.js';
import { overview } from './overview.js';
import { topicsPage, topicPage } from './topics.js';
import { groupsPage, groupPage } from './groups.js';
import { messagesPage, dlqPage } from './messages.js';

const routes = [
    [/^#?\/?$/, 'overview', () => overview],
    [/^#\/topics$/, 'topics', () => topicsPage],
    [/^#\/topic\/(.+)$/, 'topics', () => topicPage],
    [/^#\/groups$/, 'groups', () => groupsPage],
    [/^#\/group\/(.+)$/, 'groups', () => groupPage],
    [/^#\/messages(?:\?(.*))?$/, 'messages', () => messagesPage],
    [/^#\/dlq(?:\/(.+))?$/, 'dlq', () => dlqPage],
    [/^#\/transactions$/, 'transactions', async () => (await import('./txns.js')).txnsPage],
];

let cleanup = null;

async function render() {
    if (cleanup) cleanup();
    cleanup = null;
    const hash = location.hash || '#/';
    const main = document.getElementById('main');
    for (const [re, nav, page] of routes) {
        const m = hash.match(re);
        if (!m) continue;
        for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('on', a.dataset.page === nav);
        main.replaceChildren();
        const args = m.slice(1).map((s) => (s === undefined ? undefined : decodeURIComponent(s)));
        const fn = await page();
        cleanup = (await fn(main, ...args)) ?? null;
        document.getElementById('who').textContent = account() ? `signed in as ${account()}` : '';
        return;
    }
    main.textContent = 'No such page.';
}

window.addEventListener('hashchange', render);
render();
