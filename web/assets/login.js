// The login page (#/login), for brokers with aclEnable=true: an ACL account's accessKey and
// secretKey, checked with GET /api/session before they are kept for the tab (sessionStorage)
// and sent as HTTP Basic on each /api/ call. A refused account is reported on the page.
import { login } from './api.js';
import { h, field } from './ui.js';

export async function loginPage(main) {
    const ak = h('input', { name: 'accessKey', autocomplete: 'username', required: true });
    const sk = h('input', { name: 'secretKey', type: 'password', autocomplete: 'current-password', required: true });
    const error = h('p', { id: 'login-error', class: 'err', role: 'alert' });
    const form = h('form', { class: 'row', id: 'login-form' }, field('AccessKey', ak), field('SecretKey', sk),
        h('button', { type: 'submit' }, 'Log in'));
    main.append(h('h1', {}, 'Log in'), h('section', { class: 'card' },
        h('p', { class: 'muted' }, 'This broker checks writes against its ACL accounts (aclEnable=true).'), form, error));
    form.addEventListener('submit', async (e) => {
        e.preventDefault();
        error.textContent = '';
        try {
            location.hash = await login(ak.value.trim(), sk.value);
        } catch (err) {
            error.textContent = err.status === 403 ? `Refused: ${err.message}` : err.message;
        }
    });
    ak.focus();
}
