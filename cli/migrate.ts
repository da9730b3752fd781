// Moves slots still running the v1 slot workflow (logins and refreshes as child
// workflows, which today's code cannot replay) onto v2: the v1 run is terminated
// and `slot:<id>` starts again from its own input, adopting the credential on disk.
import { WorkflowExecutionAlreadyStartedError, type Client, type WorkflowExecutionDescription } from '@temporalio/client';
import { fromPayloadsAtIndex, WorkflowNotFoundError, type Payload } from '@temporalio/common';
// CommonJS: Node's ESM loader cannot see its named exports.
import proto from '@temporalio/proto';
import { z } from 'zod';
import { SlotIdKey, SlotPhaseKey } from '../common/search-attributes';
import { SLOT_WORKFLOW_VERSION, slotWorkflowId } from '../common/slot';
import type { SlotInput } from '../common/slot-input';
import { listExecutions } from '../client/visibility';
import { slotStartOptions } from '../client/slot-client';

/** The memo value v2 runs set on themselves; a run without it is v1. */
export const V2_MEMO = { slotWorkflowVersion: SLOT_WORKFLOW_VERSION } as const;
/** Recorded as the v1 run's termination reason; also how a half-done migration is recognised. */
export const MIGRATION_REASON = 'migrating to slot workflow v2; the credential stays on the host';

/** Phases of a v1 login in flight: its URL or device code dies with the run. */
const MID_LOGIN = ['logging-in', 'awaiting-operator', 'verifying'];
/** Phases a v2 slot moves on from by itself within seconds of adopting. */
const PASSING = ['logging-in', 'verifying', 'refreshing'];
const { PENDING_ACTIVITY_STATE_STARTED } = proto.temporal.api.enums.v1.PendingActivityState;

export interface MigrateOptions {
  /** Read and check every v1 slot, change nothing. @default false */
  readonly dryRun?: boolean;
  /** Only these slots (a slot whose migration stopped half-way is resumed when named). @default every running v1 slot */
  readonly slotIds?: readonly string[];
  /** Queue of the v2 slot workflows (the deployment's `SLOTS_TASK_QUEUE`). */
  readonly taskQueue: string;
  /** How long to wait for a token request of a v1 refresh to finish before touching the slot. @default 120000 */
  readonly settleTimeoutMs?: number;
  /** How long to watch each new run for the v2 marker and its first phase; 0 does not wait. @default 15000 */
  readonly confirmTimeoutMs?: number;
  /** Slots migrated at once. @default 4 */
  readonly concurrency?: number;
}

/** What happened to one slot. Never a token: inputs are read, not shown. */
export type SlotMigration =
  | {
      readonly outcome: 'migrated';
      readonly slotId: string;
      /** Run id of the v1 run (terminated). */
      readonly from: string;
      /** Run id of the v2 run. */
      readonly to: string;
      /** The v1 run's phase when it was replaced. */
      readonly fromPhase?: string;
      /** The v2 run's phase once it took the slot (absent when no v2 worker ran it within `confirmTimeoutMs`). */
      readonly phase?: string;
      /** What the operator should know or do. */
      readonly note?: string;
    }
  | { readonly outcome: 'planned'; readonly slotId: string; readonly from: string; readonly fromPhase?: string; readonly note?: string }
  /** A v1 slot that was retiring: its run is ended, not restarted. */
  | { readonly outcome: 'ended'; readonly slotId: string; readonly from: string; readonly note: string }
  /** Named, but already on v2: nothing to do. */
  | { readonly outcome: 'skipped'; readonly slotId: string; readonly note: string }
  | { readonly outcome: 'failed'; readonly slotId: string; readonly from?: string; readonly error: string };

/** A v1 run to migrate, as found by describe. */
interface Candidate {
  readonly slotId: string;
  readonly runId: string;
  readonly running: boolean;
  readonly phase: string | undefined;
  readonly description: WorkflowExecutionDescription;
}

/** The fields migration needs from a v1 input; everything else is carried over unread. */
const V1Input = z.looseObject({
  slotId: z.string().min(1),
  provider: z.string().min(1),
  host: z.string().min(1),
  carried: z.unknown().optional(),
});

const isV2 = (memo: Record<string, unknown> | undefined): boolean => memo?.slotWorkflowVersion === V2_MEMO.slotWorkflowVersion;
const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));
const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Migrates every running v1 slot (or the named ones); one slot's failure never stops the others. */
export async function migrateSlots(client: Client, opts: MigrateOptions): Promise<SlotMigration[]> {
  const found = opts.slotIds ? await Promise.all(opts.slotIds.map((slotId) => findNamed(client, slotId))) : await findRunningV1(client);
  const orphans = opts.dryRun || found.every((f) => 'outcome' in f) ? new Map<string, Child[]>() : await runningChildren(client);
  const results: SlotMigration[] = new Array(found.length);
  let next = 0;
  const lanes = Array.from({ length: Math.max(1, Math.min(opts.concurrency ?? 4, found.length)) }, async () => {
    for (let i = next++; i < found.length; i = next++) {
      const item = found[i] as Candidate | SlotMigration;
      results[i] = 'outcome' in item ? item : await migrateOne(client, item, orphans.get(item.slotId) ?? [], opts).catch((err: unknown) => failed(item, message(err)));
    }
  });
  await Promise.all(lanes);
  return results;
}

const failed = (c: Pick<Candidate, 'slotId' | 'runId'>, error: string): SlotMigration => ({ outcome: 'failed', slotId: c.slotId, from: c.runId, error });

async function describeRun(client: Client, workflowId: string, runId?: string): Promise<WorkflowExecutionDescription | undefined> {
  try {
    return await client.workflow.getHandle(workflowId, runId).describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  }
}

function candidateOf(slotId: string, description: WorkflowExecutionDescription): Candidate {
  const phase = description.typedSearchAttributes.get(SlotPhaseKey);
  return { slotId, runId: description.runId, running: description.status.name === 'RUNNING', phase, description };
}

/**
 * Running slot workflows from raw visibility pages: the SDK's iterator decodes every
 * memo and stops at the first one sealed with a key this client lacks; here such a
 * slot is reported, and the others are still found.
 */
async function* runningSlotRuns(client: Client): AsyncGenerator<{ workflowId: string; runId: string; slotId: string; memo: Record<string, unknown> | Error }> {
  for await (const wf of listExecutions(client, `WorkflowType = 'slotWorkflow' AND ExecutionStatus = 'Running'`, { pageSize: 200 })) {
    const attrs = wf.searchAttributes instanceof Error ? undefined : wf.searchAttributes;
    const slotId = attrs?.get(SlotIdKey) ?? wf.workflowId.replace(/^slot:/, '');
    const memo = await decodeMemo(client, wf.memo).catch((err: unknown) => err as Error);
    yield { workflowId: wf.workflowId, runId: wf.runId, slotId, memo };
  }
}

async function decodeMemo(client: Client, fields: Record<string, Payload>): Promise<Record<string, unknown>> {
  const { payloadCodecs, payloadConverter } = client.options.loadedDataConverter;
  const out: Record<string, unknown> = {};
  for (const [key, payload] of Object.entries(fields)) {
    let decoded = [payload];
    for (const codec of [...payloadCodecs].reverse()) decoded = await codec.decode(decoded);
    out[key] = fromPayloadsAtIndex(payloadConverter, 0, decoded);
  }
  return out;
}

async function findRunningV1(client: Client): Promise<Array<Candidate | SlotMigration>> {
  const found: Array<Candidate | SlotMigration> = [];
  for await (const wf of runningSlotRuns(client)) {
    if (wf.memo instanceof Error) {
      found.push({ outcome: 'failed', slotId: wf.slotId, from: wf.runId, error: `cannot read its memo (${wf.memo.message}); run slotctl migrate with the payload keys (SLOTS_ENCRYPTION_KEYS) or SLOTS_CODEC_URL` });
      continue;
    }
    if (isV2(wf.memo)) continue;
    // Visibility lags: the run itself says whether it is still v1 and running.
    const description = await describeRun(client, wf.workflowId, wf.runId).catch((err: unknown) => err as Error);
    if (description instanceof Error) found.push({ outcome: 'failed', slotId: wf.slotId, from: wf.runId, error: `cannot describe it: ${description.message}` });
    else if (description && description.status.name === 'RUNNING' && !isV2(description.memo)) found.push(candidateOf(wf.slotId, description));
  }
  return found;
}

async function findNamed(client: Client, slotId: string): Promise<Candidate | SlotMigration> {
  let description: WorkflowExecutionDescription | undefined;
  try {
    description = await describeRun(client, slotWorkflowId(slotId));
  } catch (err) {
    return { outcome: 'failed', slotId, error: `cannot describe it: ${message(err)}` };
  }
  if (!description) return { outcome: 'failed', slotId, error: `slot ${slotId} has no workflow (${slotWorkflowId(slotId)} not found)` };
  if (description.type !== 'slotWorkflow') return { outcome: 'failed', slotId, error: `${slotWorkflowId(slotId)} is a ${description.type}, not a slot workflow` };
  if (isV2(description.memo)) {
    return description.status.name === 'RUNNING'
      ? { outcome: 'skipped', slotId, note: 'already runs slot workflow v2' }
      : { outcome: 'failed', slotId, error: `slot ${slotId} is not running (its v2 run is ${description.status.name}); nothing to migrate` };
  }
  // A closed v1 run is only taken up again when a migration ended it (a start that failed after the terminate).
  return candidateOf(slotId, description);
}

/** The v1 run's own input (its first history event) and, for a closed run, why it closed. */
async function readRun(client: Client, c: Candidate): Promise<{ input: z.infer<typeof V1Input>; terminatedBy?: string }> {
  const history = await client.workflow.getHandle(slotWorkflowId(c.slotId), c.runId).fetchHistory();
  const payloads = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads;
  if (!payloads?.length) throw new Error('its history has no start input');
  const { payloadCodecs, payloadConverter } = client.options.loadedDataConverter;
  let decoded = payloads as Payload[];
  // Codecs decode in reverse order of encoding (an encrypting codec is the usual one).
  for (const codec of [...payloadCodecs].reverse()) decoded = await codec.decode(decoded);
  const parsed = V1Input.safeParse(fromPayloadsAtIndex(payloadConverter, 0, decoded));
  // Field names only: an input is not secret, but it is not ours to print either.
  if (!parsed.success) throw new Error(`its input is not a slot input (${parsed.error.issues.map((i) => i.path.join('.') || '(root)').join(', ')})`);
  if (parsed.data.slotId !== c.slotId) throw new Error(`its input names slot ${JSON.stringify(parsed.data.slotId)}, not ${c.slotId}`);
  const last = history.events?.[history.events.length - 1];
  const terminatedBy = last?.workflowExecutionTerminatedEventAttributes?.reason ?? undefined;
  return { input: parsed.data, ...(terminatedBy !== undefined ? { terminatedBy } : {}) };
}

type Child = { readonly workflowId: string; readonly runId?: string };

/** Running v1 children by slot id: orphans of an earlier, half-done migration included. One query per batch. */
async function runningChildren(client: Client): Promise<Map<string, Child[]>> {
  const bySlot = new Map<string, Child[]>();
  // Raw rows: a child's memo is never needed, and one sealed with another key would stop the SDK's iterator.
  for await (const wf of listExecutions(client, `WorkflowType IN ('loginWorkflow', 'refreshWorkflow') AND ExecutionStatus = 'Running'`)) {
    const slotId = /^(?:login|refresh):(.+):\d+$/.exec(wf.workflowId)?.[1];
    if (slotId) bySlot.set(slotId, [...(bySlot.get(slotId) ?? []), { workflowId: wf.workflowId, runId: wf.runId }]);
  }
  return bySlot;
}

/** The v1 children of a slot (logins, refreshes): the run's pending ones (visibility may lag) and any orphans. */
function childrenOf(description: WorkflowExecutionDescription, orphans: readonly Child[]): Child[] {
  const children = new Map<string, string | undefined>(orphans.map((o) => [o.workflowId, o.runId]));
  for (const child of description.raw.pendingChildren ?? []) if (child.workflowId) children.set(child.workflowId, child.runId ?? undefined);
  return [...children].map(([workflowId, runId]) => ({ workflowId, ...(runId ? { runId } : {}) }));
}

/**
 * Waits until no v1 refresh of the slot is talking to the token endpoint: a
 * rotating refresh token presented twice (by the ending v1 request and by v2's
 * first check) would revoke the whole grant.
 */
async function settle(client: Client, children: readonly Child[], timeoutMs: number): Promise<string | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (const child of children.filter((c) => c.workflowId.startsWith('refresh:'))) {
    for (;;) {
      const d = await describeRun(client, child.workflowId, child.runId);
      const busy = d?.status.name === 'RUNNING' && (d.raw.pendingActivities ?? []).some((a) => a.state === PENDING_ACTIVITY_STATE_STARTED);
      if (!busy) break;
      if (Date.now() >= deadline) return child.workflowId;
      await pause(250);
    }
  }
  return undefined;
}

async function terminate(client: Client, workflowId: string, runId?: string): Promise<void> {
  try {
    await client.workflow.getHandle(workflowId, runId).terminate(MIGRATION_REASON);
  } catch (err) {
    // Already closed: nothing left to stop.
    if (!(err instanceof WorkflowNotFoundError)) throw err;
  }
}

/** What an operator should know about a slot migrated from `phase`, under its own `onPermanentFailure`. */
function noteFor(slotId: string, phase: string | undefined, onPermanentFailure: unknown): string | undefined {
  // v2 adopts: a missing or dead credential is a permanent refresh failure, handled by the slot's policy.
  const withoutOne =
    onPermanentFailure === 'wait'
      ? `without a usable one it goes to needs-relogin: run slotctl relogin ${slotId}`
      : `without a usable one it goes to needs-relogin and starts a new login at once (its URL: slotctl status ${slotId})`;
  if (phase && MID_LOGIN.includes(phase)) return `was ${phase}: that login's URL or code is void; the slot adopts the credential on disk; ${withoutOne}`;
  if (phase === 'needs-relogin') return `was needs-relogin: the credential on disk is checked again; ${withoutOne}`;
  return undefined;
}

async function migrateOne(client: Client, c: Candidate, orphans: readonly Child[], opts: MigrateOptions): Promise<SlotMigration> {
  const workflowId = slotWorkflowId(c.slotId);
  let run: Awaited<ReturnType<typeof readRun>>;
  try {
    run = await readRun(client, c);
  } catch (err) {
    return failed(c, `cannot read the v1 run's input: ${message(err)}; nothing was changed`);
  }
  if (!c.running && run.terminatedBy !== MIGRATION_REASON) {
    return failed(c, `slot ${c.slotId} is not running (its last run is ${c.description.status.name}); nothing to migrate`);
  }
  const note = noteFor(c.slotId, c.phase, run.input.onPermanentFailure);
  const retiring = c.phase === 'retired';
  if (opts.dryRun) {
    return retiring
      ? { outcome: 'planned', slotId: c.slotId, from: c.runId, fromPhase: 'retired', note: 'is retiring: its v1 run would be ended, not restarted' }
      : { outcome: 'planned', slotId: c.slotId, from: c.runId, ...(c.phase ? { fromPhase: c.phase } : {}), ...(note ? { note } : {}) };
  }

  // Described again: in a long batch the run found at the start may have moved on.
  const latest = await describeRun(client, workflowId, c.runId);
  if (c.running && latest?.status.name !== 'RUNNING') {
    return failed(c, `the v1 run ${latest ? `is ${latest.status.name}` : 'is gone'} since it was found (continued as new?); nothing was changed; run slotctl migrate ${c.slotId} again`);
  }
  const children = childrenOf(latest ?? c.description, orphans);
  const busy = await settle(client, children, opts.settleTimeoutMs ?? 120_000);
  if (busy) return failed(c, `${busy} is still calling the token endpoint; nothing was changed; run slotctl migrate ${c.slotId} again`);
  if (c.running) await terminate(client, workflowId, c.runId);
  // Their parent's close asks them to cancel, but no v2 worker runs v1 children: end them here.
  for (const child of children) await terminate(client, child.workflowId, child.runId);
  if (retiring) return { outcome: 'ended', slotId: c.slotId, from: c.runId, note: 'was retiring: its v1 run was ended, not restarted' };

  const { carried: _carried, ...original } = run.input;
  const input: SlotInput = { ...(original as SlotInput), adoptExisting: true };
  let to: string;
  try {
    // As SlotClient.provision starts a slot; the workflow publishes its phase from here on.
    const handle = await client.workflow.start('slotWorkflow', slotStartOptions(input, opts.taskQueue));
    to = handle.firstExecutionRunId;
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      return failed(c, `the v1 run was ended, but ${workflowId} was started meanwhile by someone else; see: slotctl status ${c.slotId}`);
    }
    return failed(c, `the v1 run was ended, but starting v2 failed (${message(err)}); the credential is untouched: run slotctl migrate ${c.slotId} again`);
  }

  const confirmed = await confirm(client, workflowId, to, opts.confirmTimeoutMs ?? 15_000);
  const unconfirmed =
    (opts.confirmTimeoutMs ?? 15_000) > 0 && !confirmed
      ? `no v2 worker has run it yet: is an upgraded worker polling task queue ${opts.taskQueue}?`
      : undefined;
  const notes = [note, unconfirmed].filter(Boolean).join('; ');
  return {
    outcome: 'migrated',
    slotId: c.slotId,
    from: c.runId,
    to,
    ...(c.phase ? { fromPhase: c.phase } : {}),
    ...(confirmed ? { phase: confirmed } : {}),
    ...(notes ? { note: notes } : {}),
  };
}

/** The new run's phase once v2 code has marked it and moved past its first step; undefined if not within the time. */
async function confirm(client: Client, workflowId: string, runId: string, timeoutMs: number): Promise<string | undefined> {
  if (timeoutMs <= 0) return undefined;
  const deadline = Date.now() + timeoutMs;
  let phase: string | undefined;
  for (;;) {
    const d = await describeRun(client, workflowId, runId);
    if (d && isV2(d.memo)) {
      phase = d.typedSearchAttributes.get(SlotPhaseKey) ?? phase;
      if (phase && !PASSING.includes(phase)) return phase;
    }
    if (Date.now() >= deadline) return phase;
    await pause(200);
  }
}
