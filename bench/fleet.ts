// Refresh fleet: N adopted slots made due at the same moment, against a token
// endpoint answering in 20 ms. How long until all are refreshed, at what rate,
// with how much worker memory, and how that time grows with N.
//
// How they are made due: every slot is provisioned with fresh tokens and waits
// until all are active; then a `refreshNow` signal goes to each as fast as the
// client can send them (64 in flight). The wake-up then runs exactly the code a
// timer firing runs (same loop, same refresh step, same activity), but the
// moment is ours: a schedule could only put them due 60 s or more after the last
// adoption (the activity never schedules sooner), which at N = 5000 means
// guessing the adoption time. The clock starts before the first signal, so the
// time to send them is inside the measured time.
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import type { SlotClient } from '../client/slot-client';
import { slotWorkflowId } from '../common/slot';
import type { TokenServer } from '../test/peers/token-server';
import { summarizeProfiles, type ThreadProfile } from './cpu-profile';
import { activeSlotsQuery, HOUR, provisionFleet, type Fleet } from './fleet-slots';
import { activityName, activityStarted, eventMs, EventType, historyOf, signalName, type HistoryEvent } from './history';
import { cpuSecondsOf, memoryOf, sampleRss } from './process-stats';
import { distribution, mib, round, type Target } from './report';
import { existsSync } from 'node:fs';
import { BENCH_TEMPORAL, countWorkflows, inPool, listParam, param, Rig, runBenchmark, sleep, untilCount } from './rig';

/** The dev server's SQLite file lives in memory too (tmpfs), so its size can be read: the cluster's is PostgreSQL's. */
const DB_PARENT = existsSync('/dev/shm') ? '/dev/shm' : undefined;

const SIZES = listParam('BENCH_FLEET_SIZES', [1000, 10000]);
const LATENCY_MS = param('BENCH_FLEET_TOKEN_LATENCY_MS', 20);
/** Soft budget for the whole benchmark; a size that would not fit is capped (and says so). */
const BUDGET_S = param('BENCH_FLEET_BUDGET_S', 3600);
const SIGNAL_CONCURRENCY = param('BENCH_FLEET_SIGNAL_CONCURRENCY', 64);
const CPU_PROFILE = process.env.BENCH_CPU_PROF === '1';

interface Rates {
  /** ms per slot for each phase, from the previous size. */
  readonly seedMsPerSlot: number;
  readonly adoptMsPerSlot: number;
  readonly refreshMsPerSlot: number;
  readonly setupMs: number;
}

interface SizeResult {
  readonly requested: number;
  readonly n: number;
  readonly capped?: string;
  readonly refreshed: number;
  readonly allRefreshedMs: number | null;
  readonly refreshesPerSecond: number | null;
  readonly msPerSlot: number | null;
  readonly signalsSentMs: number;
  readonly tokenEndpoint: { readonly requests: number; readonly rotated: number; readonly non200: number; readonly presentedTwice: number; readonly firstMs: number | null; readonly lastMs: number | null };
  /** The refreshCredential activity, scheduled → completed (retries inside). */
  readonly refreshDurationMs: ReturnType<typeof distribution> | null;
  /** The slot's whole cycle: refreshNow signal recorded → the slot asleep again (TimerStarted). */
  readonly signalToAsleepMs: ReturnType<typeof distribution> | null;
  readonly errors: {
    readonly failedRefreshActivities: number;
    readonly refreshAttemptsRetried: number;
    readonly slotsNotActive: number;
    readonly sampleMismatches: number;
    readonly endpointErrors: number;
  };
  readonly worker: { readonly rssBeforeMiB: number; readonly rssPeakMiB: number; readonly rssAfterMiB: number; readonly mainIsolateAfterMiB: Record<string, number> };
  /** The Temporal server process (dev server; the cluster's temporal-server, PostgreSQL not counted). */
  readonly serverRssMiB: { readonly afterAdoption: number | null; readonly afterRefresh: number | null };
  readonly cpuSecondsDuringRefresh: { readonly worker: number; readonly temporalServer: number | null; readonly driverAndTokenServer: number; readonly wallSeconds: number; readonly coresBusy: number };
  readonly setup: { readonly seedMs: number; readonly provisionMs: number; readonly untilActiveMs: number; readonly setupMs: number };
  /** On disk (dev server: its SQLite file, -wal, -shm; cluster: both PostgreSQL databases). */
  readonly database: { readonly bytes: Record<string, number | null>; readonly perSlotKiB: number | null; readonly perRefreshKiB: number | null };
  readonly cpuProfile?: readonly ThreadProfile[];
}

async function runSize(parent: Rig, requested: number, n: number, capped: string | undefined, timeoutMs: number): Promise<SizeResult> {
  const rig = new Rig(`fleet:${n}`);
  parent.defer(() => rig.cleanup());
  try {
    const setupStart = Date.now();
    const slotsDir = await rig.tempDir('fleet-slots');
    const dbFile = join(await rig.tempDir('fleet-db', DB_PARENT), 'temporal.sqlite');
    const { server, client, slots: slotClient, pid: serverPid, databaseBytes } = await rig.startServer({ dbFile });
    const tokens = await rig.startTokenServer({ latencyMs: LATENCY_MS, accessTtlSec: 8 * 3600 });
    const host = `bench-${randomUUID().slice(0, 8)}`;
    const taskQueue = `bench-fleet-${randomUUID().slice(0, 8)}`;
    const profDir = CPU_PROFILE ? (process.env.BENCH_CPU_PROF_DIR ? join(process.env.BENCH_CPU_PROF_DIR, `fleet-${n}`) : await rig.tempDir('fleet-prof')) : undefined;
    const worker = await rig.startWorker(client, {
      address: server.address,
      host,
      taskQueue,
      slotsDir,
      env: { CLAUDE_TOKEN_URL: tokens.claudeTokenUrl },
      ...(profDir ? { cpuProfDir: profDir } : {}),
    });
    const setupMs = Date.now() - setupStart;
    const slots = slotClient(taskQueue);
    const db0 = await databaseBytes();
    const fleet = await provisionFleet(rig, { client, slots, tokens, slotsDir, host, prefix: 'fleet', count: n, timeoutMs });

    await sleep(2000);
    await worker.stats(true);
    const before = await memoryOf(worker.pid);
    const serverBefore = serverPid ? await memoryOf(serverPid) : undefined;
    if (tokens.requests.length !== 0) throw new Error(`adoption made ${tokens.requests.length} token requests; the seeded credentials should have been fresh`);

    const db1 = await databaseBytes();
    // A refreshed slot's token expires 8 h after its refresh, later than any seeded one (seeded before t0): visibility counts them.
    const t0 = Date.now();
    const refreshedQuery = `${activeSlotsQuery(host)} AND SlotExpiresAt >= '${new Date(t0 + 8 * HOUR).toISOString()}'`;
    const cpu0 = { worker: await cpuSecondsOf(worker.pid), server: serverPid ? await cpuSecondsOf(serverPid) : undefined, driver: process.cpuUsage() };
    const rss = sampleRss(worker.pid, 250);
    parent.note(`N=${n}: sending ${n} refreshNow signals`);
    await inPool(fleet.slotIds, SIGNAL_CONCURRENCY, (slotId) => slots.refreshNow(slotId));
    const signalsSentMs = Date.now() - t0;
    parent.note(`N=${n}: signals sent in ${(signalsSentMs / 1000).toFixed(1)} s; waiting for ${n} refreshes`);
    let lastNote = 0;
    const refreshed = await untilCount(client, refreshedQuery, n, {
      timeoutMs: Math.max(10_000, timeoutMs - (Date.now() - setupStart)),
      // The exact end comes from the slots' histories; polling often would only load the server.
      everyMs: 1000,
      onCount: (c) => {
        if (Date.now() - lastNote > 5000) {
          lastNote = Date.now();
          parent.note(`N=${n}: ${c}/${n} refreshed`);
        }
      },
    });
    const observedDoneMs = Date.now() - t0;
    const cpu1 = { worker: await cpuSecondsOf(worker.pid), server: serverPid ? await cpuSecondsOf(serverPid) : undefined, driver: process.cpuUsage(cpu0.driver) };
    const rssSamples = rss.stop();

    // Exact times from the server: every slot's refreshNow cycle, read from its history.
    const cycles = await refreshCycles(client, fleet.slotIds);
    const done = cycles.filter((c) => c.asleepAt !== undefined && c.completedAt !== undefined);
    const lastAsleep = done.length > 0 ? Math.max(...done.map((c) => c.asleepAt as number)) : undefined;
    const allRefreshed = refreshed >= n && done.length >= n && lastAsleep !== undefined;
    const allRefreshedMs = allRefreshed ? Math.round(Math.max(lastAsleep - t0, 0)) : null;

    const requests = tokens.requests.filter((r) => r.at >= t0);
    await sleep(1000);
    const active = await countWorkflows(client, activeSlotsQuery(host));
    const sampleMismatches = await checkSample(slots, tokens, fleet, slotsDir);
    await worker.stats(true);
    const after = await memoryOf(worker.pid);
    const serverAfter = serverPid ? await memoryOf(serverPid) : undefined;
    const afterStats = await worker.stats(false);
    const rssPeak = Math.max(before?.rssKiB ?? 0, ...rssSamples);

    await worker.stop();
    const cpuProfile = profDir ? await summarizeProfiles(profDir) : undefined;
    const db2 = await databaseBytes();
    const perKiB = (a: number | null, b: number | null, count: number): number | null => (a !== null && b !== null ? round((b - a) / 1024 / count, 2) : null);

    return {
      requested,
      n,
      ...(capped ? { capped } : {}),
      refreshed,
      allRefreshedMs,
      refreshesPerSecond: allRefreshedMs ? round((n / allRefreshedMs) * 1000, 1) : null,
      msPerSlot: allRefreshedMs ? round(allRefreshedMs / n, 2) : null,
      signalsSentMs,
      tokenEndpoint: {
        requests: requests.length,
        rotated: requests.filter((r) => r.outcome === 'rotated').length,
        non200: requests.filter((r) => r.status !== 200).length,
        presentedTwice: tokens.presentedTwice().length,
        firstMs: requests.length > 0 ? Math.min(...requests.map((r) => r.at)) - t0 : null,
        lastMs: requests.length > 0 ? Math.max(...requests.map((r) => r.at)) - t0 : null,
      },
      refreshDurationMs: done.length > 0 ? distribution(done.map((c) => (c.completedAt as number) - c.scheduledAt), 0) : null,
      signalToAsleepMs: done.length > 0 ? distribution(done.filter((c) => c.signalAt !== undefined).map((c) => (c.asleepAt as number) - (c.signalAt as number)), 0) : null,
      errors: {
        failedRefreshActivities: cycles.filter((c) => c.failed).length,
        refreshAttemptsRetried: cycles.reduce((sum, c) => sum + c.retriedAttempts, 0),
        slotsNotActive: n - active,
        sampleMismatches,
        endpointErrors: requests.filter((r) => r.status !== 200).length,
      },
      worker: {
        rssBeforeMiB: mib(before?.rssKiB ?? NaN),
        rssPeakMiB: mib(rssPeak),
        rssAfterMiB: mib(after?.rssKiB ?? NaN),
        // The main isolate only: workflows run in a worker thread whose heap process.memoryUsage() does not show.
        mainIsolateAfterMiB: { heapUsed: round(afterStats.memory.heapUsed / 2 ** 20, 1), external: round(afterStats.memory.external / 2 ** 20, 1) },
      },
      serverRssMiB: { afterAdoption: serverBefore ? mib(serverBefore.rssKiB) : null, afterRefresh: serverAfter ? mib(serverAfter.rssKiB) : null },
      cpuSecondsDuringRefresh: {
        worker: round((cpu1.worker ?? NaN) - (cpu0.worker ?? NaN), 2),
        temporalServer: cpu1.server !== undefined && cpu0.server !== undefined ? round(cpu1.server - cpu0.server, 2) : null,
        driverAndTokenServer: round((cpu1.driver.user + cpu1.driver.system) / 1e6, 2),
        wallSeconds: round(observedDoneMs / 1000, 2),
        coresBusy: round(((cpu1.worker ?? 0) - (cpu0.worker ?? 0) + (cpu1.server ?? 0) - (cpu0.server ?? 0) + (cpu1.driver.user + cpu1.driver.system) / 1e6) / (observedDoneMs / 1000), 2),
      },
      setup: { seedMs: fleet.seedMs, provisionMs: fleet.provisionMs, untilActiveMs: fleet.untilActiveMs, setupMs },
      database: {
        bytes: { empty: db0, afterAdoption: db1, afterRefresh: db2 },
        perSlotKiB: perKiB(db0, db1, n),
        perRefreshKiB: perKiB(db1, db2, n),
      },
      ...(cpuProfile ? { cpuProfile } : {}),
    };
  } finally {
    await rig.cleanup();
  }
}

interface RefreshCycle {
  readonly signalAt: number | undefined;
  readonly scheduledAt: number;
  readonly completedAt: number | undefined;
  /** The slot's next TimerStarted after the refresh: the cycle is over. */
  readonly asleepAt: number | undefined;
  readonly failed: boolean;
  readonly retriedAttempts: number;
}

/** The refresh each slot ran after its refreshNow signal: its refreshCredential activity and when the slot slept again. */
async function refreshCycles(client: Client, slotIds: readonly string[]): Promise<RefreshCycle[]> {
  const cycles = await inPool(slotIds, 16, async (slotId): Promise<RefreshCycle | undefined> => {
    const events = await historyOf(client, slotWorkflowId(slotId));
    const signal = events.find((e) => signalName(e) === 'refreshNow');
    const after = (e: HistoryEvent): boolean => signal === undefined || Number(e.eventId) > Number(signal.eventId);
    const scheduled = events.find((e) => activityName(e) === 'refreshCredential' && after(e));
    if (!scheduled) return undefined;
    const closedBy = (e: HistoryEvent): string | undefined =>
      String(
        e.activityTaskCompletedEventAttributes?.scheduledEventId ??
          e.activityTaskFailedEventAttributes?.scheduledEventId ??
          e.activityTaskTimedOutEventAttributes?.scheduledEventId ??
          e.activityTaskCanceledEventAttributes?.scheduledEventId ??
          '',
      );
    const closed = events.find((e) => closedBy(e) === String(scheduled.eventId));
    const completed = closed?.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED ? closed : undefined;
    const asleep = closed ? events.find((e) => e.eventType === EventType.EVENT_TYPE_TIMER_STARTED && Number(e.eventId) > Number(closed.eventId)) : undefined;
    const attempt = activityStarted(events, scheduled)?.activityTaskStartedEventAttributes?.attempt ?? 1;
    return {
      signalAt: signal ? eventMs(signal) : undefined,
      scheduledAt: eventMs(scheduled),
      completedAt: completed ? eventMs(completed) : undefined,
      asleepAt: asleep ? eventMs(asleep) : undefined,
      failed: closed !== undefined && completed === undefined,
      retriedAttempts: Math.max(attempt - 1, 0),
    };
  });
  return cycles.filter((c): c is RefreshCycle => c !== undefined);
}

/** A sample of slots: refreshed once more, active, and the file holds the grant's newest tokens. */
async function checkSample(slots: SlotClient, tokens: TokenServer, fleet: Fleet, slotsDir: string): Promise<number> {
  const step = Math.max(1, Math.floor(fleet.slotIds.length / 20));
  let mismatches = 0;
  for (let i = 0; i < fleet.slotIds.length; i += step) {
    const slotId = fleet.slotIds[i] as string;
    const status = await slots.status(slotId);
    const grant = tokens.grant(fleet.grants.get(slotId) ?? '');
    const onDisk = JSON.parse(await readFile(join(slotsDir, slotId, '.claude', '.credentials.json'), 'utf8')) as { claudeAiOauth: { refreshToken: string } };
    const ok = status.phase === 'active' && status.refreshes === 2 && status.lastOutcome?.kind === 'refresh-succeeded' && grant?.rotations === 1 && onDisk.claudeAiOauth.refreshToken === grant.refreshToken;
    if (!ok) mismatches++;
  }
  return mismatches;
}

await runBenchmark('fleet', (BUDGET_S + 300) * 1000, async (rig) => {
  const started = Date.now();
  const results: SizeResult[] = [];
  const skipped: Array<{ requested: number; reason: string }> = [];
  const notes: string[] = [
    'Slots are made due together by refreshNow signals sent as fast as the client can (64 in flight), after all are active; the clock starts before the first signal.',
    'allRefreshedMs: from just before the first signal to the moment (server clock, same machine) the last slot slept again after its refresh (its TimerStarted after the refreshCredential activity completed).',
    'Refreshes are counted during the run through visibility (slots active whose SlotExpiresAt is at least 8 h after the first signal: only a refreshed token expires that late) and timed afterwards from every slot\'s history.',
  ];
  let rates: Rates | undefined;
  for (const requested of SIZES) {
    const remainingMs = BUDGET_S * 1000 - (Date.now() - started);
    let n = requested;
    let capped: string | undefined;
    if (rates) {
      const predict = (k: number): number => rates!.setupMs + k * (rates!.seedMsPerSlot + rates!.adoptMsPerSlot + rates!.refreshMsPerSlot) * 1.3;
      if (predict(requested) > remainingMs) {
        const perSlot = (rates.seedMsPerSlot + rates.adoptMsPerSlot + rates.refreshMsPerSlot) * 1.3;
        n = Math.floor((remainingMs - rates.setupMs) / perSlot / 100) * 100;
        const previous = results[results.length - 1]?.n ?? 0;
        const why = `at the rates measured for N=${previous} (${round(1000 / rates.refreshMsPerSlot, 1)} refreshes/s, ${round(1000 / rates.adoptMsPerSlot, 1)} adoptions/s) N=${requested} would need ~${Math.round(predict(requested) / 1000)} s, and ${Math.round(remainingMs / 1000)} s of the ${BUDGET_S} s budget were left`;
        if (n <= previous) {
          notes.push(`N=${requested}: skipped: ${why}; a cap that fits would not exceed N=${previous}`);
          rig.note(`N=${requested}: skipped (${why})`);
          skipped.push({ requested, reason: why });
          continue;
        }
        capped = `capped from ${requested} to ${n}: ${why}`;
        rig.note(capped);
        notes.push(`N=${requested}: ${capped}`);
      }
    }
    if (remainingMs < 30_000) {
      notes.push(`N=${requested}: skipped, the ${BUDGET_S} s budget was used up`);
      continue;
    }
    rig.note(`N=${n}: starting`);
    const result = await runSize(rig, requested, n, capped, Math.max(60_000, remainingMs));
    results.push(result);
    rig.note(`N=${n}: ${result.refreshed}/${n} refreshed in ${result.allRefreshedMs} ms (${result.refreshesPerSecond}/s), worker RSS peak ${result.worker.rssPeakMiB} MiB`);
    if (result.allRefreshedMs === null) {
      notes.push(`N=${n}: not all slots were refreshed before the time limit; larger sizes skipped`);
      break;
    }
    rates = {
      setupMs: result.setup.setupMs,
      seedMsPerSlot: result.setup.seedMs / n,
      adoptMsPerSlot: result.setup.untilActiveMs / n,
      refreshMsPerSlot: result.allRefreshedMs / n,
    };
  }

  const growth: Record<string, { nRatio: number; timeRatio: number | null; perSlotMs: [number | null, number | null] }> = {};
  for (let i = 1; i < results.length; i++) {
    const a = results[i - 1] as SizeResult;
    const b = results[i] as SizeResult;
    growth[`${a.n}->${b.n}`] = {
      nRatio: round(b.n / a.n, 2),
      timeRatio: a.allRefreshedMs && b.allRefreshedMs ? round(b.allRefreshedMs / a.allRefreshedMs, 2) : null,
      perSlotMs: [a.msPerSlot, b.msPerSlot],
    };
  }
  const at1000 = results.find((r) => r.n === 1000);
  const at10000 = results.find((r) => r.n === 10000);
  const perSlot = results.filter((r) => r.msPerSlot !== null).map((r) => r.msPerSlot as number);
  const largest = results[results.length - 1];
  const linear = perSlot.length >= 2 ? Math.max(...perSlot.slice(1)) <= 1.5 * Math.min(...perSlot.slice(1)) : null;
  const targets: Record<string, Target> = {
    refresh1000WithinSeconds: {
      target: '1000 slots refreshed in <= 20 s',
      measured: at1000?.allRefreshedMs != null ? round(at1000.allRefreshedMs / 1000, 1) : null,
      met: at1000?.allRefreshedMs != null ? at1000.allRefreshedMs <= 20_000 : null,
    },
    perSlotAt10000: {
      target: 'N = 10 000 run to completion, time per slot no more than 1.2x that at N = 1000',
      measured: at1000?.msPerSlot != null && at10000?.msPerSlot != null ? round(at10000.msPerSlot / at1000.msPerSlot, 2) : null,
      met: at1000?.msPerSlot != null && at10000?.msPerSlot != null ? at10000.msPerSlot <= 1.2 * at1000.msPerSlot : null,
    },
    linearGrowth: {
      target: 'time linear in N: ms per slot at the largest sizes within 1.5x of each other (the smallest size carries fixed start-up costs)',
      measured: perSlot.length > 0 ? perSlot.map((x) => `${x} ms/slot`).join(', ') : null,
      met: linear,
    },
  };
  return {
    parameters: {
      sizes: SIZES,
      ran: results.map((r) => r.n),
      tokenLatencyMs: LATENCY_MS,
      signalConcurrency: SIGNAL_CONCURRENCY,
      budgetSeconds: BUDGET_S,
      provider: 'claude (adopted credentials, fresh tokens)',
      server:
        BENCH_TEMPORAL === 'cluster'
          ? 'temporal-server v1.29.1 on PostgreSQL (SQL visibility, 4 history shards), same machine, one per size'
          : `temporal server start-dev on a SQLite file in ${DB_PARENT ?? 'the temp dir'}, one per size`,
      worker: 'bench/worker-entry.ts → workers/worker.ts runWorker, one child process per size',
      cpuProfile: CPU_PROFILE,
      workerVariant: process.env.BENCH_PRELOAD_MODULES ? `experiment: preloadModules ${process.env.BENCH_PRELOAD_MODULES}` : 'production',
    },
    results: { sizes: results, skipped, growth, largestN: largest?.n ?? null },
    baseline: {
      what: 'none measured: the scripts this replaces have no fleet refresh (each slot\'s watchdog refreshes on its own timer, with a lock file); see idle-cost for their per-slot cost',
    },
    targets,
    notes,
  };
});
