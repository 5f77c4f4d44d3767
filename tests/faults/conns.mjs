// Holds many connections to a broker for scripts/faults.sh while it runs a load.
//   node tests/faults/conns.mjs PORT MODE COUNT
// MODE idle: connect and send nothing. MODE slow: half announce a 16 MiB frame,
// send 1 KiB of it and then trickle one byte a second; the other half send half
// of a small request frame and stall (the frame shapes of
// tests/integration/slow_peers.test.mjs). Prints "opened=N failed=F" once all
// were tried, and on SIGTERM "closed_by_broker=C of N" before it exits.
import net from 'node:net';

const [port, mode, count] = [Number(process.argv[2]), process.argv[3], Number(process.argv[4])];
const socks = [];
let failed = 0;
let closedByBroker = 0;

function open() {
    return new Promise((resolve) => {
        const s = net.connect({ port, host: '127.0.0.1' });
        s.once('connect', () => resolve(s));
        s.once('error', () => {
            failed++;
            resolve(null);
        });
    });
}

function frame(i) {
    if (i % 2 === 0) {
        const b = Buffer.alloc(8 + 1024, 0x61);
        b.writeUInt32BE(16 * 1024 * 1024, 0);
        b.writeUInt32BE(64, 4);
        return b;
    }
    const hdr = Buffer.from(JSON.stringify({ code: 30, flag: 0, language: 'JAVA', opaque: i, serializeTypeCurrentRPC: 'JSON', version: 0 }));
    const b = Buffer.alloc(8 + hdr.length);
    b.writeUInt32BE(4 + hdr.length, 0);
    b.writeUInt32BE(hdr.length, 4);
    hdr.copy(b, 8);
    return b.subarray(0, 8 + (hdr.length >> 1));
}

// Connect in batches: 10,000 at once overflow the listen backlog.
for (let i = 0; i < count; i += 200) {
    const batch = [];
    for (let j = i; j < Math.min(count, i + 200); j++) batch.push(open());
    for (const s of await Promise.all(batch)) {
        if (!s) continue;
        s.on('error', () => {});
        s.once('close', () => closedByBroker++);
        if (mode === 'slow') s.write(frame(socks.length));
        socks.push(s);
    }
}
console.log(`opened=${socks.length} failed=${failed} mode=${mode}`);

const trickle = mode === 'slow'
    ? setInterval(() => {
        for (let i = 0; i < socks.length; i += 2) if (!socks[i].destroyed) socks[i].write('a');
    }, 1000)
    : null;

process.on('SIGTERM', () => {
    clearInterval(trickle);
    console.log(`closed_by_broker=${closedByBroker} of ${socks.length}`);
    for (const s of socks) s.destroy();
    process.exit(0);
});
