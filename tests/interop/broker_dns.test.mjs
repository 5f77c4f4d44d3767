// brokerIP1 as a DNS name: the broker advertises the name to the NameServer and stores the
// address it resolved to (once, at start) in STOREHOST / offset msgIds; a name that does not
// resolve stops the start with a message saying so.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startApogee, freePort } from '../lib/proc.mjs';
import { RemotingClient } from '../lib/remoting.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('brokerIP1=localhost: the name is advertised, 127.0.0.1 is in the msgId', async () => {
    const nsPort = await freePort();
    const srv = await startApogee('standalone', ['--brokerIP1=localhost'], {
        extraPorts: { namesrvListenPort: nsPort },
    });
    const ns = await RemotingClient.connect(nsPort);
    const br = await RemotingClient.connect(srv.port);
    try {
        let route;
        for (let i = 0; i < 100; i++) {
            route = await ns.request(105, { topic: 'TBW102' });
            if (route.code === 0) break;
            await sleep(50);
        }
        assert.equal(route.code, 0, route.remark);
        const addrs = JSON.parse(route.body.toString()).brokerDatas[0].brokerAddrs;
        assert.deepEqual(Object.values(addrs), [`localhost:${srv.port}`]);

        const r = await br.request(310, {
            a: 'PG_DNS', b: 'TBW102DNS', c: 'TBW102', d: '4', e: '0', f: '0',
            g: String(Date.now()), h: '0', i: '', j: '0', k: 'false',
        }, Buffer.from('dns'));
        assert.equal(r.code, 0, r.remark);
        const port = srv.port.toString(16).toUpperCase().padStart(8, '0');
        assert.match(r.ext.msgId, new RegExp(`^7F000001${port}[0-9A-F]{16}$`));
        await srv.waitOutput(/brokerIP1 localhost resolves to 127\.0\.0\.1/);
    } finally {
        await ns.close();
        await br.close();
        await srv.stop();
    }
});

test('a brokerIP1 name that does not resolve refuses to start, saying why', async () => {
    const nsPort = await freePort();
    await assert.rejects(
        startApogee('standalone', ['--brokerIP1=no-such-host.invalid'], {
            extraPorts: { namesrvListenPort: nsPort }, startTimeoutMs: 5000,
        }),
        /brokerIP1=no-such-host\.invalid does not resolve to an IPv4 address/);
});
