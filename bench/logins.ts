// Concurrent logins: 50, then 200 PTY logins in flight on one worker (Claude fixture CLI).
// Time from provision to the prompt an operator sees, and what each session in
// flight costs the worker in memory; then the codes go in and every login ends.
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import type { SlotClient } from '../client/slot-client';
import { slotWorkflowId } from '../common/slot';
import { activityCompleted, activityName, eventMs, historyOf, type HistoryEvent } from './history';
import { memoryOf, processesWithEnv, sampleRss } from './process-stats';
import { distribution, mib, round } from './report';
import { cpuBetween, cpuSnapshot, listParam, Rig, runBenchmark, settledRss, sleep, untilCount } from './rig';

const SIZES = listParam('BENCH_LOGINS_SESSIONS', [50, 200]);
const FIXTURE_SPEED = process.env.BENCH_FIXTURE_SPEED || '0.1';


/** The moment the slot published `phase` (its search attribute upsert, i.e. what status and the UI show). */
function phaseShownAt(events: readonly HistoryEvent[], phase: string): number | undefined {
  for (const e of events) {
    const field = e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields?.SlotPhase;
    if (!field?.data) continue;
    try {
      if (JSON.parse(Buffer.from(field.data).toString('utf8')) === phase) return eventMs(e);
    } catch {
      // not JSON: not ours
    }
  }
  return undefined;
}

async function promptTimes(client: Client, slotId: string, provisionedAt: number): Promise<{ shown?: number; read?: number }> {
  // The login is a step of the slot's own workflow: its activities are in the slot's history.
  const slot = await historyOf(client, slotWorkflowId(slotId));
  const shown = phaseShownAt(slot, 'awaiting-operator');
  const completed = activityCompleted(slot, slot.find((e) => activityName(e) === 'startLogin'));
  return {
    ...(shown !== undefined ? { shown: shown - provisionedAt } : {}),
    ...(completed ? { read: eventMs(completed) - provisionedAt } : {}),
  };
}

/**
 * The prompt as an operator gets it from `status`. A worker busy with every login's workflow
 * task may not answer within the query deadline: the client then answers `stale`, from the
 * search attributes, with the URL the slot published (`publishedPrompt`). Asked again, as an
 * operator would, before acting on that URL.
 */
async function promptOf(slots: SlotClient, slotId: string): Promise<{ url?: string; phase: string; stale: number; asks: number[] }> {
  const asks: number[] = [];
  let stale = 0;
  for (;;) {
    const asked = Date.now();
    const status = await slots.status(slotId);
    asks.push(Date.now() - asked);
    if (status.prompt) return { url: status.prompt.url, phase: status.phase, stale, asks };
    if (!status.stale) return { phase: status.phase, stale, asks };
    stale += 1;
    if (stale >= 3) return { ...(status.publishedPrompt ? { url: status.publishedPrompt.url } : {}), phase: status.phase, stale, asks };
  }
}

const inPhase = (host: string, phase: string): string =>
  `WorkflowType = 'slotWorkflow' AND ExecutionStatus = 'Running' AND SlotHost = '${host}' AND SlotPhase = '${phase}'`;

/** One size: its own server and worker, so sizes do not share a warm cache. */
async function runSessions(parent: Rig, SESSIONS: number): Promise<Record<string, unknown>> {
  const rig = new Rig(`logins:${SESSIONS}`);
  parent.defer(() => rig.cleanup());
  try {
    return await sessionsOn(rig, SESSIONS);
  } finally {
    await rig.cleanup();
  }
}

async function sessionsOn(rig: Rig, SESSIONS: number): Promise<Record<string, unknown>> {
  const slotsDir = await rig.tempDir('logins-slots');
  const { server, client, slots: slotClient, pid: serverPid } = await rig.startServer();
  const host = `bench-${randomUUID().slice(0, 8)}`;
  const taskQueue = `bench-logins-${randomUUID().slice(0, 8)}`;
  const worker = await rig.startWorker(client, {
    address: server.address,
    host,
    taskQueue,
    slotsDir,
    env: { FIXTURE_SPEED, FIXTURE_INPUT_LOG: join(slotsDir, '.input.log') },
  });
  const slots = slotClient(taskQueue);

  const emptyKiB = await settledRss(worker, 5);
  rig.note(`worker RSS with no session: ${mib(emptyKiB)} MiB; starting ${SESSIONS} logins at once`);
  const slotIds = Array.from({ length: SESSIONS }, (_, i) => `login-${i}`);
  const provisionedAt = new Map<string, number>();
  const cpu0 = await cpuSnapshot(worker.pid, serverPid);
  const burstRss = sampleRss(worker.pid, 250);
  const burstStart = Date.now();
  await Promise.all(
    slotIds.map(async (slotId) => {
      provisionedAt.set(slotId, Date.now());
      await slots.provision({ slotId, provider: 'claude', host });
    }),
  );
  const waiting = await untilCount(client, inPhase(host, 'awaiting-operator'), SESSIONS, { timeoutMs: Math.max(180_000, SESSIONS * 2000), everyMs: 200 });
  const allPromptsMs = Date.now() - burstStart;
  const cpu = cpuBetween(cpu0, await cpuSnapshot(worker.pid, serverPid));
  const peakDuringBurst = Math.max(...burstRss.stop());
  rig.note(`${waiting}/${SESSIONS} awaiting the operator after ${(allPromptsMs / 1000).toFixed(1)} s`);

  const times = await Promise.all(slotIds.map((id) => promptTimes(client, id, provisionedAt.get(id) as number)));
  const shown = times.map((t) => t.shown).filter((x): x is number => x !== undefined);
  const read = times.map((t) => t.read).filter((x): x is number => x !== undefined);

  // Every session is alive now: the worker holds 50 PTYs, screens and slot workflows (the login is a step of each).
  const inFlightKiB = await settledRss(worker, 5);
  const clis = await processesWithEnv('HOME', `${slotsDir}/`);
  let cliRss = 0;
  let cliPss = 0;
  for (const pid of clis) {
    const m = await memoryOf(pid);
    cliRss += m?.rssKiB ?? 0;
    cliPss += m?.pssKiB ?? 0;
  }
  const sessionsStats = await worker.stats(false);
  rig.note(`worker RSS with ${SESSIONS} sessions: ${mib(inFlightKiB)} MiB; ${clis.length} CLI processes`);

  // The operators answer, all at once, every slot that shows a prompt. On a machine that could not bring
  // every CLI up, the run is reported as partial (how many prompted, answered, ended active) instead of failing.
  const submitStart = Date.now();
  let staleStatuses = 0;
  const statusMs: number[] = [];
  const answers = await Promise.all(
    slotIds.map(async (slotId): Promise<{ at: number } | { error: string }> => {
      try {
        const prompt = await promptOf(slots, slotId);
        staleStatuses += prompt.stale;
        statusMs.push(...prompt.asks);
        if (!prompt.url) return { error: `no prompt (phase ${prompt.phase}${prompt.stale > 0 ? `, ${prompt.stale} stale answers` : ''})` };
        const state = new URL(prompt.url).searchParams.get('state') ?? '';
        const at = Date.now();
        await slots.submitCode(slotId, `valid-code#${state}`);
        return { at };
      } catch (err) {
        return { error: err instanceof Error ? err.message.slice(0, 200) : String(err) };
      }
    }),
  );
  const answered = answers.filter((a): a is { at: number } => 'at' in a).length;
  const unanswered = answers.flatMap((a, i) => ('error' in a ? [{ slotId: slotIds[i], why: a.error }] : []));
  if (unanswered.length > 0) rig.note(`${unanswered.length} slots could not be answered (first: ${unanswered[0]?.slotId}: ${unanswered[0]?.why})`);
  const active = await untilCount(client, inPhase(host, 'active'), answered, { timeoutMs: Math.max(180_000, SESSIONS * 2000), everyMs: 200 });
  const allActiveMs = Date.now() - submitStart;
  const toActive: number[] = [];
  for (const [i, slotId] of slotIds.entries()) {
    const answer = answers[i];
    if (!answer || !('at' in answer)) continue;
    const shownActive = phaseShownAt(await historyOf(client, slotWorkflowId(slotId)), 'active');
    if (shownActive !== undefined) toActive.push(shownActive - answer.at);
  }
  await Promise.all(slotIds.map((slotId) => slots.retire(slotId, { removeFiles: true })));
  await sleep(5000);
  const leftover = await processesWithEnv('HOME', `${slotsDir}/`);
  const afterKiB = (await memoryOf(worker.pid))?.rssKiB ?? NaN;

  return {
    parameters: {
      sessions: SESSIONS,
      provider: 'claude fixture (test/fixtures/bin/claude auth login) under node-pty, one worker',
      fixtureSpeed: Number(FIXTURE_SPEED),
      start: `all ${SESSIONS} provisioned at once (one SlotClient.provision each, concurrently)`,
      timeToPrompt: 'from the provision call to the slot publishing awaiting-operator with the URL (its search-attribute upsert: what status, slotctl and the UI show), from the slot\'s history',
      server: 'temporal server start-dev, in memory',
      worker: 'bench/worker-entry.ts → workers/worker.ts runWorker, own process',
    },
    results: {
      /** False when not every login reached its prompt, was answered and ended active: the figures cover the ones that did. */
      complete: waiting >= SESSIONS && answered === SESSIONS && active >= SESSIONS,
      promptsShown: shown.length,
      timeToPromptMs: distribution(shown, 0),
      /** When startLogin returned (the worker had read the URL off the screen). */
      timeToPromptReadByWorkerMs: distribution(read, 0),
      allPromptsWithinMs: allPromptsMs,
      cpuDuringBurst: cpu,
      workerRss: {
        noSessionMiB: mib(emptyKiB),
        peakDuringBurstMiB: mib(peakDuringBurst),
        sessionsInFlightMiB: mib(inFlightKiB),
        perSessionKiB: round((inFlightKiB - emptyKiB) / SESSIONS, 0),
        heapUsedMainIsolateMiB: round(sessionsStats.memory.heapUsed / 2 ** 20, 1),
        afterRetireMiB: mib(afterKiB),
        note: 'per session = (RSS with all sessions in flight − RSS with none) / sessions; it includes the slot workflow cached for each (see idle-cost for a sleeping slot alone)',
      },
      loginCliProcesses: {
        count: clis.length,
        rssKiBPerSession: round(cliRss / (clis.length || 1), 0),
        pssKiBPerSession: round(cliPss / (clis.length || 1), 0),
        note: 'the fixture CLI is a small Node script; a real claude CLI is larger. Not part of the worker',
      },
      completion: {
        answered,
        /** Each `status` call of the operators' burst (every slot at once), and how many were answered stale (no worker within 10 s). */
        statusMs: distribution(statusMs, 0),
        staleStatuses,
        ...(unanswered.length > 0 ? { unanswered: unanswered.slice(0, 10), unansweredCount: unanswered.length } : {}),
        active,
        allActiveWithinMs: allActiveMs,
        submitToActiveMs: distribution(toActive, 0),
        processesLeftAfterRetire: leftover.length,
      },
    },
  };
}

await runBenchmark('logins', 40 * 60_000, async (rig) => {
  const sizes: Record<string, unknown>[] = [];
  for (const n of SIZES) {
    rig.note(`${n} concurrent logins`);
    sizes.push(await runSessions(rig, n));
  }
  return {
    parameters: { sessions: SIZES, fixtureSpeed: Number(FIXTURE_SPEED) },
    results: { sizes },
    baseline: {
      what: 'none measured: the scripts run one login at a time per slot, each in its own terminal; their per-slot process cost is in idle-cost',
    },
    targets: {},
  };
});
