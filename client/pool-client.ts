// The typed client API for pools: create one over slots of a provider, lease a
// slot from it and report back. What runtimes import; slotctl's `pool` commands use it.
import { WorkflowExecutionAlreadyStartedError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/common';
import { PoolNotFoundError, PoolRequestError, SlotInputError } from '../common/failures';
import {
  addSlotsUpdate,
  leaseUpdate,
  POOL_POLICIES,
  poolNameProblem,
  poolStatusQuery,
  poolWorkflowId,
  releaseUpdate,
  removeSlotsUpdate,
  renewUpdate,
  reportAuthFailureUpdate,
  reportRateLimitedUpdate,
  type LeaseGrant,
  type LeaseInput,
  type PoolInput,
  type PoolStatus,
  type RateLimitedInput,
  type ReleaseInput,
} from '../common/pool';
import { PoolNameKey, PoolProviderKey } from '../common/search-attributes';
import { providerNames } from '../providers';
import { parseSlotId, type SlotClient } from './slot-client';

export { PoolNotFoundError, PoolRequestError };

/** What a pool starts with: its workflow input, less what the workflow carries for itself. */
export type CreatePoolOptions = Pick<PoolInput, 'pool' | 'provider' | 'policy' | 'slots' | 'leaseTtlMs' | 'maxLeasesPerSlot' | 'censusMaxAgeMs'>;

export function parsePoolName(value: string): string {
  const problem = poolNameProblem(value);
  if (problem) throw new SlotInputError(`invalid pool name ${JSON.stringify(value)}: ${problem}`);
  return value;
}

export class PoolClient {
  constructor(private readonly slots: SlotClient) {}

  private get client(): Client {
    return this.slots.client;
  }

  /** Starts `pool:<name>`; every slot given must exist and be of the pool's provider. */
  async create(opts: CreatePoolOptions): Promise<void> {
    const pool = parsePoolName(opts.pool);
    if (!providerNames().includes(opts.provider)) throw new SlotInputError(`unknown provider ${JSON.stringify(opts.provider)}; known providers: ${providerNames().join(', ')}`);
    if (opts.policy !== undefined && !POOL_POLICIES.includes(opts.policy)) throw new SlotInputError(`unknown policy ${JSON.stringify(opts.policy)}; policies: ${POOL_POLICIES.join(', ')}`);
    for (const [name, value, min] of [['leaseTtlMs', opts.leaseTtlMs, 1000], ['maxLeasesPerSlot', opts.maxLeasesPerSlot, 0], ['censusMaxAgeMs', opts.censusMaxAgeMs, 0]] as const) {
      if (value !== undefined && (!Number.isInteger(value) || value < min)) throw new SlotInputError(`${name} must be a whole number ≥ ${min}, got ${value}`);
    }
    const slots = await this.checkSlots(opts.provider, opts.slots ?? []);
    const input: PoolInput = {
      pool,
      provider: opts.provider,
      ...(opts.policy ? { policy: opts.policy } : {}),
      slots,
      ...(opts.leaseTtlMs !== undefined ? { leaseTtlMs: opts.leaseTtlMs } : {}),
      ...(opts.maxLeasesPerSlot !== undefined ? { maxLeasesPerSlot: opts.maxLeasesPerSlot } : {}),
      ...(opts.censusMaxAgeMs !== undefined ? { censusMaxAgeMs: opts.censusMaxAgeMs } : {}),
    };
    try {
      await this.client.workflow.start('poolWorkflow', {
        workflowId: poolWorkflowId(pool),
        taskQueue: this.slots.taskQueue,
        args: [input],
        typedSearchAttributes: [
          { key: PoolNameKey, value: pool },
          { key: PoolProviderKey, value: opts.provider },
        ],
      });
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) throw new PoolRequestError(`pool ${pool} already exists; see it with: slotctl pool status ${pool}`, undefined);
      throw err;
    }
  }

  async add(pool: string, slots: readonly string[]): Promise<readonly string[]> {
    const { provider } = await this.status(pool);
    const checked = await this.checkSlots(provider, slots);
    return this.update(pool, (h) => h.executeUpdate(addSlotsUpdate, { args: [{ slots: checked }] }));
  }

  async remove(pool: string, slots: readonly string[]): Promise<readonly string[]> {
    return this.update(pool, (h) => h.executeUpdate(removeSlotsUpdate, { args: [{ slots: slots.map(parseSlotId) }] }));
  }

  async status(pool: string): Promise<PoolStatus> {
    return this.update(pool, (h) => h.query(poolStatusQuery));
  }

  /** A slot for a runtime; throws PoolRequestError (type `PoolExhausted`) when none can be leased now. */
  async lease(pool: string, input: LeaseInput = {}): Promise<LeaseGrant> {
    return this.update(pool, (h) => h.executeUpdate(leaseUpdate, { args: [input] }));
  }

  async renew(pool: string, leaseId: string, ttlMs?: number): Promise<LeaseGrant> {
    return this.update(pool, (h) => h.executeUpdate(renewUpdate, { args: [{ leaseId, ...(ttlMs !== undefined ? { ttlMs } : {}) }] }));
  }

  async release(pool: string, input: ReleaseInput): Promise<void> {
    await this.update(pool, (h) => h.executeUpdate(releaseUpdate, { args: [input] }));
  }

  /** The slot answered 429: give the reset time (epoch ms) or the Retry-After seconds. */
  async reportRateLimited(pool: string, input: RateLimitedInput): Promise<{ coolUntil: number }> {
    return this.update(pool, (h) => h.executeUpdate(reportRateLimitedUpdate, { args: [input] }));
  }

  /** The provider refused the slot's token: the slot refreshes, and is out of rotation until it has. */
  async reportAuthFailure(pool: string, leaseId: string): Promise<void> {
    await this.update(pool, (h) => h.executeUpdate(reportAuthFailureUpdate, { args: [{ leaseId }] }));
  }

  /** Slot ids checked: syntax, existence, provider (from each slot's own status). */
  private async checkSlots(provider: string, slots: readonly string[]): Promise<string[]> {
    const ids = [...new Set(slots.map(parseSlotId))];
    for (const id of ids) {
      const status = await this.slots.status(id);
      if (status.provider !== provider) throw new SlotInputError(`slot ${id} is a ${status.provider} slot; this pool is for ${provider}`);
    }
    return ids;
  }

  private async update<T>(pool: string, call: (handle: ReturnType<Client['workflow']['getHandle']>) => Promise<T>): Promise<T> {
    const name = parsePoolName(pool);
    try {
      return await call(this.client.workflow.getHandle(poolWorkflowId(name)));
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw new PoolNotFoundError(name);
      if (err instanceof WorkflowUpdateFailedError) {
        const cause = err.cause as { message?: string; type?: string } | undefined;
        throw new PoolRequestError(cause?.message ?? err.message, cause?.type);
      }
      throw err;
    }
  }
}
