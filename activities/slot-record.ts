// The host as the trust anchor: each slot's provider and configuration, recorded on
// its host when the slot is first set up there. Every host activity asks
// `checkSlotRequest` first: only workflow `slot:<id>` may act on slot <id>, and only
// with the provider and configuration this host recorded (workflow input can be
// written by anyone who may start workflows; this file cannot).
import { ApplicationFailure, Context } from '@temporalio/activity';
import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import { FailureType, ProviderConfigError, UnknownProviderError } from '../common/failures';
import { slotIdProblem, slotWorkflowId } from '../common/slot';
import { parseProviderConfig } from '../providers';
import { ensureSlotHome, readSecretFile, slotHome, writeSecretFileAtomic } from './credential-store';

/** 0600 in the slot home; removed with it (`retire --remove-files`), and only then. */
export const SLOT_RECORD_FILE = '.slot-record.json';

/** What a host activity's input says about the slot it acts on. */
export interface SlotRequest {
  readonly slotId: string;
  /** Absent for activities that name no provider (status, file removal, discarding a device code). */
  readonly provider?: string;
  readonly providerConfig?: unknown;
}

const SlotRecord = z.object({
  version: z.literal(1),
  slotId: z.string(),
  provider: z.string(),
  /** Normalised by the provider's schema (defaults filled in); null for providers without configuration. */
  providerConfig: z.unknown(),
  createdBy: z.object({ workflowId: z.string(), runId: z.string() }),
  createdAt: z.string(),
});
type SlotRecord = z.infer<typeof SlotRecord>;

const refuse = (message: string): ApplicationFailure => ApplicationFailure.nonRetryable(message, FailureType.slotRequestRefused);

/** JSON as the record stores it, so that a value and its stored copy compare equal. */
const asStored = (value: unknown): unknown => JSON.parse(JSON.stringify(value ?? null)) as unknown;

/**
 * Refuses (SlotRequestRefused) a request for slot <id> not made by workflow
 * `slot:<id>`, or whose provider or normalised configuration differs from the
 * slot's record on this host. The first request that names a provider for a slot
 * without a record writes it: a new slot, and also (trust on first use) a slot
 * migrated from v1 or adopted with files but no record yet.
 */
export async function checkSlotRequest(deps: { readonly slotsDir: string }, input: SlotRequest): Promise<void> {
  // Set by the server from the workflow that scheduled the activity: the one thing here its input cannot choose.
  const execution = Context.current().info.workflowExecution;
  const workflowId = execution?.workflowId ?? '(no workflow)';
  const runId = execution?.runId ?? '';
  const problem = slotIdProblem(input.slotId);
  if (problem) throw refuse(`refusing a request from workflow ${quoted(workflowId)}: ${problem}`);
  if (workflowId !== slotWorkflowId(input.slotId) && !isV1Child(Context.current().info.workflowType ?? '', workflowId, input.slotId)) {
    throw refuse(`refusing a request for slot ${input.slotId} from workflow ${quoted(workflowId)}: only the workflow ${slotWorkflowId(input.slotId)} may act on this slot`);
  }
  if (input.provider === undefined) return;
  let config: unknown;
  try {
    config = asStored(parseProviderConfig(input.provider, input.providerConfig));
  } catch (err) {
    // The activity refuses the same input with its own failure type (it parses with the same function).
    if (err instanceof UnknownProviderError || err instanceof ProviderConfigError) return;
    throw err;
  }

  const home = slotHome(deps.slotsDir, input.slotId);
  const read = await readSecretFile(home, SLOT_RECORD_FILE, { requirePrivate: true });
  if (!read.ok && read.reason === 'missing') {
    const record: SlotRecord = {
      version: 1,
      slotId: input.slotId,
      provider: input.provider,
      providerConfig: config,
      createdBy: { workflowId, runId },
      createdAt: new Date().toISOString(),
    };
    await writeSecretFileAtomic(await ensureSlotHome(deps.slotsDir, input.slotId), SLOT_RECORD_FILE, `${JSON.stringify(record, null, 2)}\n`);
    return;
  }
  const unusable = (why: string): ApplicationFailure =>
    refuse(`refusing a request for slot ${input.slotId}: its record ${SLOT_RECORD_FILE} on this host ${why}; inspect the slot home, or retire the slot with --remove-files and provision it again`);
  if (!read.ok) throw unusable(`cannot be used (${read.message})`);
  let record: SlotRecord;
  try {
    record = SlotRecord.parse(JSON.parse(read.text));
  } catch {
    throw unusable('is damaged');
  }
  const differences = [
    ...(record.slotId !== input.slotId ? [`slotId: pinned ${record.slotId}, asked ${input.slotId}`] : []),
    ...(record.provider !== input.provider ? [`provider: pinned ${record.provider}, asked ${input.provider}`] : []),
    ...(record.provider === input.provider ? configDifferences(record.providerConfig, config, 'providerConfig') : []),
  ];
  if (differences.length === 0) return;
  throw refuse(
    `refusing a request for slot ${input.slotId}: this host pinned the slot to provider ${record.provider} and its configuration ` +
      `when ${record.createdBy.workflowId} created it (${record.createdAt}), and the request differs: ${differences.join('; ')}. ` +
      `To change them, retire the slot with --remove-files and provision it again; or provision it with the old configuration`,
  );
}

/**
 * A v1 slot's login and refresh ran as child workflows (`login:<id>:<n>`,
 * `refresh:<id>:<n>`, types registered only by v1 workers); one in flight when the
 * slot is migrated must still finish. Their provider and configuration are checked
 * like anyone's. Drop this once no v1 worker runs.
 */
const isV1Child = (workflowType: string, workflowId: string, slotId: string): boolean =>
  (workflowType === 'loginWorkflow' && new RegExp(`^login:${slotId}:\\d+$`).test(workflowId)) ||
  (workflowType === 'refreshWorkflow' && new RegExp(`^refresh:${slotId}:\\d+$`).test(workflowId));

/** Field paths that differ; URLs (issuer, endpoints) are shown, other values are not. */
function configDifferences(pinned: unknown, asked: unknown, path: string): string[] {
  if (isDeepStrictEqual(pinned, asked)) return [];
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if ((isObject(pinned) || isObject(asked)) && (isObject(pinned) || pinned === undefined) && (isObject(asked) || asked === undefined)) {
    // A section on one side only (issuer vs endpoints): each of its fields differs.
    const was = (pinned ?? {}) as Record<string, unknown>;
    const is = (asked ?? {}) as Record<string, unknown>;
    const keys = [...new Set([...Object.keys(was), ...Object.keys(is)])].sort();
    return keys.flatMap((key) => configDifferences(was[key], is[key], `${path}.${key}`));
  }
  const isUrl = (v: unknown): v is string => typeof v === 'string' && /^https?:\/\//i.test(v) && URL.canParse(v);
  const shown = (v: unknown): string => (v === undefined ? '(none)' : isUrl(v) ? quoted(`${new URL(v).origin}${new URL(v).pathname}`) : '');
  if ((isUrl(pinned) || pinned === undefined) && (isUrl(asked) || asked === undefined)) return [`${path}: pinned ${shown(pinned)}, asked ${shown(asked)}`];
  return [`${path} differs`];
}

/** A workflow id or URL chosen by someone else, made safe to repeat: one line, bounded. */
const quoted = (value: string): string => JSON.stringify(value.length > 200 ? `${value.slice(0, 200)}…` : value);

/**
 * The provider and configuration this host recorded for slot <id>, for the worker's
 * own services (the agent token service); undefined when there is no usable record.
 */
export async function readSlotRecord(slotsDir: string, slotId: string): Promise<{ provider: string; providerConfig: unknown } | undefined> {
  if (slotIdProblem(slotId)) return undefined;
  const read = await readSecretFile(slotHome(slotsDir, slotId), SLOT_RECORD_FILE, { requirePrivate: true });
  if (!read.ok) return undefined;
  try {
    const record = SlotRecord.parse(JSON.parse(read.text));
    return record.slotId === slotId ? { provider: record.provider, providerConfig: record.providerConfig } : undefined;
  } catch {
    return undefined;
  }
}
