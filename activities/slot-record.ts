// The host as the trust anchor: each slot's provider and configuration, recorded on
// its host when the slot is first set up there. Every host activity asks
// `checkSlotRequest` first: only workflow `slot:<id>` may act on slot <id>, only with
// the provider and configuration this host recorded, only with servers on the host's
// own list, and never for a slot the host retired (workflow input can be written by
// anyone who may start workflows; these files cannot).
import { ApplicationFailure, Context } from '@temporalio/activity';
import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import { FailureType, ProviderConfigError, UnknownProviderError } from '../common/failures';
import { slotIdProblem, slotWorkflowId } from '../common/slot';
import { configuredServers, parseProviderConfig } from '../providers';
import { isListedServer, OIDC_SERVERS_VARIABLE, serverListOf } from '../providers/host-servers';
import { ensureSlotHome, readSecretFile, slotHome, writeSecretFileAtomic } from './credential-store';
import { readTombstone, removeTombstone } from './slot-trash';

/** 0600 in the slot home; it goes to the host's trash with the home, and a tombstone keeps what it pinned. */
export const SLOT_RECORD_FILE = '.slot-record.json';

/** What a host activity's input says about the slot it acts on. */
export interface SlotRequest {
  readonly slotId: string;
  /** Absent for activities that name no provider (status, file removal, discarding a device code). */
  readonly provider?: string;
  readonly providerConfig?: unknown;
}

/** What the check needs of the host: its slots and its environment (SLOTS_OIDC_SERVERS). */
export interface SlotCheckDeps {
  readonly slotsDir: string;
  /** The worker's environment; without it no per-slot server is allowed. */
  readonly env?: NodeJS.ProcessEnv;
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

/** What the host's operator runs to bring a retired slot back or free its id (docs/security.md: "Retired slots"). */
const HOST_ACTS = (slotId: string): string =>
  `only the host's operator can bring it back ("slotctl host unretire ${slotId}" on that host) or free the id for a new slot ("slotctl host reuse ${slotId}")`;

/**
 * Refuses (SlotRequestRefused) a request for a slot this host retired, or that the
 * workflow `slot:<id>` did not make (see `assertActsForSlot`); or one naming a provider
 * configuration with a server not on the host's list (SLOTS_OIDC_SERVERS), or differing
 * from the slot's record on this host. The first request that names a provider for a
 * slot without a record writes it: a new slot, and also (trust on first use, within the
 * host's list) a slot migrated from v1 or adopted with files but no record yet. A slot
 * that moved away is pinned again only to what its tombstone kept.
 */
export async function checkSlotRequest(deps: SlotCheckDeps, input: SlotRequest): Promise<void> {
  const { workflowId, runId } = await assertActsForSlot(input.slotId);
  const tombstone = await readTombstone(deps.slotsDir, input.slotId);
  if (tombstone === 'damaged') throw refuse(`refusing a request for slot ${input.slotId}: its tombstone on this host is damaged; ${HOST_ACTS(input.slotId)}`);
  if (tombstone?.kind === 'retired') {
    throw refuse(
      `refusing a request for slot ${input.slotId} from workflow ${quoted(workflowId)}: the slot was retired on this host (${tombstone.at}, by ${quoted(tombstone.by.workflowId)}) ` +
        `and its home moved to the host's trash; a retired slot is never taken up again by a workflow, adoptExisting included: ${HOST_ACTS(input.slotId)}`,
    );
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
  const servers = configuredServers(input.provider, config);
  const list = serverListOf(deps.env);
  const unlisted = servers.filter((server) => !isListedServer(server.url, list));
  if (unlisted.length > 0) {
    const named = unlisted.map((server) => `${server.field} ${quoted(shownUrl(server.url))}`).join(', ');
    throw refuse(
      `refusing a request for slot ${input.slotId}: its ${input.provider} configuration names ${named}, not on this host's list of OAuth servers ` +
        `(${OIDC_SERVERS_VARIABLE}: ${list.entries.length === 0 ? 'none configured' : `${list.entries.length} entr${list.entries.length === 1 ? 'y' : 'ies'}`}); ` +
        `the host's operator adds the server to ${OIDC_SERVERS_VARIABLE} on the slot's host if it is to be trusted`,
    );
  }

  const home = slotHome(deps.slotsDir, input.slotId);
  const read = await readSecretFile(home, SLOT_RECORD_FILE, { requirePrivate: true });
  if (!read.ok && read.reason === 'missing') {
    const kept = tombstone?.record ?? undefined;
    if (kept) {
      // Moved away and back: the pin is what the tombstone kept, never the asker's.
      const differences = recordDifferences({ slotId: input.slotId, provider: kept.provider, providerConfig: kept.providerConfig }, input.slotId, input.provider, config);
      if (differences.length > 0) throw pinnedRefusal(input.slotId, kept.provider, `the slot moved away from this host (${tombstone?.at ?? ''})`, differences);
    }
    const record: SlotRecord = {
      version: 1,
      slotId: input.slotId,
      provider: input.provider,
      providerConfig: config,
      createdBy: { workflowId, runId },
      createdAt: new Date().toISOString(),
    };
    await writeSecretFileAtomic(await ensureSlotHome(deps.slotsDir, input.slotId), SLOT_RECORD_FILE, `${JSON.stringify(record, null, 2)}\n`);
    // The record now holds the pin (the same one): the moved-away tombstone has done its work.
    if (tombstone) await removeTombstone(deps.slotsDir, input.slotId);
    return;
  }
  const unusable = (why: string): ApplicationFailure =>
    refuse(`refusing a request for slot ${input.slotId}: its record ${SLOT_RECORD_FILE} on this host ${why}; the host's operator inspects the slot home (a workflow cannot replace the record)`);
  if (!read.ok) throw unusable(`cannot be used (${read.message})`);
  let record: SlotRecord;
  try {
    record = SlotRecord.parse(JSON.parse(read.text));
  } catch {
    throw unusable('is damaged');
  }
  const differences = recordDifferences(record, input.slotId, input.provider, config);
  if (differences.length === 0) return;
  throw pinnedRefusal(input.slotId, record.provider, `${record.createdBy.workflowId} created it (${record.createdAt})`, differences);
}

function recordDifferences(record: Pick<SlotRecord, 'slotId' | 'provider' | 'providerConfig'>, slotId: string, provider: string, config: unknown): string[] {
  return [
    ...(record.slotId !== slotId ? [`slotId: pinned ${record.slotId}, asked ${slotId}`] : []),
    ...(record.provider !== provider ? [`provider: pinned ${record.provider}, asked ${provider}`] : []),
    ...(record.provider === provider ? configDifferences(record.providerConfig, config, 'providerConfig') : []),
  ];
}

const pinnedRefusal = (slotId: string, provider: string, when: string, differences: readonly string[]): ApplicationFailure =>
  refuse(
    `refusing a request for slot ${slotId}: this host pinned the slot to provider ${provider} and its configuration ` +
      `when ${when}, and the request differs: ${differences.join('; ')}. ` +
      `A workflow cannot change the pin: provision the slot with the old configuration, or use a new slot id ` +
      `(retiring the slot keeps its id retired on this host until the host's operator frees it: slotctl host reuse ${slotId})`,
  );

/**
 * Who may act on slot <id>: the workflow `slot:<id>` (the id is set by the server from
 * the workflow that scheduled the activity: the one thing its input cannot choose). A
 * v1 slot's login and refresh ran as child workflows (`login:<id>:<n>`,
 * `refresh:<id>:<n>`); such a workflow is accepted only when the server says it is a
 * child of the running `slot:<id>` (no more than that workflow itself may do). Throws
 * SlotRequestRefused otherwise.
 */
export async function assertActsForSlot(slotId: string): Promise<{ workflowId: string; runId: string }> {
  const info = Context.current().info;
  const workflowId = info.workflowExecution?.workflowId ?? '(no workflow)';
  const runId = info.workflowExecution?.runId ?? '';
  const problem = slotIdProblem(slotId);
  if (problem) throw refuse(`refusing a request from workflow ${quoted(workflowId)}: ${problem}`);
  if (workflowId === slotWorkflowId(slotId)) return { workflowId, runId };
  const refused = (why: string): ApplicationFailure =>
    refuse(`refusing a request for slot ${slotId} from workflow ${quoted(workflowId)}: only the workflow ${slotWorkflowId(slotId)} may act on this slot${why}`);
  if (!isV1ChildId(info.workflowType ?? '', workflowId, slotId)) throw refused('');
  const parent = await runningParentOf(workflowId, runId);
  if (parent?.workflowId !== slotWorkflowId(slotId)) throw refused(` (a v1 ${info.workflowType} is accepted only as a child of the running ${slotWorkflowId(slotId)}; this one ${parent ? `is a child of ${quoted(parent.workflowId)}` : 'has no running parent'})`);
  return { workflowId, runId };
}

const isV1ChildId = (workflowType: string, workflowId: string, slotId: string): boolean =>
  (workflowType === 'loginWorkflow' && new RegExp(`^login:${slotId}:\\d+$`).test(workflowId)) ||
  (workflowType === 'refreshWorkflow' && new RegExp(`^refresh:${slotId}:\\d+$`).test(workflowId));

/** The parent of a workflow run, as the server records it, when that parent's run is the running one of its id. */
async function runningParentOf(workflowId: string, runId: string): Promise<{ workflowId: string } | undefined> {
  let client;
  try {
    client = Context.current().client;
  } catch {
    return undefined;
  }
  const namespace = client.options.namespace;
  const service = client.workflowService;
  try {
    // Raw calls: nothing is decoded (a memo sealed with keys this worker lacks does not matter).
    const child = await service.describeWorkflowExecution({ namespace, execution: { workflowId, runId } });
    const parent = child.workflowExecutionInfo?.parentExecution;
    if (!parent?.workflowId || !parent.runId) return undefined;
    const current = await service.describeWorkflowExecution({ namespace, execution: { workflowId: parent.workflowId } });
    const info = current.workflowExecutionInfo;
    const RUNNING = 1; // WORKFLOW_EXECUTION_STATUS_RUNNING
    if (info?.execution?.runId !== parent.runId || info.status !== RUNNING) return undefined;
    return { workflowId: parent.workflowId };
  } catch {
    return undefined;
  }
}

/** An URL as shown in a refusal: origin and path, nothing else. */
const shownUrl = (url: string): string => (URL.canParse(url) ? `${new URL(url).origin}${new URL(url).pathname}` : url);

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
