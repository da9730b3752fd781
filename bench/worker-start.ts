// Time from starting the worker process (`npm run worker`, a fresh Node process) to
// polling: its shared workflow queue and its host's activity queue, as the server sees
// the pollers. The workflow bundle comes from .cache/workflow-bundles (prebuilt at install
// or by the first start), so a warm start should not webpack. Prints one JSON document.
//
// Two ways to launch, alternated start by start so both see the same machine load:
// `compiled` is what `npm run worker` runs (bin/run-compiled.mjs: JavaScript esbuild compiled
// once and cached), `tsx` how it ran before (TypeScript transpiled at every start). Besides
// the wall time, the process's own CPU time at the moment it polls (user + system, all its
// threads, from /proc): on a shared machine the wall time follows the neighbours, this does not.
// BENCH_WORKER_MODES=compiled runs only one of them. BENCH_WORKER_BASELINE_DIR=<another checkout>
// (`git archive <commit> | tar -x -C dir`, with its node_modules) adds mode `baseline`: that
// checkout's worker as its own `npm run worker` ran it (tsx), for a before/after on one machine.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { hostTaskQueue } from '../common/slot';
import { startDevServer } from '../workers/dev-server';
import { obtainTemporalCli } from '../workers/temporal-binaries';
import { distribution, emit, machine, note } from './report';
import { param, PROJECT_ROOT, sleep } from './rig';

const NAME = 'worker-start';
const WORKFLOW_QUEUE = 1;
const ACTIVITY_QUEUE = 2;
const starts = param('BENCH_WORKER_STARTS', 5);
const LAUNCHES = {
  compiled: ['bin/run-compiled.mjs', 'workers/worker.ts'],
  tsx: ['--import', 'tsx', 'workers/worker.ts'],
  baseline: ['--import', 'tsx', 'workers/worker.ts'],
} as const;
type Mode = keyof typeof LAUNCHES;
const baselineDir = process.env.BENCH_WORKER_BASELINE_DIR;
const modes = (process.env.BENCH_WORKER_MODES ?? `compiled,tsx${baselineDir ? ',baseline' : ''}`).split(',').map((m) => m.trim()) as Mode[];
for (const m of modes) if (!(m in LAUNCHES)) throw new Error(`BENCH_WORKER_MODES: unknown mode ${JSON.stringify(m)} (compiled, tsx, baseline)`);
if (modes.includes('baseline') && !baselineDir) throw new Error('mode baseline needs BENCH_WORKER_BASELINE_DIR (a checkout of the commit to compare with)');
const cwdOf = (mode: Mode): string => (mode === 'baseline' ? (baselineDir as string) : PROJECT_ROOT);

/** CPU time of a live process and all its threads so far, ms (Linux; undefined elsewhere). */
async function cpuMsOf(pid: number): Promise<number | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  const fields = stat?.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (!fields) return undefined;
  const ticks = Number(fields[11]) + Number(fields[12]);
  return Number.isFinite(ticks) ? ticks * 10 : undefined; // USER_HZ is 100 on Linux
}

async function polling(client: Client, queue: string, type: number, identity: string): Promise<boolean> {
  const { pollers } = await client.workflowService.describeTaskQueue({ namespace: 'default', taskQueue: { name: queue }, taskQueueType: type });
  return pollers.some((p) => p.identity?.startsWith(identity));
}

const atStart = loadavg();
const server = await startDevServer({ executable: await obtainTemporalCli() });
const connection = await Connection.connect({ address: server.address });
const client = new Client({ connection });
const slotsDir = await mkdtemp(join(tmpdir(), 'bench-worker-start-'));

async function startOnce(mode: Mode, i: number): Promise<void> {
  const host = `bench-start-${mode}-${i + 1}`;
  const queue = `bench-start-shared-${mode}-${i + 1}`;
  const begun = Date.now();
  const child = spawn(process.execPath, [...LAUNCHES[mode]], {
    cwd: cwdOf(mode),
    env: { ...process.env, TEMPORAL_ADDRESS: server.address, SLOT_HOST: host, SLOTS_TASK_QUEUE: queue, SLOTS_DIR: slotsDir, LOG_LEVEL: 'debug', METRICS_PORT: 'off' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const identity = `${child.pid}@`;
  let workflowAt: number | undefined;
  let hostAt: number | undefined;
  while (workflowAt === undefined || hostAt === undefined) {
    if (child.exitCode !== null) throw new Error(`worker (${mode}) exited (${child.exitCode}):\n${output.slice(-3000)}`);
    if (Date.now() - begun > 120_000) throw new Error(`worker (${mode}) did not poll within 120 s:\n${output.slice(-3000)}`);
    if (workflowAt === undefined && (await polling(client, queue, WORKFLOW_QUEUE, identity))) workflowAt = Date.now() - begun;
    if (hostAt === undefined && (await polling(client, hostTaskQueue(host), ACTIVITY_QUEUE, identity))) hostAt = Date.now() - begun;
    await sleep(25);
  }
  const cpu = await cpuMsOf(child.pid as number);
  const cached = output.includes('workflow bundle from the cache');
  if (i >= 0) {
    const s = samples[mode];
    s.toWorkflowQueue.push(workflowAt);
    s.toHostQueue.push(hostAt);
    if (cpu !== undefined) s.cpuAtPoll.push(cpu);
    s.fromCache.push(cached);
  }
  note(NAME, `${mode} ${i < 0 ? 'warm-up' : `start ${i + 1}/${starts}`}: workflow queue ${workflowAt} ms, host queue ${hostAt} ms, CPU ${cpu ?? '?'} ms, bundle ${cached ? 'from the cache' : 'BUILT'}, load ${loadavg()[0]?.toFixed(2)}`);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

interface ModeSamples { toWorkflowQueue: number[]; toHostQueue: number[]; cpuAtPoll: number[]; fromCache: boolean[] }
const samples = Object.fromEntries(modes.map((m) => [m, { toWorkflowQueue: [], toHostQueue: [], cpuAtPoll: [], fromCache: [] } as ModeSamples])) as Record<Mode, ModeSamples>;
try {
  for (const mode of modes) {
    // The first start of a mode may build (the compiled entry, a bundle): not measured.
    await startOnce(mode, -1);
  }
  for (let i = 0; i < starts; i++) for (const mode of modes) await startOnce(mode, i);
} finally {
  await connection.close();
  await server.stop();
  await rm(slotsDir, { recursive: true, force: true });
}
const both = (m: Mode): number[] => samples[m].toWorkflowQueue.map((w, i) => Math.max(w, samples[m].toHostQueue[i] ?? 0));
const main = modes[0] as Mode;
const p50 = distribution(both(main), 0).p50;
emit({
  benchmark: NAME,
  machine: machine(),
  date: new Date().toISOString(),
  loadAverage: { atStart, atEnd: loadavg() },
  parameters: {
    starts,
    modes: Object.fromEntries(modes.map((m) => [m, `node ${LAUNCHES[m].join(' ')}${m === 'baseline' ? ` in ${baselineDir}` : ''}`])),
    order: 'alternating, one warm-up start per mode first (not measured)',
    measuredFrom: 'spawn of the worker process',
    measuredTo: "the server lists the process's poller on both queues (describeTaskQueue, polled every 25 ms)",
  },
  results: Object.fromEntries(
    modes.map((m) => [
      m,
      {
        toWorkflowQueueMs: distribution(samples[m].toWorkflowQueue, 0),
        toHostQueueMs: distribution(samples[m].toHostQueue, 0),
        toBothMs: distribution(both(m), 0),
        cpuMsAtPoll: distribution(samples[m].cpuAtPoll, 0),
        bundleFromCache: samples[m].fromCache,
      },
    ]),
  ),
  baseline: {
    issue16: 'before the bundle cache: 5-9 s of webpack at every start before polling',
    tsxQuiet: 'bench/results/worker-start-quiet-2026-12-01.json: tsx, p50 3560 ms, p95 4044 ms (load 1.3)',
  },
  targets: { warmStartPolls: { target: `polls within 2 s of start on a warm machine (p50 of both queues, ${main})`, measured: p50, met: p50 <= 2000 } },
  notes: ['a shared 2-core machine: other sessions load it; see loadAverage and cpuMsAtPoll', 'includes Node start-up and module loading, which a warm machine pays at every start'],
});
