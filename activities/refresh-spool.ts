// The refresh spool: a token answer is kept (0600, fsynced) from the moment it arrives
// until the credential file holds it, in space reserved before the request is sent. Its
// refresh token may be the only live one: nothing here deletes an answer that was not applied.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { CredentialStoreError, UnusableTokenAnswerError } from '../common/failures';
import type { Secrets } from '../common/token-shapes';
import type { Provider, TokenAnswer } from '../providers/provider';
import {
  cleanupStaleTempFiles,
  readSecretFile,
  recoverTempFile,
  removeSecretFile,
  reserveSecretFile,
  updateJsonFileAtomic,
  writeSecretFileAtomic,
  type SecretFileReservation,
} from './credential-store';
import { describeIssues } from './open-slot';
import { misconfigured, transient } from './refresh-failures';
import type { SlotLockHold } from './slot-lock';

/**
 * The last token answer, kept (0600, fsynced) from the moment it arrives until the
 * credential file holds it: after a crash, a full disk or a schema problem its
 * refresh token is the live one, and the next attempt applies it before spending any.
 */
export const REFRESH_SPOOL_FILE = '.refresh-spool.json';
/**
 * The spool's space, reserved (written, fsynced) before a token request is sent: a full
 * disk fails the attempt before the old refresh token is spent. Created exclusively, it
 * also fences the request: an attempt that finds another's reservation younger than
 * the request could live does not send (its token may be in flight).
 */
export const REFRESH_SPOOL_RESERVATION = '.refresh-spool.reserved';
/** Real answers are 1–4 KiB; a larger spool grows the reserved file (which needs space then). */
export const DEFAULT_SPOOL_RESERVE_BYTES = 64 * 1024;
/** Tries at writing the rotated tokens (spool, then credential) within one attempt, a second apart. */
const STORE_TRIES = 3;

export interface RefreshSpoolOptions {
  /** Bytes reserved before a token request is sent. @default 65536 */
  readonly reserveBytes?: number;
  /** A reservation younger than this may belong to an attempt whose request is still in flight. */
  readonly reservationLiveMs: number;
  /** Tests only: called right after the token answer is spooled, before the credential is written (a crash there). */
  readonly afterSpool?: () => void;
}

/** The spool of a host's refreshes: recovering what an earlier attempt left, reserving room, storing a rotation. */
export class RefreshSpool {
  private readonly reserveBytes: number;

  constructor(private readonly options: RefreshSpoolOptions) {
    this.reserveBytes = options.reserveBytes ?? DEFAULT_SPOOL_RESERVE_BYTES;
  }

  /**
   * Before anything else in an attempt: a temp spool fsynced before a crash may hold the
   * only live refresh token (recovered, never deleted), then an earlier reservation.
   */
  async recover(home: string): Promise<void> {
    await recoverTempFile(home, REFRESH_SPOOL_FILE, isSpoolDocument).catch(() => false);
    await cleanupStaleTempFiles(home, REFRESH_SPOOL_FILE, { keep: isSpoolDocument }).catch(() => undefined);
    await this.recoverReservation(home);
  }

  /**
   * Spool, then credential, then drop the spool. A failing write (a full disk) is tried
   * again within the attempt while the answer is in memory; when nothing could be
   * stored the failure says the rotated token is lost, since the old one is probably spent.
   */
  async store(
    provider: Provider,
    home: string,
    tokens: TokenAnswer,
    now: number,
    presented: string,
    secrets: Secrets,
    reservation: SecretFileReservation,
    hold: SlotLockHold,
  ): Promise<{ parsed: unknown }> {
    let spooled = false;
    let reservationUsable = true;
    let lastProblem = '';
    const text = spoolText(provider, tokens, now, presented);
    for (let tryNo = 1; tryNo <= STORE_TRIES; tryNo++) {
      if (!spooled) {
        try {
          // Into the space reserved before the request (no new blocks), then renamed into place.
          if (reservationUsable) {
            try {
              await reservation.fill(text);
              await reservation.commitAs(REFRESH_SPOOL_FILE);
            } catch (err) {
              reservationUsable = false;
              throw err;
            }
          } else {
            await writeSecretFileAtomic(home, REFRESH_SPOOL_FILE, text);
          }
          spooled = true;
          this.options.afterSpool?.();
        } catch (err) {
          if (!(err instanceof CredentialStoreError)) throw err;
          lastProblem = `the spool ${REFRESH_SPOOL_FILE} could not be written: ${err.message}`;
        }
      }
      // The lock is gone (removed, or taken over): the credential is not written; the spool keeps the answer for the next holder.
      if (spooled && (await hold.verify().then(() => false, () => true))) {
        throw transient(`the slot's refresh lock was lost during the refresh; the credential was not written, ${SPOOL_KEPT}`);
      }
      const written = await persistOnce(provider, home, tokens, now);
      if (written.ok) {
        // Left behind, it holds what the credential now holds: the next attempt applies it again and retries the removal.
        if (spooled) await removeSpool(home);
        return { parsed: written.parsed };
      }
      // A schema problem does not pass with time: the spool keeps the answer for a fixed provider.
      if (written.kind === 'unusable' && spooled) throw transient(secrets.scrub(`${written.message}; ${SPOOL_KEPT}`));
      lastProblem = written.message;
      if (tryNo < STORE_TRIES) await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    if (spooled) throw transient(secrets.scrub(`the refreshed ${provider.displayName} credential could not be written: ${lastProblem}; ${SPOOL_KEPT}`));
    throw transient(
      secrets.scrub(
        `the rotated ${provider.displayName} refresh token could not be stored anywhere (${lastProblem}); ` +
          'the file keeps the previous refresh token, which the server has probably spent: free space and expect to need a new login',
      ),
    );
  }

  /** Reserves the spool's space; a disk without room fails the attempt while the old token is unspent. */
  async reserve(home: string): Promise<SecretFileReservation> {
    try {
      return await reserveSecretFile(home, REFRESH_SPOOL_RESERVATION, this.reserveBytes);
    } catch (err) {
      if (!(err instanceof CredentialStoreError)) throw err;
      if (err.code === 'reserved') {
        throw transient(`another refresh attempt of this slot holds ${REFRESH_SPOOL_RESERVATION} (its token request may be in flight); nothing was sent`);
      }
      throw transient(`no room to keep a token answer (${err.message}); nothing was sent, the refresh token is unspent: free space on the slot's volume`);
    }
  }

  /**
   * A reservation left by an earlier attempt: with a whole answer in it (a crash after
   * the fill, before the rename) it becomes the spool; blank and young, its attempt may
   * still have a request in flight (the lock was lost to us), so nothing is sent; blank
   * or torn and older than any request lives, it is removed.
   */
  private async recoverReservation(home: string): Promise<void> {
    const read = await readSecretFile(home, REFRESH_SPOOL_RESERVATION, { requirePrivate: true });
    if (!read.ok) {
      if (read.reason === 'missing') return;
      throw transient(`${REFRESH_SPOOL_RESERVATION} cannot be read (${read.message}); no refresh token is spent until it is fixed or removed`);
    }
    if (isSpoolDocument(read.text)) {
      // The spool first (an older answer): this one is recovered by the next attempt.
      if ((await readSecretFile(home, REFRESH_SPOOL_FILE)).ok) return;
      try {
        await writeSecretFileAtomic(home, REFRESH_SPOOL_FILE, `${read.text.trimEnd()}\n`);
        await removeSecretFile(home, REFRESH_SPOOL_RESERVATION);
      } catch (err) {
        if (err instanceof CredentialStoreError) throw transient(`the token answer in ${REFRESH_SPOOL_RESERVATION} could not be moved to ${REFRESH_SPOOL_FILE}: ${err.message}; it is kept`);
        throw err;
      }
      return;
    }
    const age = Date.now() - read.stat.mtimeMs;
    if (age < this.options.reservationLiveMs) {
      throw transient(`another refresh attempt of this slot reserved ${REFRESH_SPOOL_RESERVATION} ${Math.round(age / 1000)} s ago and may have its token request in flight; nothing was sent`);
    }
    await removeSecretFile(home, REFRESH_SPOOL_RESERVATION).catch(() => false);
  }
}

export const SPOOL_KEPT = `the answer is kept in ${REFRESH_SPOOL_FILE} (its refresh token is the live one) and is applied before any other refresh of this slot`;

/** `presented`: the fingerprint of the request that was answered, to tell whether the credential still holds the spent token. */
const SpoolDocument = z.object({ provider: z.string(), receivedAt: z.number().finite().positive(), presented: z.string(), tokens: z.unknown() });

function spoolText(provider: Provider, tokens: TokenAnswer, receivedAt: number, presented: string): string {
  return `${JSON.stringify({ provider: provider.name, receivedAt, presented, tokens })}\n`;
}

/** Whether `text` is a whole spool document (a temp spool or a filled reservation worth recovering). */
function isSpoolDocument(text: string): boolean {
  try {
    return SpoolDocument.safeParse(JSON.parse(text)).success;
  } catch {
    return false;
  }
}

/** Deeper than this, an extra field of a token answer is not kept (it could not be written, nor read back). */
const MAX_ANSWER_DEPTH = 64;

/**
 * The answer as it can be stored: an extra field nested deeper than MAX_ANSWER_DEPTH
 * (JSON.stringify would throw, after the old token was spent) is dropped, and named
 * to `dropped`. The RFC 6749 fields are strings and numbers, never dropped.
 */
export function keepableAnswer(tokens: TokenAnswer, dropped: (field: string) => void): TokenAnswer {
  const kept: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(tokens)) {
    if (depthOver(value, MAX_ANSWER_DEPTH)) dropped(field);
    else kept[field] = value;
  }
  return kept as TokenAnswer;
}

/** Whether `value` nests deeper than `limit`, found without recursion (the value may be thousands deep). */
function depthOver(value: unknown, limit: number): boolean {
  const stack: Array<{ v: unknown; d: number }> = [{ v: value, d: 0 }];
  while (stack.length > 0) {
    const { v, d } = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (d >= limit) return true;
    for (const item of Array.isArray(v) ? v : Object.values(v)) stack.push({ v: item, d: d + 1 });
  }
  return false;
}

/** SHA-256 of a refresh request's body (which carries the refresh token): the same body, the same token. */
export function requestFingerprint(body: Record<string, string>): string {
  const sorted = Object.fromEntries(Object.entries(body).sort(([a], [b]) => a.localeCompare(b)));
  return createHash('sha256').update(JSON.stringify(sorted)).digest('hex');
}

/** The fingerprint of the refresh request the credential on disk would make; undefined when it cannot be read. */
async function currentFingerprint(provider: Provider, home: string): Promise<string | undefined> {
  const read = await readSecretFile(home, provider.credential.file);
  if (!read.ok) return undefined;
  try {
    const parsed = provider.credential.schema.safeParse(JSON.parse(read.text));
    return parsed.success ? requestFingerprint(provider.refresh.request(parsed.data).body) : undefined;
  } catch {
    return undefined;
  }
}

type PersistOutcome = { readonly ok: true; readonly parsed: unknown } | { readonly ok: false; readonly kind: 'unusable' | 'write-failed'; readonly message: string };

/** Applies `tokens` to the credential file through the provider's `apply` and schema; never throws for a bad answer or a failed write. */
async function persistOnce(provider: Provider, home: string, tokens: TokenAnswer, now: number): Promise<PersistOutcome> {
  const file = provider.credential.file;
  const schema = provider.credential.schema;
  let parsed: unknown;
  try {
    await updateJsonFileAtomic(home, file, (current) => {
      if (!schema.safeParse(current).success) throw new UnusableTokenAnswerError(`${file} changed during the refresh and is no longer a valid credential`);
      let next: unknown;
      try {
        next = provider.refresh.apply(current, tokens, now);
      } catch {
        throw new UnusableTokenAnswerError(`the token answer could not be applied to ${file}`);
      }
      const checked = schema.safeParse(next);
      if (!checked.success) throw new UnusableTokenAnswerError(`the token answer would make ${file} invalid (${describeIssues(checked.error.issues)})`);
      parsed = checked.data;
      return next;
    });
  } catch (err) {
    if (err instanceof UnusableTokenAnswerError) return { ok: false, kind: 'unusable', message: err.message };
    if (err instanceof CredentialStoreError) return { ok: false, kind: 'write-failed', message: err.message };
    throw err;
  }
  return { ok: true, parsed };
}

/**
 * Applies the spooled answer of an earlier attempt, through the same `apply` and
 * schema, and removes the spool. Undefined when there is none. A spool that cannot
 * be applied stays, and the refresh fails transient without spending anything.
 */
export async function applySpool(
  provider: Provider,
  home: string,
  secrets: Secrets,
  discarded: (reason: string) => void,
): Promise<{ parsed: unknown; receivedAt: number } | undefined> {
  const read = await readSecretFile(home, REFRESH_SPOOL_FILE, { requirePrivate: true });
  if (!read.ok) {
    if (read.reason === 'missing') return undefined;
    throw transient(`the spooled token answer cannot be read (${read.message}); no refresh token is spent until ${REFRESH_SPOOL_FILE} is fixed or removed`);
  }
  let spool: z.infer<typeof SpoolDocument>;
  try {
    spool = SpoolDocument.parse(JSON.parse(read.text));
  } catch {
    // No cause: the parser's message may quote the text, which holds tokens.
    throw transient(`${REFRESH_SPOOL_FILE} is damaged (${read.stat.size} bytes); no refresh token is spent until an operator removes it`);
  }
  secrets.addLeaves(spool.tokens);
  if (spool.provider !== provider.name) {
    throw misconfigured(`${REFRESH_SPOOL_FILE} holds a token answer for provider ${JSON.stringify(spool.provider)}, not ${provider.name}; it is left in place`);
  }
  // The same reading as an answer from the endpoint: a spool is only ever an answer that passed it.
  const verdict = provider.refresh.classify({ status: 200, json: spool.tokens });
  if (verdict.kind !== 'success') throw transient(secrets.scrub(`${REFRESH_SPOOL_FILE} does not hold a usable token answer (${verdict.reason}); it is left in place`));
  // A credential with another refresh token than the spent one was written since (a new login, or this answer): the spool is stale.
  const current = await currentFingerprint(provider, home);
  if (current !== undefined && current !== spool.presented) {
    if (!(await removeSpool(home))) throw transient(`a stale ${REFRESH_SPOOL_FILE} could not be removed; remove it by hand`);
    discarded('the credential no longer holds the refresh token the spooled answer replaced');
    return undefined;
  }
  const written = await persistOnce(provider, home, verdict.tokens, spool.receivedAt);
  if (!written.ok) throw transient(secrets.scrub(`applying the spooled token answer failed: ${written.message}; ${SPOOL_KEPT}`));
  // Left in place it would be applied again, over whatever a later refresh wrote.
  if (!(await removeSpool(home))) throw transient(`the spooled token answer was applied but ${REFRESH_SPOOL_FILE} could not be removed; remove it once the slot is active`);
  return { parsed: written.parsed, receivedAt: spool.receivedAt };
}

/** Removes the spool once the credential holds its answer, durably (a spool that comes back would be applied again); walked by descriptor like every slot file. */
const removeSpool = (home: string): Promise<boolean> => removeSecretFile(home, REFRESH_SPOOL_FILE).catch(() => false);
