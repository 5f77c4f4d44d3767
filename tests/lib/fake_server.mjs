#!/usr/bin/env node
// A stand-in for the apogee binary in the harness's own tests (harness.test.mjs): listens on
// --listenPort=N on 127.0.0.1 and, on SIGTERM, exits with FAKE_EXIT_CODE (default 0), or
// kills itself with FAKE_EXIT_SIGNAL, or ignores the signal when FAKE_IGNORE_TERM=1.
import net from 'node:net';

const arg = process.argv.find((a) => a.startsWith('--listenPort='));
const port = Number(arg.split('=')[1]);
const srv = net.createServer((s) => s.destroy());
srv.listen(port, '127.0.0.1');
process.on('SIGTERM', () => {
    if (process.env.FAKE_IGNORE_TERM === '1') return;
    if (process.env.FAKE_EXIT_SIGNAL) process.kill(process.pid, process.env.FAKE_EXIT_SIGNAL);
    else process.exit(Number(process.env.FAKE_EXIT_CODE ?? 0));
});
