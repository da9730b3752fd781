// Bulk actions by query: the slots a visibility query selects (search attributes
// such as SlotProvider, SlotPhase, SlotHost) get one message each, a few at a time.
// Each slot stays the authority over what the message does to it.
import type { RetireInput } from '../common/messages';
import { SlotInputError } from '../common/failures';
import type { SlotClient, SlotSummary } from '../client/slot-client';

export const BULK_ACTIONS = ['relogin', 'refresh', 'retire'] as const;
export type BulkAction = (typeof BULK_ACTIONS)[number];

/** Longest `--where` accepted; real queries are a line. */
const MAX_QUERY_LENGTH = 2000;
/** @default concurrency of a bulk action. */
export const DEFAULT_BULK_CONCURRENCY = 8;

export interface BulkSlotResult {
  readonly slotId: string;
  readonly provider: string;
  readonly host: string;
  /** The phase the dashboard showed when the slot was selected. */
  readonly phase: SlotSummary['phase'];
  readonly outcome: 'done' | 'failed' | 'planned';
  /** Why it failed (never a token: messages are the server's or ours). */
  readonly error?: string;
}

export interface BulkSummary {
  readonly action: BulkAction;
  readonly where: string;
  readonly dryRun: boolean;
  readonly done: number;
  readonly failed: number;
  readonly slots: readonly BulkSlotResult[];
}

/**
 * Refuses a condition that could leave the parentheses it is put in: a `)` closing more than
 * it opened, an unclosed quote or parenthesis, a comment, a backslash (quoting rules differ
 * between parsers), or a control character. Without this, `--where "x') OR ('y"` or
 * `SlotPhase='active') OR (WorkflowType='slotWorkflow'` selects beyond this deployment's slots.
 */
function checkConditionScope(condition: string): void {
  const refuse = (why: string): never => {
    throw new SlotInputError(`--where ${JSON.stringify(condition)} is refused: ${why}; it must be one condition that stays within its parentheses`);
  };
  let depth = 0;
  let quote: string | undefined;
  for (let i = 0; i < condition.length; i++) {
    const c = condition[i]!;
    if (/[\u0000-\u001f\u007f]/.test(c) && c !== ' ') refuse('it holds a control character');
    if (c === '\\') refuse('it holds a backslash');
    if (quote !== undefined) {
      if (c === quote) {
        // A doubled quote is a quote inside the string.
        if (condition[i + 1] === quote) i += 1;
        else quote = undefined;
      }
      continue;
    }
    if (c === "'" || c === '"' || c === '`') quote = c;
    else if (c === '(') depth += 1;
    else if (c === ')') {
      depth -= 1;
      if (depth < 0) refuse(`the ")" at character ${i + 1} closes a parenthesis it did not open`);
    } else if (c === '#' || c === ';' || (c === '-' && condition[i + 1] === '-') || (c === '/' && condition[i + 1] === '*') || (c === '*' && condition[i + 1] === '/')) {
      refuse(`it holds ${c === ';' ? 'a ";"' : 'a comment'}`);
    }
  }
  if (quote !== undefined) refuse(`a ${quote} quote is not closed`);
  if (depth > 0) refuse(`${depth} "(" ${depth === 1 ? 'is' : 'are'} not closed`);
}

/** The visibility query a bulk action runs: running slot workflows of this deployment (its task queue), and the operator's condition. */
export function bulkQuery(where: string, taskQueue: string): string {
  const condition = where.trim();
  if (condition.length === 0) throw new SlotInputError('--where is empty; give a visibility query such as "SlotProvider=\'codex\' AND SlotPhase=\'active\'"');
  if (condition.length > MAX_QUERY_LENGTH) throw new SlotInputError(`--where is longer than ${MAX_QUERY_LENGTH} characters`);
  checkConditionScope(condition);
  if (!/^[A-Za-z0-9._-]+$/.test(taskQueue)) throw new SlotInputError(`task queue ${JSON.stringify(taskQueue)} cannot be quoted in a query`);
  return `WorkflowType = 'slotWorkflow' AND ExecutionStatus = 'Running' AND TaskQueue = '${taskQueue}' AND (${condition})`;
}

/** The slots `where` selects now (visibility is eventually consistent: a slot changed a second ago may be missing). */
export async function selectSlots(slots: SlotClient, where: string): Promise<SlotSummary[]> {
  const query = bulkQuery(where, slots.taskQueue);
  try {
    return await slots.list({ query, limit: 100_000 });
  } catch (err) {
    // INVALID_ARGUMENT: the server could not parse the query or does not know a name in it (the client wraps the gRPC error).
    const grpc = [err, (err as { cause?: unknown }).cause].find((e): e is Error & { code: number } => (e as { code?: unknown } | undefined)?.code === 3);
    if (grpc) throw new SlotInputError(`--where ${JSON.stringify(where)}: the server refused the query (${grpc.message.replace(/^3 INVALID_ARGUMENT: /, '')})`);
    throw err;
  }
}

/** Sends `action` to each slot, at most `concurrency` at a time; one slot's failure does not stop the others. */
export async function runBulk(
  slots: SlotClient,
  action: BulkAction,
  targets: readonly SlotSummary[],
  opts: { concurrency?: number; retire?: RetireInput; onResult?: (result: BulkSlotResult, finished: number, total: number) => void } = {},
): Promise<BulkSlotResult[]> {
  const concurrency = opts.concurrency ?? DEFAULT_BULK_CONCURRENCY;
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 100) throw new SlotInputError(`--concurrency must be a whole number from 1 to 100, got ${concurrency}`);
  const send = (slotId: string): Promise<void> => {
    switch (action) {
      case 'relogin':
        return slots.relogin(slotId);
      case 'refresh':
        return slots.refreshNow(slotId);
      case 'retire':
        return slots.retire(slotId, opts.retire ?? {});
    }
  };
  return sendToEach(targets, send, concurrency, opts.onResult);
}

/** Sends to each slot with `send`, at most `concurrency` at a time; one slot's failure does not stop the others. */
export async function sendToEach(
  targets: readonly SlotSummary[],
  send: (slotId: string) => Promise<void>,
  concurrency: number = DEFAULT_BULK_CONCURRENCY,
  onResult?: (result: BulkSlotResult, finished: number, total: number) => void,
): Promise<BulkSlotResult[]> {
  const results: BulkSlotResult[] = new Array(targets.length);
  let next = 0;
  let finished = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < targets.length; i = next++) {
      const t = targets[i] as SlotSummary;
      const base = { slotId: t.slotId, provider: t.provider, host: t.host, phase: t.phase };
      let result: BulkSlotResult;
      try {
        await send(t.slotId);
        result = { ...base, outcome: 'done' };
      } catch (err) {
        result = { ...base, outcome: 'failed', error: err instanceof Error ? err.message : String(err) };
      }
      results[i] = result;
      finished += 1;
      onResult?.(result, finished, targets.length);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, targets.length) }, worker));
  return results;
}

export function summarize(action: BulkAction, where: string, dryRun: boolean, slots: readonly BulkSlotResult[]): BulkSummary {
  return {
    action,
    where,
    dryRun,
    done: slots.filter((s) => s.outcome === 'done').length,
    failed: slots.filter((s) => s.outcome === 'failed').length,
    slots,
  };
}

/** Whether an operator's answer to "…? [y/N]" is yes (first line only). */
export const confirmed = (answer: string): boolean => /^\s*y(es)?\s*$/i.test(answer.split(/\r?\n/)[0] ?? '');
