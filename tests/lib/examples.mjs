// Running the C client's example programs (examples/*.c, built into
// <build>/examples next to APOGEE_BIN) from node suites: one-shot runs,
// long-running ones whose stdout lines are collected, and a poll helper.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { apogeeBin } from './proc.mjs';

export const exDir = process.env.APOGEE_EXAMPLES_DIR || path.join(path.dirname(apogeeBin()), 'examples');
export const skipExamples = fs.existsSync(path.join(exDir, 'push_consumer')) ? false : `no examples in ${exDir}`;
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function run(name, args, timeout = 30000) {
    const r = spawnSync(path.join(exDir, name), args, { encoding: 'utf8', timeout });
    return { code: r.status, out: `${r.stdout}${r.stderr}`, lines: r.stdout.split('\n') };
}

export function done(r) {
    const m = /DONE (?:sent|received)=(\d+)(?: failed=(\d+))?/.exec(r.out);
    assert.ok(m, `no DONE line:\n${r.out}`);
    return { n: Number(m[1]), failed: Number(m[2] ?? 0) };
}

// A long-running example: collects stdout lines; stop() sends SIGTERM and waits.
export function start(name, args) {
    const proc = spawn(path.join(exDir, name), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const st = { proc, out: '', lines: [] };
    let part = '';
    proc.stdout.on('data', (d) => {
        st.out += d;
        part += d;
        const ls = part.split('\n');
        part = ls.pop();
        st.lines.push(...ls);
    });
    proc.stderr.on('data', (d) => (st.out += d));
    st.exited = new Promise((res) => proc.once('exit', (code) => res(code)));
    st.stop = async () => {
        if (proc.exitCode === null) proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 10000);
        const code = await st.exited;
        clearTimeout(t);
        return code;
    };
    st.recv = () => st.lines.filter((l) => l.startsWith('RECV ')).map((l) => l.split(' '));
    st.queues = () => {
        const q = st.lines.filter((l) => l.startsWith('QUEUES '));
        return q.length ? Number(q[q.length - 1].split(' ')[1]) : -1;
    };
    // --trace lines: { queue, t0, t1, bodies } (wall-clock microseconds).
    st.spans = () => st.lines.filter((l) => l.startsWith('SPAN ')).map((l) => {
        const [, q, t0, t1, bodies] = l.split(' ');
        return { queue: Number(q), t0: Number(t0), t1: Number(t1), bodies: bodies ? bodies.split(',') : [] };
    });
    st.clientId = () => st.lines.find((l) => l.startsWith('STARTED '))?.split(' ')[1];
    return st;
}

export const startExample = start;

export async function until(pred, timeoutMs, what) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
        if (pred()) return;
        await sleep(50);
    }
    throw new Error(`timed out waiting for ${what}`);
}
