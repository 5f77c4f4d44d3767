// Shared helpers for the Java oracle tests (not a test file itself): the Apache RocketMQ
// 4.9.8 Java client and mqadmin, built by scripts/rocketmq-ref.sh into the directory named
// by APOGEE_ROCKETMQ_REF, drive `apogee standalone`.
//
//   javaSkip                      false, or why the suites skip (APOGEE_ROCKETMQ_REF unset)
//   await startStandalone(args)   apogee standalone on free ports -> {srv, ns}
//   await runJava(cls, args, ms, jvm)  compiles tests/interop/java/*.java once (javac into a temp
//                                 dir) and runs class cls -> {code, out, err, result}; result
//                                 holds the program's "RESULT name=value" lines; jvm: extra
//                                 JVM options (-Dtls.enable=true ...)
//   await mqadmin(ns, args, ms, home)  runs mqadmin (MQAdminStartup) with -n ns -> {code, out, err};
//                                 home: the ROCKETMQ_HOME to use (default the build's)
//   toolsHome(dir, cred)          makes dir a ROCKETMQ_HOME whose conf/tools.yml holds
//                                 cred {ak, sk}, the account mqadmin signs with -> dir
//   spawnJava(cls, args)          a long-running program; its stdin closing ends it
//
// A set APOGEE_ROCKETMQ_REF without a usable build fails the tests instead of skipping them.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startApogee, freePort } from '../lib/proc.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const refDir = process.env.APOGEE_ROCKETMQ_REF || '';
export const javaSkip = refDir ? false :
    'APOGEE_ROCKETMQ_REF is not set (scripts/rocketmq-ref.sh builds the Java reference client)';

let classpath = null;
let scratch = null;

function setup() {
    if (classpath) return;
    const cpFile = path.join(refDir, 'classpath');
    if (!fs.existsSync(cpFile)) throw new Error(`${cpFile} missing: run scripts/rocketmq-ref.sh`);
    const refCp = fs.readFileSync(cpFile, 'utf8').trim();
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'apogee-java-'));
    process.on('exit', () => fs.rmSync(scratch, { recursive: true, force: true }));
    const classes = path.join(scratch, 'classes');
    const srcDir = path.join(here, 'java');
    const sources = fs.readdirSync(srcDir).filter((f) => f.endsWith('.java'))
        .map((f) => path.join(srcDir, f));
    execFileSync('javac', ['-nowarn', '-XDsuppressNotes', '-encoding', 'UTF-8', '-d', classes,
        '-cp', refCp, ...sources], { stdio: ['ignore', 'pipe', 'pipe'] });
    classpath = `${classes}:${refCp}`;
}

function javaArgv(cls, args, jvm = []) {
    setup();
    return [...jvm, '-Xmx256m', `-Drocketmq.client.logRoot=${path.join(scratch, 'logs')}`,
        '-Drocketmq.client.logLevel=WARN', '-cp', classpath, cls, ...args];
}

// The programs run in the scratch directory: some mqadmin commands write files into the
// working directory (consumerStatus its running-info dump).
function javaOpts(stdin, home = path.join(refDir, 'home')) {
    return { cwd: scratch, env: { ...process.env, ROCKETMQ_HOME: home }, stdio: [stdin, 'pipe', 'pipe'] };
}

function collect(child, ms, what) {
    return new Promise((resolve, reject) => {
        let out = '';
        let err = '';
        child.stdout.on('data', (d) => { out += d; });
        child.stderr.on('data', (d) => { err += d; });
        const timer = setTimeout(() => {
            child.kill('SIGKILL');
            reject(new Error(`${what} timed out after ${ms} ms\n${out}\n${err}`));
        }, ms);
        child.on('error', reject);
        child.on('close', (code) => {
            clearTimeout(timer);
            resolve({ code, out, err });
        });
    });
}

export async function runJava(cls, args, ms = 120000, jvm = []) {
    const child = spawn('java', javaArgv(cls, args, jvm), javaOpts('ignore'));
    const r = await collect(child, ms, cls);
    r.result = {};
    for (const m of r.out.matchAll(/^RESULT ([^=]+)=(.*)$/gm)) r.result[m[1]] = m[2];
    return r;
}

export function spawnJava(cls, args) {
    return spawn('java', javaArgv(cls, args), javaOpts('pipe'));
}

export function mqadmin(ns, args, ms = 60000, home = undefined) {
    const child = spawn('java', javaArgv('org.apache.rocketmq.tools.command.MQAdminStartup',
        [...args, '-n', ns]), javaOpts('ignore', home));
    return collect(child, ms, `mqadmin ${args.join(' ')}`);
}

// mqadmin signs its requests with the accessKey and secretKey of
// ${ROCKETMQ_HOME}/conf/tools.yml when that file has both (AclUtils.getAclRPCHook).
export function toolsHome(dir, cred) {
    const conf = path.join(dir, 'conf');
    fs.mkdirSync(conf, { recursive: true });
    fs.copyFileSync(path.join(refDir, 'home', 'conf', 'logback_tools.xml'), path.join(conf, 'logback_tools.xml'));
    fs.writeFileSync(path.join(conf, 'tools.yml'), `accessKey: ${cred.ak}\nsecretKey: ${cred.sk}\n`);
    return dir;
}

export async function startStandalone(args = []) {
    const nsPort = await freePort();
    const srv = await startApogee('standalone', args, { extraPorts: { namesrvListenPort: nsPort } });
    return { srv, ns: `127.0.0.1:${nsPort}`, broker: `127.0.0.1:${srv.port}` };
}
