#!/usr/bin/env node
// Runs a process entry point (`npm start`: workers/main.ts, `npm run worker`: workers/worker.ts)
// as JavaScript that esbuild compiled once and cached under .cache/compiled, instead of
// through tsx: tsx transpiles every module at each start and hooks every module load (on a
// thread of its own), which cost a warm worker about 1.8 s of CPU before it polled
// (bench/worker-start.ts: CPU time at poll, p50, 4.3 s before, 2.4 s compiled).
//
//   node bin/run-compiled.mjs workers/worker.ts [args…]   build when stale, then run
//   node bin/run-compiled.mjs --build workers/main.ts …   only build (install, Dockerfile)
//
// The cache is checked by content: every source file the build read is hashed, with the
// build's own options; a change to any of them (or a new import in one) rebuilds, in well
// under a second. npm packages stay outside the bundle and load from node_modules as usual.
// Each module keeps its own `import.meta.url` (paths next to sources resolve as under tsx)
// and `process.argv[1]` names the entry's source, so an entry's "am I the main module" check holds.
// Plain Node on purpose: esbuild is loaded only to build. When the build fails, the entry
// runs through tsx as before, with a line saying so.
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** Bumped when the build's options change. */
const BUILD_FORMAT = 1;
/** The code is compiled for the Node that runs it: another major version compiles again. */
const NODE_MAJOR = process.versions.node.split('.')[0];
/** Per checkout: the compiled code holds this checkout's absolute source URLs. */
const CACHE_DIR = join(ROOT, '.cache', 'compiled', `${basename(ROOT)}-${createHash('sha256').update(ROOT).digest('hex').slice(0, 10)}`);
const say = (line) => void process.stderr.write(`[compiled] ${line}\n`);

const sha = (bytes) => createHash('sha256').update(bytes).digest('hex');
/** `workers/worker.ts` → `workers_worker`: the entry's manifest and output folders are named after it. */
const nameOf = (entry) => relative(ROOT, entry).replace(/\.ts$/, '').replace(/[^A-Za-z0-9._-]/g, '_');
const manifestOf = (entry) => join(CACHE_DIR, `${nameOf(entry)}.json`);

/** The compiled entry file when every input it was built from is unchanged, else undefined. */
async function fresh(entry) {
  const manifest = await readFile(manifestOf(entry), 'utf8').then(JSON.parse, () => undefined);
  if (!manifest || manifest.format !== BUILD_FORMAT || manifest.entry !== entry || manifest.node !== NODE_MAJOR || typeof manifest.dir !== 'string') return undefined;
  for (const [file, hash] of Object.entries(manifest.inputs)) {
    const now = await readFile(join(ROOT, file)).then(sha, () => undefined);
    if (now !== hash) return undefined;
  }
  const file = join(CACHE_DIR, manifest.dir, 'entry.mjs');
  return (await stat(file).catch(() => undefined)) ? file : undefined;
}

async function build(entry) {
  const esbuild = await import('esbuild');
  const ownUrls = {
    name: 'own-import-meta-url',
    setup(b) {
      b.onLoad({ filter: /\.[cm]?ts$/ }, async (args) => ({
        contents: (await readFile(args.path, 'utf8')).replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href)),
        loader: 'ts',
      }));
    },
  };
  const temp = join(CACHE_DIR, `.${nameOf(entry)}.${process.pid}.${Date.now()}.tmp`);
  const result = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: { entry },
    bundle: true,
    // What is loaded only when needed (tracing's OpenTelemetry exporters) stays in chunks of its own.
    splitting: true,
    packages: 'external',
    platform: 'node',
    format: 'esm',
    target: `node${NODE_MAJOR}`,
    outExtension: { '.js': '.mjs' },
    keepNames: true,
    write: false,
    metafile: true,
    logLevel: 'silent',
    outdir: temp,
    plugins: [ownUrls],
  });
  const inputs = {};
  for (const file of [...Object.keys(result.metafile.inputs), 'tsconfig.json', 'bin/run-compiled.mjs']) {
    inputs[file] = sha(await readFile(join(ROOT, file)));
  }
  const dir = `${nameOf(entry)}-${sha(result.outputFiles.map((f) => `${relative(temp, f.path)}\0${f.hash}`).join('\0')).slice(0, 12)}`;
  // Two starts may build at once: each writes its own folder; the first rename wins, the manifest's rename is atomic.
  await mkdir(temp, { recursive: true });
  await Promise.all(result.outputFiles.map((f) => writeFile(f.path, f.contents)));
  await rename(temp, join(CACHE_DIR, dir)).catch(() => rm(temp, { recursive: true, force: true }));
  await writeFile(`${temp}.json`, JSON.stringify({ format: BUILD_FORMAT, node: NODE_MAJOR, entry, dir, inputs }));
  await rename(`${temp}.json`, manifestOf(entry));
  await removeStale(entry, dir);
  return join(CACHE_DIR, dir, 'entry.mjs');
}

/** Earlier builds of the entry, a day after they were replaced (a process started from one may still load its chunks). */
async function removeStale(entry, current) {
  const prefix = `${nameOf(entry)}-`;
  for (const name of await readdir(CACHE_DIR)) {
    if (!name.startsWith(prefix) || name === current) continue;
    const at = await stat(join(CACHE_DIR, name)).catch(() => undefined);
    if (at && Date.now() - at.mtimeMs > 86_400_000) await rm(join(CACHE_DIR, name), { recursive: true, force: true });
  }
}

/** The compiled entry, built when stale; undefined (after saying why) when it cannot be built. */
async function compiled(entry, fallback) {
  try {
    return (await fresh(entry)) ?? (await build(entry));
  } catch (err) {
    // esbuild's own errors name the file and line.
    const first = err?.errors?.[0];
    const why = first ? `${first.location ? `${first.location.file}:${first.location.line}: ` : ''}${first.text}` : err instanceof Error ? err.message.split('\n')[0] : String(err);
    say(`could not compile ${relative(ROOT, entry)} (${why})${fallback}`);
    return undefined;
  }
}

const args = process.argv.slice(2);
if (args[0] === '--build') {
  const entries = args.slice(1).map((a) => resolve(ROOT, a));
  const started = Date.now();
  const built = await Promise.all(entries.map((e) => compiled(e, '')));
  if (built.some((b) => b === undefined)) process.exitCode = 1;
  else say(`${entries.map((e) => relative(ROOT, e)).join(', ')} ready in ${((Date.now() - started) / 1000).toFixed(1)} s (${CACHE_DIR})`);
} else if (args[0] && !args[0].startsWith('-')) {
  const entry = resolve(ROOT, args[0]);
  const file = await compiled(entry, '; running it through tsx');
  // The entry sees itself as the script being run, as under `tsx <entry>`.
  process.argv.splice(1, 2, entry);
  if (file) {
    await import(pathToFileURL(file).href);
  } else {
    const { register } = await import('tsx/esm/api');
    register();
    await import(pathToFileURL(entry).href);
  }
} else {
  say('usage: node bin/run-compiled.mjs [--build] <entry.ts> [args…]');
  process.exitCode = 2;
}
