// Calls to the broker's REST admin API (docs/http-api.md) from the same origin. With
// aclEnable=true every call carries the ACL account signed in on the login page (#/login) as
// HTTP Basic; the account is kept for this tab only (sessionStorage), and a refused call
// (401: no account) sends the tab to the login page.

export class ApiError extends Error {
    constructor(status, code, message) {
        super(message);
        this.status = status;
        this.code = code;
    }
}

function authHeader() {
    const a = sessionStorage.getItem('apogee.auth');
    return a ? { authorization: 'Basic ' + a } : {};
}

export function account() {
    const a = sessionStorage.getItem('apogee.auth');
    return a ? new TextDecoder().decode(Uint8Array.from(atob(a), (c) => c.charCodeAt(0))).split(':')[0] : '';
}

export async function api(method, path, body) {
    const res = await fetch(path, {
        method,
        headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...authHeader() },
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json = null;
    try {
        json = text ? JSON.parse(text) : null;
    } catch {
        // a plain-text answer (404 of an unknown path)
    }
    if (res.status === 401 && !location.hash.startsWith('#/login')) {
        sessionStorage.setItem('apogee.next', location.hash);
        location.hash = '#/login';
    }
    if (!res.ok) throw new ApiError(res.status, json?.code ?? null, json?.error ?? text.trim());
    return json;
}

// base64 of UTF-8 text (btoa alone takes Latin-1 only).
const b64 = (s) => btoa(String.fromCharCode(...new TextEncoder().encode(s)));

// Checks an account with GET /api/session and keeps it for the tab; throws ApiError when the
// broker refuses it. Returns where to go next.
export async function login(accessKey, secretKey) {
    const cred = b64(`${accessKey}:${secretKey}`);
    const res = await fetch('/api/session', { headers: { authorization: 'Basic ' + cred } });
    const json = await res.json().catch(() => null);
    if (!res.ok || !json?.accessKey) throw new ApiError(res.status, json?.code ?? null, json?.error ?? `HTTP ${res.status}`);
    sessionStorage.setItem('apogee.auth', cred);
    const next = sessionStorage.getItem('apogee.next');
    sessionStorage.removeItem('apogee.next');
    return next && !next.startsWith('#/login') ? next : '#/';
}

export function logout() {
    sessionStorage.removeItem('apogee.auth');
}

export async function getText(path) {
    const res = await fetch(path, { headers: authHeader() });
    const text = await res.text();
    if (!res.ok) throw new ApiError(res.status, null, text.trim());
    return text;
}

export const get = (p) => api('GET', p);
export const post = (p, b) => api('POST', p, b ?? {});
export const put = (p, b) => api('PUT', p, b ?? {});
export const del = (p) => api('DELETE', p);
export const enc = encodeURIComponent;
