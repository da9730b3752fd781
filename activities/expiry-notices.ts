// Credentials that live a fixed time (a setup token): never refreshed, only looked at.
// Past expiry a login is needed; inside a notice window the operator is told once.
import { ApplicationFailure } from '@temporalio/activity';
import { z } from 'zod';
import { FailureType } from '../common/failures';
import { MIN_NEXT_REFRESH_MS } from '../common/refresh-schedule';
import type { CredentialFacts, Provider, SlotPaths } from '../providers/provider';
import { readSecretFile, writeSecretFileAtomic } from './credential-store';

/** Which expiry notices were given for which expiry: a new token (another `expiresAt`) starts over. */
export const EXPIRY_NOTICES_FILE = '.expiry-notices.json';
const ExpiryNotices = z.object({ expiresAt: z.number(), sent: z.array(z.number()) });
const DAY_MS = 24 * 60 * 60_000;
const HOUR_MS = 60 * 60_000;

const plural = (n: number, unit: string): string => `${n} ${unit}${n === 1 ? '' : 's'}`;
const timeLeft = (ms: number): string =>
  ms >= DAY_MS ? plural(Math.round(ms / DAY_MS), 'day') : ms >= HOUR_MS ? plural(Math.round(ms / HOUR_MS), 'hour') : 'less than an hour';

/** When to look again, and the notice due now (never a token). */
export interface LifetimeCheck {
  readonly nextCheckAt: number;
  readonly notice?: string;
}

/**
 * A fixed-lifetime credential: past its expiry a permanent failure (a login is needed);
 * inside a notice window not yet announced, a notice (once per window, recorded on the
 * host); the next check at the next window or at expiry.
 */
export async function checkLifetime(
  provider: Provider,
  lifetime: NonNullable<Provider['refresh']['fixedLifetime']>,
  slot: SlotPaths,
  facts: CredentialFacts,
  now: number,
): Promise<LifetimeCheck> {
  const expiresAt = facts.expiresAt;
  if (expiresAt === undefined) return { nextCheckAt: now + DAY_MS };
  if (now >= expiresAt) {
    throw ApplicationFailure.create({
      message: `the ${provider.displayName} token expired at ${new Date(expiresAt).toISOString()}; it cannot be refreshed, a new login is needed`,
      type: FailureType.refreshPermanent,
      nonRetryable: true,
      details: [{ provider: provider.name, expiresAt }],
    });
  }
  const windows = [...lifetime.noticesBeforeExpiryMs].sort((a, b) => b - a);
  const entered = windows.filter((before) => now >= expiresAt - before);
  const read = await readSecretFile(slot.home, EXPIRY_NOTICES_FILE);
  let recorded: ReturnType<typeof ExpiryNotices.safeParse> | undefined;
  try {
    recorded = read.ok ? ExpiryNotices.safeParse(JSON.parse(read.text)) : undefined;
  } catch {
    recorded = undefined; // torn: the notices are given again, which is better than never
  }
  const sent = recorded?.success && recorded.data.expiresAt === expiresAt ? recorded.data.sent : [];
  const current = entered.at(-1);
  let notice: string | undefined;
  if (current !== undefined && !sent.includes(current)) {
    notice =
      `the ${provider.displayName} token of slot ${slot.slotId} expires in ${timeLeft(expiresAt - now)} ` +
      `(${new Date(expiresAt).toISOString()}) and cannot be refreshed: log in again before then with \`slotctl relogin ${slot.slotId}\``;
    // Every window already entered counts as announced: a 30-day notice never follows a 7-day one.
    await writeSecretFileAtomic(slot.home, EXPIRY_NOTICES_FILE, `${JSON.stringify({ expiresAt, sent: [...new Set([...sent, ...entered])] })}\n`);
  }
  const upcoming = windows.map((before) => expiresAt - before).filter((at) => at > now);
  const next = Math.max(Math.min(...upcoming, expiresAt), now + MIN_NEXT_REFRESH_MS);
  return { nextCheckAt: next, ...(notice ? { notice } : {}) };
}
