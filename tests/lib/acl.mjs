// RocketMQ plain-ACL signing for raw remoting tests (what AclClientRPCHook and ali-ons do):
//
//   signExt(ext, body, {ak, sk}) -> ext plus AccessKey and Signature, where Signature is
//       Base64(HMAC-SHA1(sk, values of every ext field but Signature, in key order, then body))
//   signedRequest(client, code, ext, body, cred, opts) -> client.request with a signed header
//       (cred null: unsigned)
//   writeAclFile(dir, yaml) writes <dir>/conf/plain_acl.yml
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export function signExt(ext, body, cred) {
    const all = { ...ext, AccessKey: cred.ak };
    let content = '';
    for (const k of Object.keys(all).sort()) if (k !== 'Signature') content += String(all[k]);
    const bodyBuf = body == null ? Buffer.alloc(0) : Buffer.isBuffer(body) ? body
        : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const mac = crypto.createHmac('sha1', cred.sk);
    mac.update(Buffer.from(content, 'utf8'));
    mac.update(bodyBuf);
    return { ...all, Signature: mac.digest('base64') };
}

export function signedRequest(client, code, ext = {}, body = null, cred = null, opts = {}) {
    return client.request(code, cred ? signExt(ext, body, cred) : ext, body, opts);
}

export function writeAclFile(dir, yaml) {
    fs.mkdirSync(path.join(dir, 'conf'), { recursive: true });
    const p = path.join(dir, 'conf', 'plain_acl.yml');
    fs.writeFileSync(p, yaml);
    return p;
}
