// Live probes: a minimal real request with the slot's token, so a slot knows (not
// assumes) that its credential works. Node-free: the slot workflow, its status and
// the clients share these definitions.

/**
 * What a probe found. `ok`: the provider accepted the token. `unauthorized`: 401/403.
 * `rate-limited`: 429 (the token was recognised; the account is resting). `transient`:
 * network, timeout, 5xx. `error`: the probe could not be made or was not understood
 * (no readable credential, an endpoint the host refuses, another 4xx). `none`: the
 * provider declares no probe for this slot.
 */
export const PROBE_OUTCOMES = ['ok', 'unauthorized', 'rate-limited', 'transient', 'error', 'none'] as const;
export type ProbeOutcome = (typeof PROBE_OUTCOMES)[number];

/** The last probe, as `status` shows it. Never a response body or a token. */
export interface LastProbe {
  /** Epoch ms (the workflow's clock) when it was made. */
  readonly at: number;
  readonly outcome: ProbeOutcome;
  /** The HTTP status, when there was an answer. */
  readonly httpStatus?: number;
  /** In words: the endpoint (origin and path), what the answer meant. */
  readonly detail?: string;
  /** rate-limited: when the provider says the limit resets (epoch ms), when it said. */
  readonly resetAt?: number;
}

/** The slot input's probe schedule. */
export interface ProbeOptions {
  /** Time between scheduled probes; 0 turns scheduled probes off (after-login and on-demand probes stay). @default 21600000 (6 hours) */
  readonly everyMs?: number;
  /** Each scheduled probe comes up to this much earlier, at random, so a fleet does not probe at once. @default 1800000 (30 minutes) */
  readonly jitterMs?: number;
}

export const DEFAULT_PROBE_EVERY_MS = 6 * 60 * 60_000;
export const DEFAULT_PROBE_JITTER_MS = 30 * 60_000;

/** Why a probe is made (its activity input carries it, for logs and metrics). */
export type ProbeReason = 'login' | 'schedule' | 'operator' | 'pool' | 'after-refresh';

/** Milliseconds until the next scheduled probe, or undefined when scheduled probes are off. `random` in [0, 1). */
export function probeDelay(options: ProbeOptions | undefined, random: number): number | undefined {
  const every = options?.everyMs ?? DEFAULT_PROBE_EVERY_MS;
  if (!(every > 0)) return undefined;
  const jitter = Math.min(Math.max(options?.jitterMs ?? DEFAULT_PROBE_JITTER_MS, 0), every / 2);
  return Math.max(Math.round(every - random * jitter), 1000);
}

/** The line the Web UI and slotctl show for a probe. */
export function describeProbe(p: LastProbe): string {
  const when = new Date(p.at).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const reset = p.resetAt !== undefined ? `, resets ${new Date(p.resetAt).toISOString().replace(/\.\d{3}Z$/, 'Z')}` : '';
  return `${p.outcome}${p.httpStatus !== undefined ? ` (HTTP ${p.httpStatus})` : ''}${reset} at ${when}${p.detail ? `: ${p.detail}` : ''}`;
}
