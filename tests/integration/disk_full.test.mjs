// Disk full with default settings, on a small tmpfs: `apogee standalone`
// fills it with `apogee bench produce` until the store refuses writes (before
// the disk is full: a reserve is kept), stops cleanly, and must then
//   - pass `apogee check-store` (no torn tail after a clean stop),
//   - start on a disk filled to the last byte, serve every acknowledged
//     message to a consumer and refuse sends with a remark that says why,
//   - let `apogee check-store` scan it while full without faulting,
//   - log a failed topic-table write once per period, not per attempt,
//   - accept sends again once space is freed, without a restart, and write
//     the topic changes made while full (they survive a restart).
//
// Needs root (mount -t tmpfs). Without it the test is skipped with the reason.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { apogeeBin, freePort, runBench as bench, startApogee } from '../lib/proc.mjs';
import { RemotingClient, waitForRoute } from '../lib/remoting.mjs';

function tryMount() {
    const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'apg-diskfull-'));
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=96m', 'tmpfs', mnt], { encoding: 'utf8' });
    if (r.status !== 0) {
        fs.rmSync(mnt, { recursive: true, force: true });
        return { skip: `cannot mount a 96 MiB tmpfs (needs root): ${(r.stderr || r.error?.message || '').trim()}` };
    }
    return { mnt };
}

function umount(mnt) {
    if (spawnSync('umount', [mnt]).status !== 0) spawnSync('umount', ['-l', mnt]);
    fs.rmSync(mnt, { recursive: true, force: true });
}

// Writes zeros to path until the file system is full.
function fillUp(file) {
    const fd = fs.openSync(file, 'w');
    const chunk = Buffer.alloc(1 << 20);
    try {
        for (;;) fs.writeSync(fd, chunk);
    } catch (e) {
        if (e.code !== 'ENOSPC') throw e;
    } finally {
        fs.closeSync(fd);
    }
    const small = Buffer.alloc(4096);
    const fd2 = fs.openSync(`${file}.tail`, 'w');
    try {
        for (;;) fs.writeSync(fd2, small);
    } catch (e) {
        if (e.code !== 'ENOSPC') throw e;
    } finally {
        fs.closeSync(fd2);
    }
}

const m = tryMount();

test('disk full: refuse before full, start read-only on a full disk, resume when space returns', { skip: m.skip, timeout: 180_000 }, async () => {
    const mnt = m.mnt;
    const data = path.join(mnt, 'data');
    const ballast = path.join(mnt, 'ballast');
    let sa = null;
    try {
        // Space to give back later.
        fs.writeFileSync(ballast, Buffer.alloc(24 << 20));
        const nsPort = await freePort();
        const start = () => startApogee('standalone', [], { dir: data, keepDir: true, extraPorts: { namesrvListenPort: nsPort } });
        const ns = `--namesrvAddr=127.0.0.1:${nsPort}`;

        sa = await start();
        await waitForRoute(nsPort);
        const p1 = await bench(['produce', ns, '--topic=DiskFull', '--threads=4', '--size=1024', '--duration=8', '--json']);
        assert.ok(p1.json, p1.out.slice(-3000));
        assert.ok(p1.json.sent > 1000, p1.out.slice(-3000));
        assert.ok(p1.json.failed > 0, `the disk never filled:\n${p1.out.slice(-3000)}`);
        assert.match(p1.out, /writes refused until space frees/);
        const acked = p1.json.sent;
        let r = await sa.stop();
        assert.equal(r.code, 0, `exit after SIGTERM: ${JSON.stringify(r)}\n${sa.output().slice(-3000)}`);
        assert.doesNotMatch(sa.output(), /torn tail|failed to start/);

        const chk = spawnSync(apogeeBin(), ['check-store', `--storePathRootDir=${data}`], { encoding: 'utf8' });
        assert.equal(chk.status, 0, `check-store after a clean stop: ${chk.stdout.slice(-3000)}${chk.stderr}`);

        // Now fill the disk to the last byte and start again.
        fillUp(path.join(mnt, 'filler'));
        sa = await start();
        await waitForRoute(nsPort);
        await sa.waitOutput(/ready in/);
        assert.doesNotMatch(sa.output(), /torn tail/);
        const refused = await bench(['produce', ns, '--topic=DiskFull', '--threads=1', '--messages=5']);
        assert.match(refused.out, /writes refused until space frees/, refused.out.slice(-3000));
        // The WARN line names the topic alone (the request's topic is not NUL-terminated).
        assert.match(sa.output(), /refused send to DiskFull from /, sa.output().slice(-3000));
        const c1 = await bench(['consume', ns, '--topic=DiskFull', '--group=DiskFullReader1', '--json']);
        assert.ok(c1.json, c1.out.slice(-3000));
        assert.ok(c1.json.received >= acked, `acknowledged ${acked}, readable ${c1.json.received}`);

        // check-store on the full disk reads only written data: the unwritten
        // (sparse) part of a segment would fault (SIGBUS) when read through a
        // file mapping. Zero-filled space after the records is turned into
        // holes first (fallocate --dig-holes), and the space that frees is
        // filled again. The running broker holds the lock: WARN (1) is fine.
        const cl = path.join(data, 'commitlog');
        for (const f of fs.readdirSync(cl)) spawnSync('fallocate', ['--dig-holes', path.join(cl, f)]);
        fillUp(path.join(mnt, 'filler2'));
        const chkFull = spawnSync(apogeeBin(), ['check-store', `--storePathRootDir=${data}`], { encoding: 'utf8' });
        assert.equal(chkFull.signal, null, `check-store on the full disk died: ${chkFull.signal}\n${chkFull.stdout.slice(-3000)}${chkFull.stderr}`);
        assert.ok(chkFull.status === 0 || chkFull.status === 1, `check-store on the full disk: ${chkFull.status}\n${chkFull.stdout.slice(-3000)}${chkFull.stderr}`);

        // Topic changes on the full disk: each create is answered with an
        // error (not on disk), the table writer logs one ERROR line per
        // period, not one per attempt, and keeps the changes to retry.
        const br = await RemotingClient.connect(sa.port);
        let refusedCreates = 0;
        for (let i = 0; i < 40; i++) {
            const cr = await br.request(17, { topic: `FullTopic${i}`, readQueueNums: '1', writeQueueNums: '1', perm: '6' });
            if (cr.code !== 0) refusedCreates++;
        }
        br.close();
        assert.ok(refusedCreates >= 2, `only ${refusedCreates} topic creates failed on the full disk`);
        const failLines = sa.output().match(/persisting topics failed/g) ?? [];
        // (40 failed attempts within one 60 s period; 2 if the machine is slow.)
        assert.ok(failLines.length >= 1 && failLines.length <= 2, `${failLines.length} lines:\n${sa.output().slice(-3000)}`);

        // Space returns: writes resume within a few seconds, no restart.
        fs.rmSync(path.join(mnt, 'filler'));
        fs.rmSync(path.join(mnt, 'filler.tail'));
        fs.rmSync(path.join(mnt, 'filler2'));
        fs.rmSync(path.join(mnt, 'filler2.tail'));
        fs.rmSync(ballast);
        let p2 = null;
        for (let i = 0; i < 20; i++) {
            await new Promise((res) => setTimeout(res, 500));
            p2 = await bench(['produce', ns, '--topic=DiskFull', '--threads=1', '--messages=100', '--json']);
            if (p2.json && p2.json.failed === 0) break;
        }
        assert.ok(p2.json && p2.json.failed === 0 && p2.json.sent === 100, p2.out.slice(-3000));
        r = await sa.stop();
        assert.equal(r.code, 0, `exit after SIGTERM: ${JSON.stringify(r)}\n${sa.output().slice(-3000)}`);
        // The periodic retry wrote the topics changed on the full disk, and
        // one created now: all there after a restart.
        sa = await start();
        const br2 = await RemotingClient.connect(sa.port);
        const topics = JSON.parse((await br2.request(21, {})).body.toString()).topicConfigTable;
        br2.close();
        for (let i = 0; i < 40; i++) assert.ok(topics[`FullTopic${i}`], `FullTopic${i} lost`);
        r = await sa.stop();
        assert.equal(r.code, 0, `exit after SIGTERM: ${JSON.stringify(r)}\n${sa.output().slice(-3000)}`);
        const chk2 = spawnSync(apogeeBin(), ['check-store', `--storePathRootDir=${data}`], { encoding: 'utf8' });
        assert.equal(chk2.status, 0, `check-store at the end: ${chk2.stdout.slice(-3000)}${chk2.stderr}`);

        // The records at the end of the log sit in a hole, on a full disk:
        // check-store reads the hole as zeros (a torn tail) instead of faulting.
        const tail = chk2.stdout.match(/commitlog\/(\d+): \d+ record\(s\), end of the log at offset (\d+)/);
        assert.ok(tail, chk2.stdout.slice(-3000));
        const seg = path.join(cl, tail[1]);
        const from = Math.floor((Number(tail[2]) - 1) / 4096) * 4096;
        const pr = spawnSync('fallocate', ['--punch-hole', '-o', String(from), '-l', String(fs.statSync(seg).size - from), seg], { encoding: 'utf8' });
        assert.equal(pr.status, 0, pr.stderr);
        fillUp(path.join(mnt, 'filler3'));
        const chk3 = spawnSync(apogeeBin(), ['check-store', `--storePathRootDir=${data}`], { encoding: 'utf8' });
        assert.equal(chk3.signal, null, `check-store over a hole on the full disk died: ${chk3.signal}\n${chk3.stdout.slice(-3000)}${chk3.stderr}`);
        assert.ok(chk3.status >= 0 && chk3.status <= 2, `check-store over a hole: ${chk3.status}\n${chk3.stdout.slice(-3000)}${chk3.stderr}`);
        console.log(`acknowledged ${acked} before the disk filled (${p1.json.failed} refused), ${c1.json.received} readable on the full disk, 100 more after space returned`);
    } finally {
        await sa?.stop('SIGKILL');
        umount(mnt);
    }
});
