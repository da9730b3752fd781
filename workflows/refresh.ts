// One refresh of a slot's credential, as a child of the slot's workflow. The
// activity on the slot's host decides fresh / refreshed / permanent / transient;
// this workflow retries transient failures with capped, jittered backoff
// (honouring Retry-After) and keeps the slot informed, so it can show `degraded`.
import {
  ActivityFailure,
  ApplicationFailure,
  continueAsNew,
  log,
  proxyActivities,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type { HostActivities } from '../activities/index';
import type { RefreshResult } from '../activities/refresh';
import { refreshProgressSignal } from '../common/messages';
import { hostTaskQueue } from '../common/slot';
import type { RefreshSchedule } from '../providers/provider';
import { describe } from './login';
import { tellParent } from './parent';

export interface RefreshBackoff {
  /** @default 5000 */
  readonly initialMs?: number;
  /** @default 300000 (5 minutes) */
  readonly maxMs?: number;
}

export interface RefreshInput {
  readonly slotId: string;
  readonly provider: string;
  /** The slot's provider configuration (providers configured per slot). */
  readonly providerConfig?: unknown;
  readonly host: string;
  readonly parentId: string;
  /** Refresh even if the credential is not due (an operator's `refreshNow`). */
  readonly force: boolean;
  readonly schedule?: Partial<RefreshSchedule>;
  readonly backoff?: RefreshBackoff;
  /** Carried across continue-as-new during a long outage. */
  readonly failuresSoFar?: number;
}

export type RefreshOutcome = RefreshResult & { readonly attempts: number };

/** Failure types that no retry can fix: the slot needs a person. */
export const PERMANENT_REFRESH_FAILURES = ['RefreshPermanent', 'CredentialInvalid'] as const;

function rootApplicationFailure(err: unknown): ApplicationFailure | undefined {
  let current: unknown = err;
  while (current instanceof Error) {
    if (current instanceof ApplicationFailure) return current;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Milliseconds from a failure's `nextRetryDelay` (the token endpoint's Retry-After). */
function retryAfterMs(failure: ApplicationFailure | undefined): number | undefined {
  const delay = failure?.nextRetryDelay;
  if (delay === undefined || delay === null) return undefined;
  if (typeof delay === 'number') return delay;
  const seconds = /^(\d+(?:\.\d+)?)s$/.exec(String(delay));
  return seconds ? Number(seconds[1]) * 1000 : undefined;
}

export async function refreshWorkflow(input: RefreshInput): Promise<RefreshOutcome> {
  const { refreshCredential } = proxyActivities<HostActivities>({
    // The slot's files are on one host: only its worker can refresh them.
    taskQueue: hostTaskQueue(input.host),
    // A host that is down shows up as a timeout: transient, retried below.
    scheduleToCloseTimeout: '2 minutes',
    startToCloseTimeout: '90 seconds',
    // Retries are this workflow's loop, so each failure is reported to the slot.
    retry: { maximumAttempts: 1 },
  });
  const initialMs = input.backoff?.initialMs ?? 5_000;
  const maxMs = input.backoff?.maxMs ?? 300_000;
  let failures = input.failuresSoFar ?? 0;
  let attempts = 0;

  for (;;) {
    attempts += 1;
    try {
      const result = await refreshCredential({
        slotId: input.slotId,
        provider: input.provider,
        ...(input.providerConfig !== undefined ? { providerConfig: input.providerConfig } : {}),
        // The workflow's clock is the slot's clock (it is virtual under time skipping).
        now: Date.now(),
        force: input.force,
        ...(input.schedule ? { schedule: input.schedule } : {}),
      });
      return { ...result, attempts };
    } catch (err) {
      if (!(err instanceof ActivityFailure)) throw err;
      const failure = rootApplicationFailure(err);
      const reason = describe(err);
      if (failure && (PERMANENT_REFRESH_FAILURES as readonly string[]).includes(failure.type ?? '')) {
        throw ApplicationFailure.nonRetryable(reason, failure.type);
      }
      failures += 1;
      const backoff = Math.min(maxMs, initialMs * 2 ** Math.min(failures - 1, 20));
      // Jitter spreads a fleet's retries after a shared outage.
      const delay = Math.max(retryAfterMs(failure) ?? 0, Math.round(backoff * (0.8 + Math.random() * 0.4)));
      log.warn('refresh failed; will retry', { slotId: input.slotId, failures, reason, retryInMs: delay });
      await tellParent(input.parentId, refreshProgressSignal, {
        refreshId: workflowInfo().workflowId,
        consecutiveFailures: failures,
        lastError: reason,
        retryAt: Date.now() + delay,
      });
      await sleep(delay);
      if (workflowInfo().continueAsNewSuggested) {
        await continueAsNew<typeof refreshWorkflow>({ ...input, failuresSoFar: failures });
      }
    }
  }
}
