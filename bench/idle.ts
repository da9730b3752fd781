// Idle cost: 1000 active slots asleep until their next refresh. Worker memory
// and CPU, growth of the Temporal database (a SQLite file) per slot, history
// events per refresh cycle (a slot woken by its own timer, and one woken by
// refreshNow). Baseline: the scripts' one watchdog loop per slot.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import type { SlotClient } from '../client/slot-client';
import { slotWorkflowId } from '../common/slot';
import type { TokenServer } from '../test/peers/token-server';
import { provisionFleet } from './fleet-slots';
import { scrapeCost, type ScrapeCost } from './scrape';
import { EventType, historyOf, timerCycles, type TimerCycle } from './history';
import { descendantsOf, memoryOf, sampleRss } from './process-stats';
import { distribution, kib, mib, round, type Target } from './report';
import { PROJECT_ROOT, countWorkflows, cpuBetween, cpuSnapshot, inPool, param, runBenchmark, seedClaudeCredential, settledRss, sleep, sqliteBytes, type BenchWorker, type Rig } from './rig';

const SLOTS = param('BENCH_IDLE_SLOTS', 10000);
/** Slots woken one at a time by refreshNow, evicted ones (the oldest) and cached ones (the newest). */
const WAKE_SAMPLE = param('BENCH_IDLE_WAKE_SAMPLE', 5);
const IDLE_SECONDS = param('BENCH_IDLE_SECONDS', 30);
const SETTLE_SECONDS = param('BENCH_IDLE_SETTLE_SECONDS', 10);
const REFRESH_SAMPLE = param('BENCH_IDLE_REFRESH_SAMPLE', 100);
const BASH_LOOPS = param('BENCH_IDLE_BASH_LOOPS', 50);
const NODE_LOOPS = param('BENCH_IDLE_NODE_LOOPS', 20);
/** Measure what a scrape of the slot metrics costs with every slot asleep (bench/scrape.ts); 0 skips it. */
const SCRAPE = param('BENCH_IDLE_SCRAPE', 1) === 1;
/**
 * Also measure a worker with common/* evaluated once per thread (an experiment, see worker-entry.ts).
 * Off by default since zod left the workflow bundle (the fix the experiment was for); 1 runs it.
 */
const PRELOAD_EXPERIMENT = param('BENCH_IDLE_PRELOAD_EXPERIMENT', 0) === 1;
const EXPERIMENT_SLOTS = param('BENCH_IDLE_EXPERIMENT_SLOTS', 500);
/**
 * Where the SQLite file lives. Its size does not depend on the filesystem, but the
 * dev server syncs every commit: on this VM's disk adoption runs at ~3 slots/s,
 * which puts 1000 slots out of reach; tmpfs (/dev/shm) makes the syncs free.
 * BENCH_IDLE_DB_DIR=/tmp measures on disk.
 */
const DB_PARENT = process.env.BENCH_IDLE_DB_DIR || (existsSync('/dev/shm') ? '/dev/shm' : undefined);
const PRELOAD = './common/slot.ts,./common/messages.ts,./common/search-attributes.ts,./common/failures.ts';
/** Timer-driven cycles to record on one slot whose token lives TIMER_TTL_S: it refreshes by its own timer about once a minute. */
const TIMER_CYCLES = param('BENCH_IDLE_TIMER_CYCLES', 2);
const TIMER_TTL_S = param('BENCH_IDLE_TIMER_TTL_S', 90);
/** Refresh this long before expiry: with TIMER_TTL_S = 90 the next refresh is due 60 s after each one (the activity's floor). */
const TIMER_BEFORE_EXPIRY_MS = 30_000;


interface MemoryCurve {
  readonly emptyKiB: number;
  readonly halfKiB: number;
  readonly fullKiB: number;
  /** (full − half) / (slots/2): what one more sleeping slot costs. */
  readonly marginalKiBPerSlot: number;
  /** (full − empty) / slots: includes what warming up the worker costs once. */
  readonly averageKiBPerSlot: number;
  readonly heapUsedMiB: number;
}

/** Provisions the slots in two halves and reads the worker's settled RSS before, between and after. */
async function memoryCurve(
  rig: Rig,
  worker: BenchWorker,
  fleet: { client: Client; slots: SlotClient; tokens: TokenServer; slotsDir: string; host: string; prefix: string },
  total: number,
): Promise<MemoryCurve & { untilActiveMs: number[] }> {
  const half = Math.floor(total / 2);
  const emptyKiB = await settledRss(worker, 5);
  rig.note(`worker RSS with no slot: ${mib(emptyKiB)} MiB`);
  // Adoption runs at ~10–15 slots/s on this machine: the limit grows with the count.
  const timeoutFor = (count: number): number => Math.max(300_000, count * 250);
  const a = await provisionFleet(rig, { ...fleet, count: half, timeoutMs: timeoutFor(half) });
  await sleep(SETTLE_SECONDS * 1000);
  const halfKiB = await settledRss(worker, 5);
  rig.note(`worker RSS with ${half} sleeping slots: ${mib(halfKiB)} MiB`);
  const b = await provisionFleet(rig, { ...fleet, count: total - half, firstIndex: half, timeoutMs: timeoutFor(total - half) });
  await sleep(SETTLE_SECONDS * 1000);
  const fullKiB = await settledRss(worker, 5);
  rig.note(`worker RSS with ${total} sleeping slots: ${mib(fullKiB)} MiB`);
  const stats = await worker.stats(true);
  return {
    emptyKiB,
    halfKiB,
    fullKiB,
    marginalKiBPerSlot: round((fullKiB - halfKiB) / (total - half), 1),
    averageKiBPerSlot: round((fullKiB - emptyKiB) / total, 1),
    heapUsedMiB: round(stats.memory.heapUsed / 2 ** 20, 1),
    untilActiveMs: [a.untilActiveMs, b.untilActiveMs],
  };
}

const summary = (c: TimerCycle | undefined): Record<string, unknown> | undefined =>
  c && { events: c.events, workflowTasks: c.workflowTasks, bytes: c.bytes, wakeToSleepMs: c.wakeToSleepMs, wokeBy: c.wokeBy, byType: c.byType };

/**
 * Events one refresh cycle adds to the slot's history when an operator wakes it
 * (refreshNow): from the TimerStarted it slept on to the next one.
 */
async function refreshNowCycle(client: Client, slots: SlotClient, slotId: string): Promise<Record<string, unknown>> {
  const handle = client.workflow.getHandle(slotWorkflowId(slotId));
  const before = await historyOf(client, slotWorkflowId(slotId));
  const runId = (await handle.describe()).runId;
  await slots.refreshNow(slotId);
  const deadline = Date.now() + 60_000;
  let after = before;
  // The cycle ends when the slot sleeps again: its last event is a new TimerStarted.
  while (Date.now() < deadline) {
    await sleep(200);
    after = await historyOf(client, slotWorkflowId(slotId), runId);
    const last = after[after.length - 1];
    if (after.length > before.length && last?.eventType === EventType.EVENT_TYPE_TIMER_STARTED) break;
  }
  const cycles = timerCycles(after);
  const status = await slots.status(slotId);
  return {
    slotId,
    ...summary(cycles[cycles.length - 1]),
    historyLengthBefore: before.length,
    refreshesAfter: status.refreshes,
    lastOutcome: status.lastOutcome?.kind,
  };
}

/**
 * The figure the redesign is judged by: one slot that is due and refreshes by its
 * own timer (no message), recorded for TIMER_CYCLES cycles, each from one
 * TimerStarted to the next. Its token lives TIMER_TTL_S and the slot refreshes
 * TIMER_BEFORE_EXPIRY_MS before expiry, so a cycle comes about once a minute.
 */
async function timerDrivenCycles(
  rig: Rig,
  fleet: { client: Client; slots: SlotClient; tokens: TokenServer; slotsDir: string; host: string },
): Promise<Record<string, unknown>> {
  const { client, slots, tokens, slotsDir, host } = fleet;
  const slotId = 'idle-timer';
  const issued = tokens.issue({ accessTtlSec: TIMER_TTL_S });
  await seedClaudeCredential(slotsDir, slotId, issued, Date.now() + TIMER_TTL_S * 1000);
  const schedule = { beforeExpiryMs: TIMER_BEFORE_EXPIRY_MS, jitterMs: 0 };
  await slots.provision({ slotId, provider: 'claude', host, adoptExisting: true, options: { refresh: schedule } });
  const started = Date.now();
  const deadline = started + (TIMER_CYCLES + 1) * (TIMER_TTL_S * 1000) + 60_000;
  let cycles: TimerCycle[] = [];
  let history = await historyOf(client, slotWorkflowId(slotId));
  while (Date.now() < deadline) {
    history = await historyOf(client, slotWorkflowId(slotId));
    cycles = timerCycles(history).filter((c) => c.wokeBy === 'timer');
    if (cycles.length >= TIMER_CYCLES) break;
    await sleep(2000);
  }
  rig.note(`timer-driven: ${cycles.length} cycles in ${Math.round((Date.now() - started) / 1000)} s: ${cycles.map((c) => `${c.events} events`).join(', ')}`);
  const status = await slots.status(slotId);
  const requests = tokens.requests.filter((r) => r.at >= started);
  await slots.retire(slotId);
  const first = cycles[0];
  return {
    slotId,
    how: `adopted with a token living ${TIMER_TTL_S} s and refresh.beforeExpiryMs ${TIMER_BEFORE_EXPIRY_MS}, jitter 0: due every ~60 s, woken by its own timer (TimerFired), no message`,
    cyclesRecorded: cycles.length,
    // One cycle's figures (they are the same for every timer-driven cycle when nothing fails).
    ...summary(first),
    allCycles: cycles.map((c) => ({ events: c.events, workflowTasks: c.workflowTasks, bytes: c.bytes, wakeToSleepMs: c.wakeToSleepMs })),
    sameForEveryCycle: cycles.every((c) => c.events === first?.events && JSON.stringify(c.byType) === JSON.stringify(first?.byType)),
    historyLength: history.length,
    refreshes: status.refreshes,
    lastOutcome: status.lastOutcome?.kind,
    tokenRequests: { total: requests.length, rotated: requests.filter((r) => r.outcome === 'rotated').length },
  };
}

/** The scripts' watchdogs: one loop process per slot. RSS and PSS (shared pages split among sharers), with each loop's `sleep` child. */
async function watchdogs(rig: Rig, kind: 'bash' | 'node', count: number, dir: string): Promise<Record<string, unknown>> {
  const pids: number[] = [];
  for (let i = 0; i < count; i++) {
    const credential = join(dir, `slot-${i}`, '.credentials.json');
    const child =
      kind === 'bash'
        ? spawn('bash', [join(PROJECT_ROOT, 'bench', 'baseline', 'watchdog.sh'), credential], { stdio: 'ignore', detached: true })
        : spawn(process.execPath, ['-e', `setInterval(() => require('fs').existsSync(${JSON.stringify(credential)}), 60000)`], { stdio: 'ignore', detached: true });
    if (child.pid === undefined) continue;
    const pid = child.pid;
    pids.push(pid);
    rig.defer(async () => {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // already gone
      }
    });
  }
  await sleep(3000);
  const rss: number[] = [];
  const pss: number[] = [];
  let processes = 0;
  for (const pid of pids) {
    const tree = [pid, ...(await descendantsOf(pid))];
    processes += tree.length;
    let r = 0;
    let p = 0;
    for (const member of tree) {
      const m = await memoryOf(member);
      r += m?.rssKiB ?? 0;
      p += m?.pssKiB ?? 0;
    }
    rss.push(r);
    pss.push(p);
  }
  for (const pid of pids) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  const rssDist = distribution(rss, 0);
  const pssDist = distribution(pss, 0);
  return {
    loops: pids.length,
    processesPerLoop: round(processes / (pids.length || 1), 1),
    command: kind === 'bash' ? 'bash bench/baseline/watchdog.sh (while sleep 60; do …; done)' : 'node -e "setInterval(…, 60000)"',
    rssKiBPerLoop: rssDist,
    pssKiBPerLoop: pssDist,
    extrapolatedFor: SLOTS,
    extrapolatedRssMiB: mib(rssDist.mean * SLOTS),
    extrapolatedPssMiB: mib(pssDist.mean * SLOTS),
  };
}

await runBenchmark('idle', 75 * 60_000, async (rig) => {
  const dataDir = await rig.tempDir('idle-db', DB_PARENT);
  const dbFile = join(dataDir, 'temporal.sqlite');
  const slotsDir = await rig.tempDir('idle-slots');
  const { server, client, slots: slotClient, pid: serverPid } = await rig.startServer({ dbFile });
  const tokens = await rig.startTokenServer({ accessTtlSec: 8 * 3600 });
  const host = `bench-${randomUUID().slice(0, 8)}`;
  const taskQueue = `bench-idle-${randomUUID().slice(0, 8)}`;
  const worker = await rig.startWorker(client, { address: server.address, host, taskQueue, slotsDir, env: { CLAUDE_TOKEN_URL: tokens.claudeTokenUrl } });
  const slots = slotClient(taskQueue);

  await sleep(2000);
  const db0 = await sqliteBytes(dbFile);
  const curve = await memoryCurve(rig, worker, { client, slots, tokens, slotsDir, host, prefix: 'idle' }, SLOTS);
  const db1 = await sqliteBytes(dbFile);

  rig.note(`idle for ${IDLE_SECONDS} s`);
  const cpu0 = await cpuSnapshot(worker.pid, serverPid);
  const rss = sampleRss(worker.pid, 500);
  await sleep(IDLE_SECONDS * 1000);
  const idleRss = rss.stop();
  const cpu = cpuBetween(cpu0, await cpuSnapshot(worker.pid, serverPid));
  const db2 = await sqliteBytes(dbFile);
  if (tokens.requests.length !== 0) throw new Error(`the sleeping slots made ${tokens.requests.length} token requests`);

  // After the idle window, so that the scrapes' load is not counted as idle CPU.
  let scrape: { perSlotSeries: ScrapeCost; countsOnly: ScrapeCost } | undefined;
  if (SCRAPE) {
    rig.note(`slot metrics: scrapes of ${SLOTS} slots, per-slot series on, then off`);
    const perSlot = await scrapeCost(server.address, 'default', taskQueue, true);
    const countsOnly = await scrapeCost(server.address, 'default', taskQueue, false);
    rig.note(`scrape: per-slot cold ${perSlot.coldMs} ms, warm p50 ${perSlot.warmMs.p50} ms, stale ${perSlot.staleMs} ms, listing ${perSlot.backgroundListingMs} ms; counts only cold ${countsOnly.coldMs} ms`);
    scrape = { perSlotSeries: perSlot, countsOnly };
  }

  rig.note(`history of refresh cycles: ${TIMER_CYCLES} woken by the slot's own timer (~${TIMER_TTL_S - TIMER_BEFORE_EXPIRY_MS / 1000} s each), one by refreshNow`);
  const timerCycle = await timerDrivenCycles(rig, { client, slots, tokens, slotsDir, host });
  const nowCycle = await refreshNowCycle(client, slots, 'idle-0');
  // Waking a slot the worker no longer caches replays its history first; the newest slots are still cached.
  rig.note(`waking ${WAKE_SAMPLE} evicted and ${WAKE_SAMPLE} cached slots one at a time`);
  const wake = async (ids: string[]): Promise<Array<Record<string, unknown>>> => {
    const out: Array<Record<string, unknown>> = [];
    for (const id of ids) out.push(await refreshNowCycle(client, slots, id));
    return out;
  };
  const evictedIds = Array.from({ length: WAKE_SAMPLE }, (_, i) => `idle-${REFRESH_SAMPLE + 1 + i}`);
  const cachedIds = Array.from({ length: WAKE_SAMPLE }, (_, i) => `idle-${SLOTS - 1 - i}`);
  const wokenEvicted = await wake(evictedIds);
  const wokenCached = await wake(cachedIds);
  const wakeMs = (cycles: Array<Record<string, unknown>>): ReturnType<typeof distribution> =>
    distribution(cycles.map((c) => c.wakeToSleepMs).filter((v): v is number => typeof v === 'number' && Number.isFinite(v)), 0);
  rig.note(`${REFRESH_SAMPLE} refresh cycles for the database growth per cycle`);
  const sample = Array.from({ length: REFRESH_SAMPLE }, (_, i) => `idle-${i + 1}`);
  const dbBeforeCycles = await sqliteBytes(dbFile);
  // A refreshed slot's token expires 8 h after its refresh, later than any seeded one: visibility counts them without a query per slot.
  const cyclesStart = Date.now();
  const refreshedQuery = `WorkflowType = 'slotWorkflow' AND SlotHost = '${host}' AND SlotPhase = 'active' AND SlotExpiresAt >= '${new Date(cyclesStart + 8 * 3600_000).toISOString()}'`;
  await inPool(sample, 16, (slotId) => slots.refreshNow(slotId));
  const cyclesDeadline = Date.now() + 180_000;
  let cyclesDone = 0;
  while (Date.now() < cyclesDeadline) {
    cyclesDone = await countWorkflows(client, refreshedQuery);
    if (cyclesDone >= REFRESH_SAMPLE) break;
    await sleep(500);
  }
  if (cyclesDone < REFRESH_SAMPLE) rig.note(`only ${cyclesDone}/${REFRESH_SAMPLE} sample slots refreshed within 180 s`);
  await sleep(3000);
  const dbAfterCycles = await sqliteBytes(dbFile);
  await worker.stop();

  let experiment: Record<string, unknown> | undefined;
  if (PRELOAD_EXPERIMENT) {
    rig.note(`experiment: a worker with ${PRELOAD} evaluated once per thread`);
    const host2 = `bench-${randomUUID().slice(0, 8)}`;
    const queue2 = `bench-idle-${randomUUID().slice(0, 8)}`;
    const slotsDir2 = await rig.tempDir('idle-slots-exp');
    const worker2 = await rig.startWorker(client, {
      address: server.address,
      host: host2,
      taskQueue: queue2,
      slotsDir: slotsDir2,
      env: { CLAUDE_TOKEN_URL: tokens.claudeTokenUrl, BENCH_PRELOAD_MODULES: PRELOAD },
    });
    const curve2 = await memoryCurve(rig, worker2, { client, slots: slotClient(queue2), tokens, slotsDir: slotsDir2, host: host2, prefix: 'exp' }, EXPERIMENT_SLOTS);
    await worker2.stop();
    experiment = {
      what: `bundle with preloadModules [${PRELOAD}]: these modules are evaluated once per worker thread instead of once per workflow (the SDK deep-freezes them); it measures what the per-workflow evaluation of the project's common modules still costs now that zod is out of the bundle`,
      slots: EXPERIMENT_SLOTS,
      workerRss: curve2,
    };
  }

  rig.note('baseline: watchdog loops');
  const loopsDir = await rig.tempDir('idle-watchdogs');
  const bash = await watchdogs(rig, 'bash', BASH_LOOPS, loopsDir);
  const node = NODE_LOOPS > 0 ? await watchdogs(rig, 'node', NODE_LOOPS, loopsDir) : undefined;

  const dbPerSlot = (db1.total - db0.total) / SLOTS;
  const scrapeMs = scrape ? Math.max(scrape.perSlotSeries.staleMs ?? 0, scrape.perSlotSeries.warmMs.max, scrape.countsOnly.warmMs.max) : null;
  const targets: Record<string, Target> = {
    slotMetricsScrape: {
      target: `<= 1000 ms for a scrape of the slot metrics at ${SLOTS} slots once the exporter runs (the slowest warm or stale scrape, either setting; Prometheus' default scrape timeout is 10 s, ours in docs/observability.md 5 s)`,
      measured: scrapeMs,
      met: scrapeMs === null ? null : scrapeMs <= 1000,
    },
    workerMemoryPerSleepingSlot: {
      target: '<= 10 KB (10 KiB) worker memory per sleeping slot (marginal RSS)',
      measured: curve.marginalKiBPerSlot,
      met: curve.marginalKiBPerSlot <= 10,
    },
    eventsPerRefreshCycle: {
      target: '<= 12 history events per refresh cycle of the slot workflow, woken by its own timer (TimerStarted to the next TimerStarted)',
      measured: typeof timerCycle.events === 'number' ? timerCycle.events : null,
      met: typeof timerCycle.events === 'number' ? timerCycle.events <= 12 : null,
    },
  };
  return {
    parameters: {
      slots: SLOTS,
      idleSeconds: IDLE_SECONDS,
      settleSeconds: SETTLE_SECONDS,
      refreshCyclesForDbGrowth: REFRESH_SAMPLE,
      timerDrivenCycles: TIMER_CYCLES,
      timerSlotTokenTtlSeconds: TIMER_TTL_S,
      preloadExperiment: PRELOAD_EXPERIMENT,
      provider: 'claude (adopted credentials, tokens fresh for 8 h: next refresh in ~7 h)',
      server: `temporal server start-dev on a SQLite file in ${DB_PARENT ?? 'the temp dir'}`,
      worker: 'bench/worker-entry.ts → workers/worker.ts runWorker, own process; RSS is its VmRSS, median over 5 s after a GC of its main isolate',
    },
    results: {
      workerRss: {
        emptyMiB: mib(curve.emptyKiB),
        halfMiB: mib(curve.halfKiB),
        fullMiB: mib(curve.fullKiB),
        marginalKiBPerSlot: curve.marginalKiBPerSlot,
        averageKiBPerSlot: curve.averageKiBPerSlot,
        heapUsedMainIsolateMiB: curve.heapUsedMiB,
        duringIdleMiB: distribution(idleRss.map((k) => k / 1024)),
      },
      provisionSeconds: curve.untilActiveMs.map((ms) => round(ms / 1000, 1)),
      cpuDuringIdle: { ...cpu, workerPercentOfOneCore: typeof cpu.worker === 'number' && cpu.wallSeconds ? round((cpu.worker / cpu.wallSeconds) * 100, 2) : null },
      database: {
        beforeBytes: db0,
        afterProvisionBytes: db1,
        afterIdleBytes: db2,
        growthPerSlotKiB: kib(dbPerSlot),
        growthPerRefreshCycleKiB: kib((dbAfterCycles.total - dbBeforeCycles.total) / (cyclesDone || 1)),
        refreshCyclesCounted: cyclesDone,
        note: 'SQLite file plus its -wal and -shm files; the file grows in pages and the WAL is checkpointed from time to time, so per-slot figures are averages',
      },
      historyPerRefreshCycle: {
        /** The figure: woken by its own timer when due. */
        timerDriven: timerCycle,
        /** Woken by an operator's refreshNow (a signal, and the timer cancelled). */
        refreshNow: nowCycle,
        wakeEvictedMs: wakeMs(wokenEvicted),
        wakeCachedMs: wakeMs(wokenCached),
        wakeNote: `refreshNow → asleep again (server clock), one slot at a time: ${WAKE_SAMPLE} of the oldest slots (evicted from the worker's cache, bound ${process.env.WORKER_MAX_CACHED_WORKFLOWS ?? 'default 500'}: replayed first) and ${WAKE_SAMPLE} of the newest (still cached)`,
        note: 'a cycle = the events after the TimerStarted the slot slept on, up to and including the next TimerStarted; bytes = protobuf-encoded size of those events',
      },
      ...(experiment ? { experiment } : {}),
      ...(scrape ? { slotMetricsScrape: scrape } : {}),
    },
    baseline: {
      bashWatchdog: bash,
      ...(node ? { nodeWatchdog: node } : {}),
    },
    targets,
  };
});
