// Storm: N Claude slots of one host invalidated at once (every grant revoked at the
// token server), then all due. Targets: exactly one incident notice at the webhook;
// login starts never above the configured concurrency (and never more than R in a
// second); all N awaiting an operator within the time the pace implies.
import { randomUUID } from 'node:crypto';
import type { NoticeBody } from '../common/notices';
import { slotWorkflowId } from '../common/slot';
import { startWebhookReceiver } from '../test/peers/webhook-receiver';
import { activeSlotsQuery, provisionFleet } from './fleet-slots';
import { activityName, EventType, eventMs, historyOf } from './history';
import { processesWithEnv } from './process-stats';
import { round, type Target } from './report';
import { countWorkflows, inPool, param, runBenchmark, sleep, untilCount } from './rig';

const N = param('BENCH_STORM_N', 200);
const RATE = param('BENCH_STORM_RATE', 5);
const CONCURRENCY = param('BENCH_STORM_CONCURRENCY', 2);
const THRESHOLD = param('BENCH_STORM_THRESHOLD', 5);

await runBenchmark('storm', Math.ceil(((4 * N) / RATE) * 1000 + 600_000), async (rig) => {
  const slotsDir = await rig.tempDir('storm-slots');
  const { server, client, slots: slotClient } = await rig.startServer();
  const tokens = await rig.startTokenServer({ accessTtlSec: 8 * 3600 });
  const notices: NoticeBody[] = [];
  const webhook = await startWebhookReceiver(notices);
  rig.defer(async () => webhook.close());
  const host = `bench-${randomUUID().slice(0, 8)}`;
  const taskQueue = `bench-storm-${randomUUID().slice(0, 8)}`;
  const worker = await rig.startWorker(client, {
    address: server.address,
    host,
    taskQueue,
    slotsDir,
    env: {
      CLAUDE_TOKEN_URL: tokens.claudeTokenUrl,
      PROVIDER_PACE: `claude=${RATE}/s:${CONCURRENCY}`,
      NOTIFY_WEBHOOK_URL: `http://127.0.0.1:${webhook.port}/hook`,
      INCIDENT_THRESHOLD: String(THRESHOLD),
      FIXTURE_SPEED: '0.2',
    },
  });
  const slots = slotClient(taskQueue);
  const fleet = await provisionFleet(rig, { client, slots, tokens, slotsDir, host, prefix: 'storm', count: N, timeoutMs: Math.ceil((2 * N) / RATE) * 1000 + 120_000 });

  // Every login CLI the host starts, first seen by a 100 ms sampling of /proc.
  const firstSeen = new Map<number, number>();
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      for (const pid of await processesWithEnv('HOME', `${slotsDir}/`)) if (!firstSeen.has(pid)) firstSeen.set(pid, Date.now());
      await sleep(100);
    }
  })();

  // The provider-wide invalidation, then every slot due at once.
  for (const grantId of fleet.grants.values()) {
    const grant = tokens.grant(grantId);
    if (grant) tokens.revoke(grant.refreshToken);
  }
  const t0 = Date.now();
  await inPool(fleet.slotIds, 64, (slotId) => slots.refreshNow(slotId));
  // A refresh and a login start per slot, both on the provider's paced queue.
  const allowedMs = 1.1 * ((2 * N) / RATE) * 1000 + 10_000;
  let lastNote = 0;
  const awaiting = await untilCount(client, `WorkflowType = 'slotWorkflow' AND ExecutionStatus = 'Running' AND SlotHost = '${host}' AND SlotPhase = 'awaiting-operator'`, N, {
    timeoutMs: Math.ceil(allowedMs * 2),
    everyMs: 500,
    onCount: (c) => {
      if (Date.now() - lastNote > 5000) {
        lastNote = Date.now();
        rig.note(`${c}/${N} awaiting an operator`);
      }
    },
  });
  const awaitingMs = Date.now() - t0;
  await sleep(3000);
  sampling = false;
  await sampler;
  const stillActive = await countWorkflows(client, activeSlotsQuery(host));

  // startLogin activities from the histories: started → completed, and how many ran at once.
  const intervals = (
    await inPool(fleet.slotIds, 16, async (slotId) => {
      const events = await historyOf(client, slotWorkflowId(slotId));
      const scheduled = events.filter((e) => activityName(e) === 'startLogin').map((e) => String(e.eventId));
      return events
        .filter((e) => e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED && scheduled.includes(String(e.activityTaskStartedEventAttributes?.scheduledEventId)))
        .map((started) => {
          const closed = events.find((e) => String(e.activityTaskCompletedEventAttributes?.scheduledEventId ?? e.activityTaskFailedEventAttributes?.scheduledEventId ?? '') === String(started.activityTaskStartedEventAttributes?.scheduledEventId));
          return { start: eventMs(started), end: closed ? eventMs(closed) : Date.now() };
        });
    })
  ).flat();
  const edges = intervals.flatMap((i) => [{ at: i.start, d: 1 }, { at: i.end, d: -1 }]).sort((a, b) => a.at - b.at || a.d - b.d);
  let running = 0;
  let maxRunning = 0;
  for (const e of edges) maxRunning = Math.max(maxRunning, (running += e.d));
  const starts = [...firstSeen.values()].filter((at) => at >= t0);
  const perSecond = new Map<number, number>();
  for (const at of starts) perSecond.set(Math.floor((at - t0) / 1000), (perSecond.get(Math.floor((at - t0) / 1000)) ?? 0) + 1);
  await worker.stop();

  const byKind = (kind: string): number => notices.filter((n) => n.kind === kind).length;
  const perSlotNotices = notices.filter((n) => n.slotId !== undefined).length;
  const targets: Record<string, Target> = {
    oneIncidentNotice: { target: 'exactly one incident notice at the webhook', measured: byKind('provider-incident'), met: byKind('provider-incident') === 1 },
    loginStartsWithinConcurrency: {
      target: `startLogin activities running at once never above the concurrency (${CONCURRENCY}, one worker process)`,
      measured: maxRunning,
      met: intervals.length > 0 ? maxRunning <= CONCURRENCY : null,
    },
    allAwaitingWithinPace: {
      target: `all ${N} awaiting an operator within 1.1 x 2N/R + 10 s = ${round(allowedMs / 1000, 1)} s (a refresh and a login start per slot at R/s)`,
      measured: awaiting >= N ? round(awaitingMs / 1000, 1) : `${awaiting}/${N} after ${round(awaitingMs / 1000, 1)} s`,
      met: awaiting >= N && awaitingMs <= allowedMs,
    },
  };
  return {
    parameters: { n: N, ratePerSecond: RATE, concurrencyPerProcess: CONCURRENCY, incidentThreshold: THRESHOLD, incidentWindowMinutes: 10, holdRelogins: false, server: 'temporal server start-dev (in memory), same machine', loginCli: 'test/fixtures/bin/claude (FIXTURE_SPEED=0.2)' },
    results: {
      awaitingOperator: awaiting,
      awaitingMs,
      slotsStillActive: stillActive,
      notices: { incident: byKind('provider-incident'), perSlot: perSlotNotices, perSlotByKind: Object.fromEntries(['needs-relogin', 'awaiting-operator', 'degraded'].map((k) => [k, byKind(k)])) },
      loginCliStarts: { seen: starts.length, maxInAWholeSecond: Math.max(0, ...perSecond.values()) },
      startLoginActivities: { count: intervals.length, maxRunningAtOnce: maxRunning },
      tokenEndpoint: { requests: tokens.requests.filter((r) => r.at >= t0).length, refused: tokens.requests.filter((r) => r.at >= t0 && r.status !== 200).length },
    },
    baseline: { what: `before incidents: ${N} needs-relogin notices, ${N} awaiting-operator notices, and ${N} login CLIs started as fast as the worker ran them` },
    targets,
    notes: [
      `The first ${THRESHOLD - 1} slots to fail are below the threshold: each sends its own needs-relogin notice (and may announce its login) before the incident opens; from the threshold on, slots send none.`,
      'Login CLI starts are first seen by sampling /proc every 100 ms: a CLI that lived less than that may be missed.',
    ],
  };
});
