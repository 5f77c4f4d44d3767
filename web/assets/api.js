// Calls to the broker's REST admin API (docs/http-api.md) from the same origin. With
// aclEnable=true a refused call (401) asks for an ACL account once and retries with
// HTTP Basic; the account is kept for this tab only (sessionStorage).

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
    return a ? atob(a).split(':')[0] : '';
}

export async function api(method, path, body) {
    for (let attempt = 0; ; attempt++) {
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
        if (res.status === 401 && attempt === 0) {
            const ak = prompt('This broker has aclEnable=true. AccessKey:');
            const sk = ak ? prompt('SecretKey:') : null;
            if (ak && sk) {
                sessionStorage.setItem('apogee.auth', btoa(`${ak}:${sk}`));
                continue;
            }
        }
        if (!res.ok) throw new ApiError(res.status, json?.code ?? null, json?.error ?? text.trim());
        return json;
    }
}

// GET of a non-JSON answer (the DLQ export's JSON lines) as text, with the account.
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
