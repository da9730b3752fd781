// The pace of each provider's token requests and login starts on a host: a rate the
// Temporal server enforces on the provider's queue of the host (every process of the
// host together) and a concurrency per worker process. Parsed once from PROVIDER_PACE.
// Node-free: the worker sets its queues from it, the activities space their sends by it.

export interface ProviderPace {
  /** Activities (token requests, login starts) the server hands out per second on the queue: all processes of the host together. */
  readonly requestsPerSecond: number;
  /** Of them running at once in one worker process. */
  readonly concurrency: number;
}

/** A few per second, two at a time: what one address may send a provider without looking like a burst. */
export const DEFAULT_PROVIDER_PACE: ProviderPace = { requestsPerSecond: 2, concurrency: 2 };
/** No provider is ever asked more often than this from one host, whatever is configured. */
export const MAX_REQUESTS_PER_SECOND = 10;
export const MAX_CONCURRENCY = 10;

const ENTRY = /^([a-z0-9][a-z0-9-]{0,62})=(\d+(?:\.\d+)?)\/s(?::(\d+))?$/;

/**
 * `PROVIDER_PACE`: comma-separated `<provider>=<rate>/s[:<concurrency>]`, e.g.
 * `claude=1/s:2,codex=0.5/s`. Providers not named keep the default; a rate above
 * MAX_REQUESTS_PER_SECOND, a concurrency above MAX_CONCURRENCY, a provider that does not
 * exist, or a malformed entry is a problem named in the answer.
 */
export function parseProviderPace(
  raw: string | undefined,
  providers: readonly string[],
): { ok: true; value: Readonly<Record<string, ProviderPace>> } | { ok: false; problems: string[] } {
  const value: Record<string, ProviderPace> = Object.fromEntries(providers.map((p) => [p, DEFAULT_PROVIDER_PACE]));
  const problems: string[] = [];
  for (const entry of (raw ?? '').split(',').map((e) => e.trim()).filter(Boolean)) {
    const m = ENTRY.exec(entry);
    if (!m) {
      problems.push(`"${entry}" is not <provider>=<rate>/s[:<concurrency>] (e.g. claude=2/s:2)`);
      continue;
    }
    const [, provider = '', rateText = '', concurrencyText] = m;
    const rate = Number(rateText);
    const concurrency = concurrencyText === undefined ? DEFAULT_PROVIDER_PACE.concurrency : Number(concurrencyText);
    if (!providers.includes(provider)) problems.push(`"${provider}" is not a provider (known: ${providers.join(', ')})`);
    else if (!(rate > 0) || rate > MAX_REQUESTS_PER_SECOND) problems.push(`${provider}: the rate must be above 0 and at most ${MAX_REQUESTS_PER_SECOND}/s, got ${rateText}/s`);
    else if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > MAX_CONCURRENCY) problems.push(`${provider}: the concurrency must be 1 to ${MAX_CONCURRENCY}, got ${concurrencyText}`);
    else value[provider] = { requestsPerSecond: rate, concurrency };
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, value };
}

/**
 * Spaces one process's sends of each provider's requests at least 1/rate apart. The
 * queue's rate limit decides when a request's activity starts; what an activity does
 * before it sends (files, a lock) takes a varying time, and this keeps that variance from
 * putting two sends closer than the pace. A wait here is a fraction of a second.
 */
export class SendSpacing {
  private readonly next = new Map<string, number>();

  constructor(
    private readonly pace: Readonly<Record<string, ProviderPace>> = {},
    private readonly now: () => number = Date.now,
  ) {}

  /** Milliseconds to wait before sending for `provider`; the send's moment is taken. */
  take(provider: string): number {
    const interval = 1000 / (this.pace[provider] ?? DEFAULT_PROVIDER_PACE).requestsPerSecond;
    const now = this.now();
    const at = Math.max(now, this.next.get(provider) ?? 0);
    this.next.set(provider, at + interval);
    return at - now;
  }
}
