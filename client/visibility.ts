// Executions as visibility lists them, read raw. Search attributes are never encoded,
// so a listing needs no payload key; the SDK's `workflow.list` decodes every memo and
// one execution sealed with a key this process lacks fails the whole listing.
import type { Client } from '@temporalio/client';
import { defaultPayloadConverter, defineSearchAttributeKey, SearchAttributeType, TypedSearchAttributes, type Payload, type SearchAttributePair } from '@temporalio/common';

export interface VisibleExecution {
  readonly workflowId: string;
  readonly runId: string;
  readonly running: boolean;
  /** The search attributes, or why this row's could not be read (the other rows still are). */
  readonly searchAttributes: TypedSearchAttributes | Error;
  /** The memo as stored (sealed when payloads are encrypted): decode only what you need, row by row. */
  readonly memo: Record<string, Payload>;
}

/** Does `value` fit search attributes of `type` (what the SDK checks before it keeps a value). */
function fitsType(type: SearchAttributeType, value: unknown): boolean {
  switch (type) {
    case SearchAttributeType.TEXT:
    case SearchAttributeType.KEYWORD:
      return typeof value === 'string';
    case SearchAttributeType.INT:
      return Number.isInteger(value);
    case SearchAttributeType.DOUBLE:
      return typeof value === 'number';
    case SearchAttributeType.BOOL:
      return typeof value === 'boolean';
    case SearchAttributeType.DATETIME:
      return value instanceof Date;
    case SearchAttributeType.KEYWORD_LIST:
      return Array.isArray(value) && value.every((item) => typeof item === 'string');
    default:
      return false;
  }
}

/**
 * Search attributes as the server sends them (JSON payloads, each with its type in the
 * `type` metadata), decoded with the SDK's public API only (the SDK's own decoder is not
 * exported). As the SDK does, a value with no or an unknown type, or one that does not
 * fit its type, is left out; a single-element array of a scalar type is unpacked.
 */
export function decodeSearchAttributes(indexedFields: Record<string, Payload> | null | undefined): TypedSearchAttributes {
  const pairs: SearchAttributePair[] = [];
  for (const [name, payload] of Object.entries(indexedFields ?? {})) {
    const typeName = payload.metadata?.type;
    const type = typeName ? TypedSearchAttributes.toSearchAttributeType(new TextDecoder().decode(typeName)) : undefined;
    if (type === undefined) continue;
    let value: unknown = defaultPayloadConverter.fromPayload(payload);
    if (type !== SearchAttributeType.KEYWORD_LIST && Array.isArray(value)) {
      if (value.length !== 1) continue;
      value = value[0];
    }
    if (type === SearchAttributeType.DATETIME && value) value = new Date(value as string);
    if (fitsType(type, value)) pairs.push({ key: defineSearchAttributeKey(name, type), value } as SearchAttributePair);
  }
  return new TypedSearchAttributes(pairs);
}

/** Rows per page: the server's default is 1000 on SQL visibility; a page of 1000 rows is about 1 MB. */
const PAGE_SIZE = 1000;

/** A page (or count) that takes longer fails the reading (a hung call would otherwise hold every later one). */
const PAGE_TIMEOUT_MS = 30_000;

/** Every execution `query` selects, page by page; a row whose search attributes cannot be decoded is yielded with the error. */
export async function* listExecutions(client: Client, query: string, opts: { pageSize?: number } = {}): AsyncGenerator<VisibleExecution> {
  let nextPageToken: Uint8Array | undefined;
  do {
    const request = { namespace: client.options.namespace, query, pageSize: opts.pageSize ?? PAGE_SIZE, ...(nextPageToken ? { nextPageToken } : {}) };
    const page = await client.connection.withDeadline(Date.now() + PAGE_TIMEOUT_MS, () => client.workflowService.listWorkflowExecutions(request));
    for (const wf of page.executions ?? []) {
      let searchAttributes: TypedSearchAttributes | Error;
      try {
        searchAttributes = decodeSearchAttributes(wf.searchAttributes?.indexedFields);
      } catch (err) {
        searchAttributes = err instanceof Error ? err : new Error(String(err));
      }
      yield {
        workflowId: wf.execution?.workflowId ?? '',
        runId: wf.execution?.runId ?? '',
        running: wf.status === 1 /* WORKFLOW_EXECUTION_STATUS_RUNNING */,
        searchAttributes,
        memo: (wf.memo?.fields ?? {}) as Record<string, Payload>,
      };
    }
    nextPageToken = page.nextPageToken && page.nextPageToken.length > 0 ? page.nextPageToken : undefined;
  } while (nextPageToken);
}

/**
 * How many executions `query` selects, by the values of one search attribute (`GROUP BY`),
 * or undefined when the server does not group by that attribute (SQL visibility up to at
 * least 1.29 groups by `ExecutionStatus` only): the caller then counts value by value.
 */
export async function countGrouped(client: Client, query: string, attribute: string): Promise<Map<string, number> | undefined> {
  try {
    const answer = await client.connection.withDeadline(Date.now() + PAGE_TIMEOUT_MS, () => client.workflow.count(`${query} GROUP BY ${attribute}`));
    const groups = new Map<string, number>();
    for (const group of answer.groups) groups.set(String(group.groupValues[0] ?? ''), (groups.get(String(group.groupValues[0] ?? '')) ?? 0) + group.count);
    return groups;
  } catch (err) {
    // INVALID_ARGUMENT: "'group by' clause is only supported for ExecutionStatus search attribute".
    if (isInvalidArgument(err)) return undefined;
    throw err;
  }
}

/** How many executions `query` selects (one COUNT on the server, no rows sent). */
export async function countExecutions(client: Client, query: string): Promise<number> {
  return (await client.connection.withDeadline(Date.now() + PAGE_TIMEOUT_MS, () => client.workflow.count(query))).count;
}

function isInvalidArgument(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) if (e.code === 3) return true;
  return false;
}
