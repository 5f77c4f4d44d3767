// Crash test for the store: kill -9 a SYNC_FLUSH loader at random moments,
// restart, and check that every acknowledged put survived at its queue
// offset, that no payload is served twice, and that the consume queues match
// the commit log (the verify mode of store_crashload checks the latter).
//
// After each kill, `apogee check-store` must find nothing worse than what
// crash recovery repairs (exit 0 or 1, no ERROR); after the verify pass, which
// recovers and closes the store cleanly, it must find the store healthy.
//
// APOGEE_BIN points at build/apogee; store_crashload is built next to it.
// Cycles: 3 by default, 20 with APOGEE_TEST_LONG=1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const bin = process.env.APOGEE_BIN || path.resolve('build/apogee');
const loader = path.join(path.dirname(bin), 'store_crashload');
const cycles = process.env.APOGEE_TEST_LONG === '1' ? 20 : 3;

function runLoadAndKill(dir, ms) {
  return new Promise((resolve, reject) => {
    const p = spawn(loader, ['load', dir, '8'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let timer = null;
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => {
      err += d;
      if (!timer && err.includes('READY')) timer = setTimeout(() => p.kill('SIGKILL'), ms);
    });
    p.on('error', reject);
    p.on('close', (code, sig) => {
      if (sig !== 'SIGKILL') reject(new Error(`loader exited ${code} ${sig}: ${err}`));
      else resolve(out);
    });
  });
}

test('store survives kill -9 under SYNC_FLUSH', { timeout: 600_000 }, async () => {
  assert.ok(existsSync(loader), `missing ${loader}`);
  const dir = mkdtempSync(path.join(tmpdir(), 'apg-crash-'));
  const acked = new Map(); // id -> "qid qoff"
  try {
    for (let c = 0; c < cycles; c++) {
      const ms = 200 + Math.floor(Math.random() * 1300);
      const out = await runLoadAndKill(dir, ms);
      for (const line of out.split('\n')) {
        // A line cut by the kill has no newline and is not counted.
        const m = /^ACK (\d+) (\d+) (\S+)$/.exec(line);
        if (m) acked.set(m[3], `${m[1]} ${m[2]}`);
      }
      const chk = spawnSync(bin, ['check-store', `--storePathRootDir=${dir}`], { encoding: 'utf8' });
      assert.ok(chk.status === 0 || chk.status === 1,
        `check-store after the kill in cycle ${c}: exit ${chk.status}: ${chk.stdout.slice(-3000)} ${chk.stderr}`);
      assert.ok(!/^ERROR/m.test(chk.stdout), chk.stdout.slice(-3000));
      const v = spawnSync(loader, ['verify', dir], { encoding: 'utf8', maxBuffer: 1 << 30 });
      assert.equal(v.status, 0, `verify failed after cycle ${c}: ${v.stdout.slice(-2000)} ${v.stderr.slice(-2000)}`);
      const served = new Map();
      for (const line of v.stdout.split('\n')) {
        const m = /^REC (\d+) (\d+) (\S+) (\d+)$/.exec(line);
        if (!m) continue;
        const where = `${m[1]} ${m[2]}`;
        assert.ok(!served.has(m[3]), `payload ${m[3]} served twice: ${served.get(m[3])} and ${where}`);
        served.set(m[3], where);
      }
      let lost = 0;
      for (const [id, where] of acked) {
        const got = served.get(id);
        if (got !== where) {
          lost++;
          if (lost < 5) console.error(`acknowledged ${id} at ${where}, served at ${got}`);
        }
      }
      assert.equal(lost, 0, `acknowledged-but-lost after cycle ${c}`);
      const healthy = spawnSync(bin, ['check-store', `--storePathRootDir=${dir}`], { encoding: 'utf8' });
      assert.equal(healthy.status, 0, `check-store after a clean close: ${healthy.stdout.slice(-3000)}`);
      console.log(`cycle ${c}: killed after ${ms} ms, ${acked.size} acknowledged, ${served.size} stored`);
    }
    assert.ok(acked.size > 0, 'the loader acknowledged nothing');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
