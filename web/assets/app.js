// The console's entry: a hash router (#/topics, #/group/<name>, ...) that renders one page
// into <main>. Pages stop their timers when the route changes (the returned cleanup).
import { account, get, logout } from './api.js';
import { h } from './ui.js';
import { overview } from './overview.js';
import { topicsPage, topicPage } from './topics.js';
import { groupsPage, groupPage } from './groups.js';
import { messagesPage, dlqPage } from './messages.js';

const routes = [
    [/^#?\/?$/, 'overview', () => overview],
    [/^#\/cluster$/, 'cluster', async () => (await import('./cluster.js')).clusterPage],
    [/^#\/topics$/, 'topics', () => topicsPage],
    [/^#\/topic\/(.+)$/, 'topics', () => topicPage],
    [/^#\/groups$/, 'groups', () => groupsPage],
    [/^#\/group\/(.+)$/, 'groups', () => groupPage],
    [/^#\/messages(?:\?(.*))?$/, 'messages', () => messagesPage],
    [/^#\/dlq(?:\/(.+))?$/, 'dlq', () => dlqPage],
    [/^#\/login$/, 'login', async () => (await import('./login.js')).loginPage],
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
        showWho();
        return;
    }
    main.textContent = 'No such page.';
}

// The header's account: who is signed in with a Log out button, or a Log in link when the
// broker asks for an account (GET /api/session, once).
let aclOn = false;
function showWho() {
    const who = document.getElementById('who');
    if (account()) {
        who.replaceChildren(`signed in as ${account()} `, h('button', { class: 'plain', id: 'logout', onclick: () => {
            logout();
            location.hash = '#/login';
            showWho();
        } }, 'Log out'));
    } else {
        who.replaceChildren(aclOn ? h('a', { href: '#/login', id: 'login-link' }, 'Log in') : '');
    }
}

window.addEventListener('hashchange', render);
render();
get('/api/session').then((s) => {
    aclOn = !!s?.acl;
    showWho();
}, () => {});
