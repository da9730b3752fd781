// The floor's worker in a process of its own (so its CPU is measured apart, as ours is):
// the floor workflows and both queues' activities. Answers `cycles` over IPC.
import { NativeConnection, Worker } from '@temporalio/worker';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import * as activities from './activities';

const address = process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233';
const { workflowQueue, hostQueue, sessionQueue } = JSON.parse(process.env.FLOOR_QUEUES ?? '{}') as Record<string, string>;
const pace = Number(process.env.FLOOR_PACE ?? 0);
const connection = await NativeConnection.connect({ address });
const workflowsPath = fileURLToPath(new URL('./workflows.ts', import.meta.url));
const workers = await Promise.all([
  Worker.create({ connection, taskQueue: workflowQueue as string, workflowsPath, maxCachedWorkflows: 500 }),
  // FLOOR_PACE=R: the host queue's activities at R/s with 10 at once, as our paced provider queue runs (an experiment; unset: unpaced).
  Worker.create({ connection, taskQueue: hostQueue as string, activities, ...(pace > 0 ? { maxTaskQueueActivitiesPerSecond: pace, maxConcurrentActivityTaskExecutions: 10 } : {}) }),
  Worker.create({ connection, taskQueue: sessionQueue as string, activities, maxConcurrentActivityTaskExecutions: 1000 }),
]);
// The main thread's event-loop delay, as bench/worker-entry.ts measures ours: started by the first
// `eld` (after the CPU phases: its timer costs CPU), answered and reset by each.
let loopDelay: ReturnType<typeof monitorEventLoopDelay> | undefined;
const ms = (ns: number): number => Math.round(ns / 1e4) / 100;
process.on('message', (m: { type: string }) => {
  if (m.type === 'cycles') process.send?.({ type: 'cycles', cycles: activities.cyclesDone() });
  if (m.type === 'eld') {
    if (!loopDelay) {
      loopDelay = monitorEventLoopDelay({ resolution: 5 });
      loopDelay.enable();
    }
    process.send?.({ type: 'eld', eventLoopDelayMs: { p50: ms(loopDelay.percentile(50)), p99: ms(loopDelay.percentile(99)), max: ms(loopDelay.max), mean: ms(loopDelay.mean), samples: loopDelay.count } });
    loopDelay.reset();
  }
});
process.on('SIGTERM', () => workers.forEach((w) => w.shutdown()));
process.on('disconnect', () => workers.forEach((w) => w.shutdown()));
process.send?.({ type: 'ready' });
await Promise.all(workers.map((w) => w.run()));
await connection.close();
process.exit(0);
