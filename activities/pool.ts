// What a pool asks of its slots: each slot's own `status` query, answered by the
// slot's workflow (the authority over its phase). The pool keeps no copy beyond
// the answer's moment. Host-free: it runs on the shared queue with the worker's client.
import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError } from '@temporalio/common';
import { statusQuery } from '../common/messages';
import type { CensusEntry } from '../common/pool';
import { isPhase, slotWorkflowId } from '../common/slot';

/** Per slot; a slot whose host is down answers nothing, and the lease goes elsewhere. */
const QUERY_TIMEOUT_MS = 3000;

export function createPoolActivities() {
  /** The phase (and nothing secret) of each slot, asked all at once. */
  async function slotCensus(input: { slotIds: readonly string[] }): Promise<CensusEntry[]> {
    const client = Context.current().client;
    return Promise.all(
      input.slotIds.map(async (slotId): Promise<CensusEntry> => {
        try {
          const handle = client.workflow.getHandle(slotWorkflowId(slotId));
          const status: unknown = await client.connection.withDeadline(Date.now() + QUERY_TIMEOUT_MS, () => handle.query(statusQuery));
          // The answer comes from another workflow: only the fields the pool uses, checked.
          const s = (typeof status === 'object' && status !== null ? status : {}) as Record<string, unknown>;
          const outcome = s.lastOutcome as { at?: unknown } | undefined;
          const probe = s.lastProbe as { at?: unknown; outcome?: unknown; resetAt?: unknown } | undefined;
          return {
            slotId,
            phase: isPhase(s.phase) ? s.phase : 'unknown',
            ...(typeof s.provider === 'string' ? { provider: s.provider } : {}),
            ...(typeof s.host === 'string' ? { host: s.host } : {}),
            ...(typeof outcome?.at === 'number' ? { outcomeAt: outcome.at } : {}),
            ...(typeof probe?.at === 'number' && typeof probe.outcome === 'string'
              ? { probe: { at: probe.at, outcome: probe.outcome.slice(0, 32), ...(typeof probe.resetAt === 'number' ? { resetAt: probe.resetAt } : {}) } }
              : {}),
          };
        } catch (err) {
          if (err instanceof WorkflowNotFoundError) return { slotId, phase: 'unknown', problem: 'the slot does not exist' };
          return { slotId, phase: 'unknown', problem: `the slot did not answer (${(err as Error).message.slice(0, 200)})` };
        }
      }),
    );
  }
  return { slotCensus };
}
