// The production worker (`runWorker`, as `npm run worker` runs it) in a process
// of its own, so that its memory and CPU are measured apart from the benchmark
// driver. It also answers `stats` over IPC (after a GC when asked).
//
// BENCH_PRELOAD_MODULES=a,./b.ts runs an experiment: the listed modules are
// loaded once per worker thread rather than once per workflow.
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { loadConfigOrExit, type Config } from '../host/config';
import { createLogger, installRuntimeLogger } from '../workers/logger';
import { runWorker } from '../workers/worker';

export interface WorkerStats {
  readonly type: 'stats';
  readonly memory: NodeJS.MemoryUsage;
  readonly cpu: NodeJS.CpuUsage;
  readonly heapSizeLimit: number;
  readonly gcRan: boolean;
  /** With BENCH_LOOP_DELAY=1: the main thread's event-loop delay since the previous stats request (ms), how long a task (an activation, an activity) waited for the thread. */
  readonly eventLoopDelayMs?: { readonly p50: number; readonly p99: number; readonly max: number; readonly mean: number; readonly samples: number };
}

export type WorkerRequest = { readonly type: 'stats'; readonly gc?: boolean };

// BENCH_LOOP_DELAY=1 (the latency benchmark): the main thread's event-loop delay, sampled every 5 ms.
// Off otherwise: its timer would be counted in the CPU the other benchmarks measure.
const loopDelay = process.env.BENCH_LOOP_DELAY === '1' ? monitorEventLoopDelay({ resolution: 5 }) : undefined;
loopDelay?.enable();
const ms = (ns: number): number => Math.round(ns / 1e4) / 100;

process.on('message', (message: WorkerRequest) => {
  if (message.type !== 'stats') return;
  const gc = (globalThis as { gc?: () => void }).gc;
  if (message.gc && gc) {
    gc();
    gc();
  }
  const stats: WorkerStats = {
    type: 'stats',
    memory: process.memoryUsage(),
    cpu: process.cpuUsage(),
    heapSizeLimit: v8.getHeapStatistics().heap_size_limit,
    gcRan: Boolean(message.gc && gc),
    ...(loopDelay ? { eventLoopDelayMs: { p50: ms(loopDelay.percentile(50)), p99: ms(loopDelay.percentile(99)), max: ms(loopDelay.max), mean: ms(loopDelay.mean), samples: loopDelay.count } } : {}),
  };
  loopDelay?.reset();
  process.send?.(stats);
});
// The driver going away is the end of the benchmark: stop as SIGTERM would.
process.on('disconnect', () => process.kill(process.pid, 'SIGTERM'));

const config: Config = loadConfigOrExit();
const log = createLogger(config.logLevel);
installRuntimeLogger(log);

// Project modules are named from the project root (`./common/messages.ts`), packages by name.
const preload = (process.env.BENCH_PRELOAD_MODULES ?? '')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean)
  .map((m) => (m.startsWith('.') ? fileURLToPath(new URL(`../${m}`, import.meta.url)) : m));
await runWorker(config, log, undefined, { preloadModules: preload });
// A clean exit (after SIGTERM) lets --cpu-prof write its profile.
process.exit(0);
