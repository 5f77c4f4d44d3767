// Running the C client's example programs (built into <build>/examples next to APOGEE_BIN,
// or APOGEE_EXAMPLES_DIR) from node tests.
import { spawn } from 'node:child_process';
import path from 'node:path';

import { apogeeBin } from './proc.mjs';

export const exDir = process.env.APOGEE_EXAMPLES_DIR || path.join(path.dirname(apogeeBin()), 'examples');

// A long-running example: collects stdout lines; stop() sends SIGTERM and waits (SIGKILL
// after 10 s). recv() gives the fields of every "RECV ..." line, queues() the count of the
// last "QUEUES n ..." line (-1 before one), clientId() the id of the "STARTED id" line.
export function startExample(name, args) {
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
    st.clientId = () => st.lines.find((l) => l.startsWith('STARTED '))?.split(' ')[1];
    return st;
}
