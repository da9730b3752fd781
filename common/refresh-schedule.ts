// Refresh schedule maths: when a credential is due and when the workflow calls again.
// Node-free: the host's refresh uses it, and workflows may.
import type { RefreshSchedule } from './slot';

/** A refresh is never scheduled sooner than this, so a credential that stays due cannot spin. */
export const MIN_NEXT_REFRESH_MS = 60_000;

/** What a credential tells about its age (a provider's `CredentialFacts`). */
export interface ScheduleFacts {
  readonly expiresAt?: number;
  readonly lastRefresh?: number;
}

/** The provider's schedule with the slot's overrides (an override left undefined keeps the provider's value). */
export function scheduleWith(base: RefreshSchedule, overrides: Partial<RefreshSchedule> | undefined): RefreshSchedule {
  const given = Object.fromEntries(Object.entries(overrides ?? {}).filter(([, value]) => value !== undefined));
  return { ...base, ...given };
}

/** The earliest moment the schedule calls for a refresh; undefined when the credential tells nothing. */
export function dueTime(facts: ScheduleFacts, schedule: RefreshSchedule): number | undefined {
  const candidates: number[] = [];
  if (facts.expiresAt !== undefined) candidates.push(facts.expiresAt - schedule.beforeExpiryMs);
  if (facts.lastRefresh !== undefined && schedule.maxAgeMs !== undefined) candidates.push(facts.lastRefresh + schedule.maxAgeMs);
  return candidates.length > 0 ? Math.min(...candidates) : undefined;
}

/** When the workflow calls again: the due time, up to the schedule's jitter earlier at random, and never within a minute. */
export function nextRefreshAt(dueAt: number | undefined, schedule: RefreshSchedule, now: number): number {
  // A credential that tells neither expiry nor age is looked at again after one margin.
  const at = (dueAt ?? now + schedule.beforeExpiryMs) - Math.floor(Math.random() * (schedule.jitterMs + 1));
  return Math.max(Math.round(at), now + MIN_NEXT_REFRESH_MS);
}
