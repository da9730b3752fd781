// A provider that answered 429 (or asked for time with Retry-After) is left alone by the
// whole host for that long: one small file per provider under SLOTS_DIR, read before
// every token request of every worker process of the host. Nothing secret is in it.
import { ApplicationFailure } from '@temporalio/activity';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { FailureType } from '../common/failures';

/** Under SLOTS_DIR; a slot id never starts with a dot, so no slot home has this name. */
export const PROVIDER_PAUSES_DIR = '.provider-pauses';
/** A 429 without Retry-After pauses this long the first time, twice as long each time after (until an answer that is no 429). */
export const FIRST_PAUSE_MS = 15_000;
export const MAX_PAUSE_MS = 15 * 60_000;

const PauseRecord = z.object({
  provider: z.string(),
  /** Epoch ms (host clock) until which no request of the provider is sent from this host. */
  until: z.number().finite(),
  /** 429s in a row; the growing pause's exponent. */
  strikes: z.number().int().nonnegative(),
  /** What the provider answered, in words (HTTP status, Retry-After): shown to operators. */
  reason: z.string().max(300),
  at: z.number().finite(),
});
export type ProviderPause = z.infer<typeof PauseRecord>;

const PROVIDER_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

export class ProviderPauses {
  constructor(
    private readonly slotsDir: string,
    private readonly now: () => number = Date.now,
  ) {}

  private file(provider: string): string {
    if (!PROVIDER_NAME.test(provider)) throw new RangeError(`not a provider name: ${JSON.stringify(provider)}`);
    return join(this.slotsDir, PROVIDER_PAUSES_DIR, `${provider}.json`);
  }

  /** The provider's record, whether or not its pause is over (a torn or foreign file counts as none). */
  async record(provider: string): Promise<ProviderPause | undefined> {
    const file = this.file(provider);
    try {
      const parsed = PauseRecord.safeParse(JSON.parse(await readFile(file, 'utf8')));
      return parsed.success && parsed.data.provider === provider ? parsed.data : undefined;
    } catch {
      return undefined;
    }
  }

  /** The pause in force at `now` (a refresh passes the workflow's clock, which time skipping moves), or undefined. */
  async current(provider: string, now: number = this.now()): Promise<ProviderPause | undefined> {
    const record = await this.record(provider);
    return record && record.until > now ? record : undefined;
  }

  /**
   * The provider refused for rate (429) or asked for time (Retry-After): pauses it on the
   * host for `retryAfterMs`, or, without one, for a time that doubles with each 429 in a row.
   * A pause already longer is kept. Returns the pause in force.
   */
  async pause(provider: string, answer: { status: number; retryAfterMs?: number }, now: number = this.now()): Promise<ProviderPause> {
    const before = await this.record(provider);
    const strikes = (before?.strikes ?? 0) + 1;
    const growing = Math.min(FIRST_PAUSE_MS * 2 ** Math.min(strikes - 1, 20), MAX_PAUSE_MS);
    // Retry-After is believed up to an hour (as providers/oauth.ts's MAX_RETRY_AFTER_MS), never less than a second.
    const wait = answer.retryAfterMs !== undefined ? Math.min(Math.max(answer.retryAfterMs, 1000), 60 * 60_000) : growing;
    const until = Math.max(now + wait, before && before.until > now ? before.until : 0);
    const reason = `HTTP ${answer.status}${answer.retryAfterMs !== undefined ? `, Retry-After ${Math.ceil(answer.retryAfterMs / 1000)} s` : ' without Retry-After'}`;
    const record: ProviderPause = { provider, until, strikes, reason, at: now };
    await this.write(record);
    return record;
  }

  /** An answer that was no refusal for rate: the next 429 starts the growing pause over. No write when there was no strike. */
  async answered(provider: string, now: number = this.now()): Promise<void> {
    const before = await this.record(provider);
    if (before && before.strikes > 0 && before.until <= now) await this.write({ ...before, strikes: 0 });
  }

  /** Every provider's record (the metrics read this). */
  async all(): Promise<ProviderPause[]> {
    const names = await readdir(join(this.slotsDir, PROVIDER_PAUSES_DIR)).catch(() => [] as string[]);
    const records = await Promise.all(
      names.filter((n) => n.endsWith('.json')).map((n) => n.slice(0, -'.json'.length)).filter((p) => PROVIDER_NAME.test(p)).map((p) => this.record(p)),
    );
    return records.filter((r): r is ProviderPause => r !== undefined);
  }

  private async write(record: ProviderPause): Promise<void> {
    const dir = join(this.slotsDir, PROVIDER_PAUSES_DIR);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    // Another process may write at the same moment: each writes a whole file, the last rename wins.
    const tmp = join(dir, `.${record.provider}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
    await writeFile(tmp, `${JSON.stringify(record)}\n`, { mode: 0o600 });
    await rename(tmp, this.file(record.provider));
  }
}

/** What a waiting request says, in the status and the Web UI's pending activity: the provider asked the host to wait. */
export function waitingForProvider(displayName: string, host: string | undefined, pause: ProviderPause, now: number = Date.now()): string {
  return (
    `waiting for the provider: ${displayName} is refusing requests from this host${host ? ` (${host})` : ''} (${pause.reason}); ` +
    `its token requests from the host wait until ${new Date(pause.until).toISOString()} (${Math.max(0, Math.ceil((pause.until - now) / 1000))} s)`
  );
}

/** Waits this process's turn to send a request of `provider` (common/pacing.ts SendSpacing). */
export async function sendTurn(spacing: { take(provider: string): number } | undefined, provider: string): Promise<void> {
  const wait = spacing?.take(provider) ?? 0;
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
}

/** A request held back for the provider's pause: retried when it ends (a little later for some, so they do not come back as one burst). */
export function providerPaused(displayName: string, host: string | undefined, pause: ProviderPause, now: number = Date.now()): ApplicationFailure {
  return ApplicationFailure.create({
    message: waitingForProvider(displayName, host, pause, now),
    type: FailureType.providerPaused,
    nonRetryable: false,
    details: [{ provider: pause.provider, pausedUntil: pause.until }],
    nextRetryDelay: Math.max(pause.until - now, 0) + 1000 + Math.floor(Math.random() * 2000),
  });
}
