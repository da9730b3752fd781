// Paced drain: N adopted Claude slots come due at once on one host whose Claude pace is
// R requests a second. Targets: all refreshed within 1.1 x N/R s; the token server never
// sees more than R requests in one second (measured there); no slot degrades.
//
// Made due as the fleet benchmark does (a refreshNow signal to each, as fast as the
// client can); adoption itself is paced too (its check takes a turn at the pace), so the
// fleet is made active first and the clock starts before the first signal.
import { randomUUID } from 'node:crypto';
import { activeSlotsQuery, HOUR, provisionFleet } from './fleet-slots';
import { cpuSecondsOf } from './process-stats';
import { round, type Target } from './report';
import { countWorkflows, inPool, param, runBenchmark, untilCount } from './rig';

const N = param('BENCH_DRAIN_N', 1000);
const RATE = param('BENCH_DRAIN_RATE', 5);
const CONCURRENCY = param('BENCH_DRAIN_CONCURRENCY', 4);
const LATENCY_MS = param('BENCH_DRAIN_TOKEN_LATENCY_MS', 20);

await runBenchmark('paced-drain', Math.ceil(((3 * N) / RATE) * 1000 + 600_000), async (rig) => {
  const slotsDir = await rig.tempDir('drain-slots');
  const { server, client, slots: slotClient, pid: serverPid } = await rig.startServer();
  const tokens = await rig.startTokenServer({ latencyMs: LATENCY_MS, accessTtlSec: 8 * 3600 });
  const host = `bench-${randomUUID().slice(0, 8)}`;
  const taskQueue = `bench-drain-${randomUUID().slice(0, 8)}`;
  const worker = await rig.startWorker(client, {
    address: server.address,
    host,
    taskQueue,
    slotsDir,
    env: { CLAUDE_TOKEN_URL: tokens.claudeTokenUrl, PROVIDER_PACE: `claude=${RATE}/s:${CONCURRENCY}` },
  });
  const slots = slotClient(taskQueue);
  const adoptStart = Date.now();
  const fleet = await provisionFleet(rig, { client, slots, tokens, slotsDir, host, prefix: 'drain', count: N, timeoutMs: Math.ceil((2 * N) / RATE) * 1000 + 120_000 });
  const adoptMs = Date.now() - adoptStart;
  if (tokens.requests.length !== 0) throw new Error(`adoption made ${tokens.requests.length} token requests; the seeded credentials should have been fresh`);

  const t0 = Date.now();
  const cpu0 = { worker: await cpuSecondsOf(worker.pid), server: serverPid ? await cpuSecondsOf(serverPid) : undefined };
  const refreshedQuery = `${activeSlotsQuery(host)} AND SlotExpiresAt >= '${new Date(t0 + 8 * HOUR).toISOString()}'`;
  await inPool(fleet.slotIds, 64, (slotId) => slots.refreshNow(slotId));
  const signalsSentMs = Date.now() - t0;
  const allowedMs = 1.1 * (N / RATE) * 1000;
  let lastNote = 0;
  const refreshed = await untilCount(client, refreshedQuery, N, {
    timeoutMs: Math.ceil(allowedMs * 2 + 60_000),
    everyMs: 500,
    onCount: (c) => {
      if (Date.now() - lastNote > 5000) {
        lastNote = Date.now();
        rig.note(`${c}/${N} refreshed`);
      }
    },
  });
  const observedMs = Date.now() - t0;
  const cpu1 = { worker: await cpuSecondsOf(worker.pid), server: serverPid ? await cpuSecondsOf(serverPid) : undefined };

  // Measured at the token server: requests per whole second (from t0), and the worst one-second window.
  const requests = tokens.requests.filter((r) => r.at >= t0);
  const perSecond = new Map<number, number>();
  for (const r of requests) perSecond.set(Math.floor((r.at - t0) / 1000), (perSecond.get(Math.floor((r.at - t0) / 1000)) ?? 0) + 1);
  const ats = requests.map((r) => r.at).sort((a, b) => a - b);
  let worstWindow = 0;
  for (let i = 0, j = 0; i < ats.length; i++) {
    while ((ats[i] as number) - (ats[j] as number) >= 1000) j++;
    worstWindow = Math.max(worstWindow, i - j + 1);
  }
  const maxPerSecond = Math.max(0, ...perSecond.values());
  const lastRequestMs = ats.length > 0 ? (ats.at(-1) as number) - t0 : null;
  const troubled = await countWorkflows(client, `WorkflowType = 'slotWorkflow' AND ExecutionStatus = 'Running' AND SlotHost = '${host}' AND SlotPhase IN ('degraded', 'needs-relogin')`);
  const non200 = requests.filter((r) => r.status !== 200).length;
  await worker.stop();

  const targets: Record<string, Target> = {
    drainWithin: {
      target: `all ${N} refreshed within 1.1 x N/R = ${round(allowedMs / 1000, 1)} s`,
      measured: refreshed >= N ? round(observedMs / 1000, 1) : `${refreshed}/${N} after ${round(observedMs / 1000, 1)} s`,
      met: refreshed >= N ? observedMs <= allowedMs : false,
    },
    tokenServerPerSecond: {
      target: `the token server sees at most R = ${RATE} requests in any one second (whole seconds from the first signal)`,
      measured: maxPerSecond,
      met: maxPerSecond <= RATE,
    },
    noneDegraded: { target: 'no slot degraded or needing a login, every answer 200', measured: `${troubled} troubled, ${non200} non-200`, met: troubled === 0 && non200 === 0 },
  };
  return {
    parameters: {
      n: N,
      ratePerSecond: RATE,
      concurrencyPerProcess: CONCURRENCY,
      tokenLatencyMs: LATENCY_MS,
      pace: `PROVIDER_PACE=claude=${RATE}/s:${CONCURRENCY} (task-queue rate limit on slots.<host>:provider:claude, one worker process)`,
      server: 'temporal server start-dev (in memory), same machine',
    },
    results: {
      refreshed,
      observedAllRefreshedMs: observedMs,
      lastTokenRequestMs: lastRequestMs,
      signalsSentMs,
      tokenEndpoint: { requests: requests.length, rotated: requests.filter((r) => r.outcome === 'rotated').length, non200, presentedTwice: tokens.presentedTwice().length },
      maxRequestsInAWholeSecond: maxPerSecond,
      maxRequestsInAnySlidingSecond: worstWindow,
      requestsPerSecondHistogram: Object.fromEntries([...perSecond.entries()].sort((a, b) => a[0] - b[0])),
      adoption: { ms: adoptMs, note: 'each adoption check takes a turn at the pace, although a fresh credential sends nothing' },
      cpuSecondsDuringDrain: {
        worker: round((cpu1.worker ?? NaN) - (cpu0.worker ?? NaN), 2),
        temporalServer: cpu1.server !== undefined && cpu0.server !== undefined ? round(cpu1.server - cpu0.server, 2) : null,
      },
    },
    baseline: { what: 'the fleet benchmark of the last round drained 1000 due slots unpaced (as fast as the worker ran them): the burst this pace avoids' },
    targets,
    notes: [
      'observedAllRefreshedMs is seen through visibility (polled every 500 ms), so it is late by up to that much; lastTokenRequestMs is the token server\'s own clock.',
      'maxRequestsInAnySlidingSecond may exceed R when the server\'s token bucket lets a burst of R start a second that is not a whole one: the target is per whole second.',
    ],
  };
});
