// Pools: `pool:<name>` groups slots of one provider and leases them to runtimes,
// rotating away from a slot that answered 429 until its reset. The message names
// are stable (slotctl, the client API, the `temporal` CLI). Node-free, zod-free.
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import { slotIdProblem, type Phase } from './slot';

export const poolWorkflowId = (pool: string): string => `pool:${pool}`;

/** A pool name becomes part of a workflow id: kept as boring as a slot id. */
export const poolNameProblem = (value: unknown): string | undefined => slotIdProblem(value)?.replace('slot id', 'pool name');

export const POOL_POLICIES = ['least-recently-leased', 'soonest-reset'] as const;
/**
 * - `least-recently-leased`: spread the load; the slot leased longest ago goes next.
 * - `soonest-reset`: use up the slot whose quota resets soonest first (it gets its quota back
 *   soonest), as reported by `reportRateLimited`; slots never limited count as resetting now.
 */
export type PoolPolicy = (typeof POOL_POLICIES)[number];

export const MAX_POOL_SLOTS = 500;
/** Cooldowns longer than this are clamped: a bad reset time does not park a slot for ever. */
export const MAX_COOLDOWN_MS = 7 * 24 * 3600_000;
/** A 429 without a reset time or Retry-After cools the slot down this long. */
export const DEFAULT_COOLDOWN_MS = 60_000;

export interface PoolInput {
  readonly pool: string;
  readonly provider: string;
  /** @default "least-recently-leased" */
  readonly policy?: PoolPolicy;
  readonly slots?: readonly string[];
  /** A lease lasts this long unless renewed. @default 600000 (10 minutes) */
  readonly leaseTtlMs?: number;
  /** Leases one slot may hold at once; 0: unlimited (agents share the account). @default 0 */
  readonly maxLeasesPerSlot?: number;
  /** A lease asks the slots for their phase when the last answer is older than this. @default 2000 */
  readonly censusMaxAgeMs?: number;
  /** Continue-as-new after this many events. @default 2000 */
  readonly maxHistoryEvents?: number;
  readonly carried?: PoolCarried;
}

/** What a member slot's entry holds: the pool's own facts about it, never its phase (the slot's). */
export interface PoolMember {
  readonly slotId: string;
  lastLeasedAt?: number;
  /** The pool's lease count when this slot was last leased: orders leases granted in one instant. */
  lastLeaseSeq?: number;
  /** Rate limited until then (epoch ms). */
  coolUntil?: number;
  /** When the slot's quota window resets next, as a runtime last reported it (release or 429). */
  resetAt?: number;
  /** An auth failure was reported then; out of rotation until the slot has acted since. */
  authFailedAt?: number;
  leases: Lease[];
}

export interface Lease {
  readonly leaseId: string;
  readonly slotId: string;
  readonly holder?: string;
  readonly leasedAt: number;
  expiresAt: number;
}

export interface PoolCarried {
  readonly members: readonly PoolMember[];
  readonly leases: number;
  /** Refused lease requests; absent in what runs before it was counted carried. */
  readonly refused?: number;
  readonly runs: number;
}

export interface LeaseInput {
  /** Who holds the lease (a runtime's name), shown in status. */
  readonly holder?: string;
  /** @default the pool's leaseTtlMs */
  readonly ttlMs?: number;
}

/** A granted lease, with what agents using the slot need (its agent plan, from the slot's host). */
export interface LeaseGrant {
  readonly leaseId: string;
  readonly slotId: string;
  readonly provider: string;
  readonly host: string;
  /** Epoch ms; renew before it. */
  readonly expiresAt: number;
  /** The slot's agent plan (providers/agent-plan.ts's AgentPlan, as `slotctl agent-plan` prints it); absent when its host gave none. */
  readonly agentPlan?: unknown;
  /** Why there is no agent plan (the host did not answer, the slot has no record there); the lease stands. */
  readonly agentPlanProblem?: string;
}

export interface LeaseRef {
  readonly leaseId: string;
}

export interface ReleaseInput extends LeaseRef {
  /** When the account's quota window resets (epoch ms), if the provider's answers said: `soonest-reset` uses it. */
  readonly resetAt?: number;
}

export interface RateLimitedInput extends LeaseRef {
  /** When the quota resets (epoch ms), as the provider said. */
  readonly resetAt?: number;
  /** The `Retry-After` seconds, when no reset time is known. */
  readonly retryAfterSec?: number;
}

/** What one slot looked like to the pool's last census (the slot's own `status`). */
export interface CensusEntry {
  readonly slotId: string;
  readonly phase: Phase | 'unknown';
  readonly provider?: string;
  readonly host?: string;
  /** When the slot last recorded an outcome (a refresh, a login): proof it acted after an auth failure. */
  readonly outcomeAt?: number;
  /** Why the slot could not be asked (not found, no worker). */
  readonly problem?: string;
  /** The slot's last live probe: an `ok` one after an auth failure report clears it; a 429 cools the slot until its reset. */
  readonly probe?: { readonly at: number; readonly outcome: string; readonly resetAt?: number };
}

export interface PoolSlotStatus {
  readonly slotId: string;
  readonly phase: CensusEntry['phase'];
  readonly host?: string;
  readonly eligible: boolean;
  /** Why it is not leased now, in words. */
  readonly why?: string;
  readonly leases: number;
  readonly lastLeasedAt?: number;
  readonly coolUntil?: number;
}

export interface PoolStatus {
  readonly pool: string;
  readonly provider: string;
  readonly policy: PoolPolicy;
  readonly available: number;
  readonly slots: readonly PoolSlotStatus[];
  readonly leases: readonly Lease[];
  readonly censusAt?: number;
  readonly leasesGranted: number;
  /** Leases refused because no slot could be leased (or the slots could not be asked), across runs. */
  readonly leasesRefused: number;
}

/** A lease is an update: the caller needs the slot's id back, and a refusal ("exhausted") at once. */
export const leaseUpdate = defineUpdate<LeaseGrant, [LeaseInput]>('lease');
export const renewUpdate = defineUpdate<LeaseGrant, [LeaseRef & { ttlMs?: number }]>('renew');
export const releaseUpdate = defineUpdate<void, [ReleaseInput]>('release');
/** Ends the lease; the slot rests until its reset. */
export const reportRateLimitedUpdate = defineUpdate<{ coolUntil: number }, [RateLimitedInput]>('reportRateLimited');
/** Ends the lease and asks the slot to refresh now; the slot is out of rotation until it has. */
export const reportAuthFailureUpdate = defineUpdate<void, [LeaseRef]>('reportAuthFailure');
export const addSlotsUpdate = defineUpdate<readonly string[], [{ slots: readonly string[] }]>('addSlots');
export const removeSlotsUpdate = defineUpdate<readonly string[], [{ slots: readonly string[] }]>('removeSlots');
export const poolStatusQuery = defineQuery<PoolStatus>('poolStatus');

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const positiveMs = (v: unknown, name: string, max: number): string | undefined =>
  v === undefined || (typeof v === 'number' && Number.isInteger(v) && v > 0 && v <= max) ? undefined : `${name} must be a whole number of ms from 1 to ${max}`;

export function leaseInputProblem(input: unknown): string | undefined {
  if (input === undefined) return undefined;
  if (!isObject(input)) return 'lease input must be an object like {"holder": "runner-1"}';
  if (input.holder !== undefined && (typeof input.holder !== 'string' || input.holder.length === 0 || input.holder.length > 200)) return 'holder must be a string of 1-200 characters';
  return positiveMs(input.ttlMs, 'ttlMs', 24 * 3600_000);
}

export function leaseRefProblem(input: unknown): string | undefined {
  if (!isObject(input) || typeof input.leaseId !== 'string' || input.leaseId.length === 0 || input.leaseId.length > 200) return 'input must be an object like {"leaseId": "…"}';
  return undefined;
}

export function releaseProblem(input: unknown): string | undefined {
  const ref = leaseRefProblem(input);
  if (ref) return ref;
  const { resetAt } = input as Record<string, unknown>;
  if (resetAt !== undefined && (typeof resetAt !== 'number' || !Number.isFinite(resetAt) || resetAt < 0)) return 'resetAt must be epoch milliseconds';
  return undefined;
}

export function rateLimitedProblem(input: unknown): string | undefined {
  const ref = leaseRefProblem(input);
  if (ref) return ref;
  const { resetAt, retryAfterSec } = input as Record<string, unknown>;
  if (resetAt !== undefined && (typeof resetAt !== 'number' || !Number.isFinite(resetAt) || resetAt < 0)) return 'resetAt must be epoch milliseconds';
  if (retryAfterSec !== undefined && (typeof retryAfterSec !== 'number' || !Number.isFinite(retryAfterSec) || retryAfterSec < 0)) return 'retryAfterSec must be a number of seconds ≥ 0';
  return undefined;
}

export function slotListProblem(input: unknown): string | undefined {
  if (!isObject(input) || !Array.isArray(input.slots) || input.slots.length === 0) return 'input must be an object like {"slots": ["slot-a", "slot-b"]}';
  if (input.slots.length > MAX_POOL_SLOTS) return `at most ${MAX_POOL_SLOTS} slots at once`;
  for (const slot of input.slots) {
    const problem = slotIdProblem(slot);
    if (problem) return `${JSON.stringify(slot)}: ${problem}`;
  }
  return undefined;
}

/** The cooldown end for a 429: the reset time, else now + Retry-After, else a minute; clamped to a week. */
export function cooldownEnd(now: number, input: RateLimitedInput): number {
  const until = input.resetAt ?? (input.retryAfterSec !== undefined ? now + input.retryAfterSec * 1000 : now + DEFAULT_COOLDOWN_MS);
  return Math.min(Math.max(until, now), now + MAX_COOLDOWN_MS);
}
