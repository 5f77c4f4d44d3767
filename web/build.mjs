// Builds the web console into a directory of the build tree: every .js under assets/ is
// minified by esbuild one file at a time and stays an ES module under its own name (the
// imports between modules, the dynamic imports of the pages loaded on first visit and
// index.html's <link rel=modulepreload> list keep working unchanged), every .css is
// minified, and index.html and any other file are copied as they are.
// cmake/embed_web.cmake then turns that directory into the C source compiled into `apogee`.
//   node build.mjs <outdir>        (npm run build -- <outdir>; default ../build/web)
// The output directory is emptied first, so a file removed from web/ is not served from an
// old build; a directory inside web/ is refused: the build never writes into the sources.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const src = path.dirname(fileURLToPath(import.meta.url));
const out = path.resolve(process.argv[2] ?? path.join(src, '..', 'build', 'web'));
const rel = path.relative(src, out);
if (rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel))) {
    console.error(`web/build.mjs: ${out} is inside web/; give a directory of the build tree`);
    process.exit(2);
}

function walk(dir) { // files under dir, relative to src, sorted
    return fs.readdirSync(path.join(src, dir), { withFileTypes: true })
        .flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]))
        .sort();
}
const files = ['index.html', ...walk('assets')];
const minified = files.filter((f) => f.endsWith('.js') || f.endsWith('.css'));

fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });
await esbuild.build({
    absWorkingDir: src,
    entryPoints: minified,
    outbase: src,
    outdir: out,
    bundle: false,
    format: 'esm',
    minify: true,
    charset: 'utf8', // served as UTF-8; keeps "…" one character, not \u2026
    logLevel: 'warning',
});
for (const f of files.filter((f) => !minified.includes(f))) {
    fs.mkdirSync(path.dirname(path.join(out, f)), { recursive: true });
    fs.copyFileSync(path.join(src, f), path.join(out, f));
}
const size = (dir) => files.reduce((s, f) => s + fs.statSync(path.join(dir, f)).size, 0);
console.log(`web/build.mjs: ${files.length} files, ${size(src)} -> ${size(out)} bytes in ${out}`);
