// `npm run bench`: the benchmarks (the four of issue 25 — engine floor, paced drain, storm, idle and wake —
// then submit latency, logins and the worker's start-up), one after the other, each in a process
// of its own with its own Temporal server and worker. Each prints one JSON
// document on stdout; progress goes to stderr. Exits non-zero if any failed.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { PROJECT_ROOT } from './rig';
import { note } from './report';

const ALL = ['engine-floor', 'paced-drain', 'storm', 'idle', 'latency', 'logins', 'worker-start'] as const;
/** Run only when named in BENCH_ONLY: the unpaced fleet drain of issue 7, whose "1000 in 20 s" rewards the burst pacing avoids. */
const ON_REQUEST = ['fleet'] as const;
const only = (process.env.BENCH_ONLY ?? '').split(',').filter(Boolean);
const chosen = only.length > 0 ? [...ALL, ...ON_REQUEST].filter((name) => only.includes(name)) : [...ALL];

const failed: string[] = [];
for (const name of chosen) {
  const started = Date.now();
  note('run', `${name}: starting`);
  const code = await new Promise<number>((resolve) => {
    const child = spawn(process.execPath, [...process.execArgv, join(PROJECT_ROOT, 'bench', `${name}.ts`)], { stdio: ['inherit', 'pipe', 'inherit'] });
    // Only the JSON documents go to stdout (a dev server's banner, say, goes to stderr): `npm run -s bench > out.jsonl` is one document per line.
    createInterface({ input: child.stdout }).on('line', (line) => (line.startsWith('{"benchmark"') ? process.stdout : process.stderr).write(`${line}\n`));
    child.once('close', (c, signal) => resolve(c ?? (signal ? 1 : 0)));
  });
  note('run', `${name}: ${code === 0 ? 'done' : `failed (exit ${code})`} in ${Math.round((Date.now() - started) / 1000)} s`);
  if (code !== 0) failed.push(name);
}
if (failed.length > 0) note('run', `failed: ${failed.join(', ')}`);
process.exit(failed.length > 0 ? 1 : 0);
