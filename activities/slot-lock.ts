// One refresh of a slot at a time on its host, across worker processes. The slot
// workflow runs one refresh activity at a time, but the server may start a second
// one while an attempt it gave up on (timed out, deadline passed) is still writing:
// the second must wait and re-read, or it presents a refresh token already spent.
import { lock } from 'proper-lockfile';
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { CredentialStoreError } from '../common/failures';

/** The lock's directory in the slot home (mkdir is atomic on every local filesystem). */
export const REFRESH_LOCK = '.refresh.lock';

export interface SlotLockOptions {
  /** A holder that stopped refreshing its lock this long ago is presumed dead. @default 30000 */
  readonly staleMs?: number;
  /** Give up waiting after this long. @default 120000 */
  readonly waitMs?: number;
}

/** What the work holding the lock is told about it. */
export interface SlotLockHold {
  /** Aborted (reason: a CredentialStoreError `lock-lost`) when the lock is no longer ours. */
  readonly signal: AbortSignal;
  /** Throws the `lock-lost` CredentialStoreError once the lock is known lost (proper-lockfile notices within its update interval). */
  throwIfLost(): void;
  /** Looks now: the lock directory still the one taken (not removed, not replaced); else as throwIfLost. Before every irreversible step. */
  verify(): Promise<void>;
}

/**
 * Runs `work` holding the slot's refresh lock; waits (polling) while another holder has it.
 * A lock lost while held (its directory removed, or taken over as stale after the holder
 * stalled) never throws from proper-lockfile's timer, which would kill the worker with every
 * login CLI it holds: it aborts `hold.signal`, and the work stops before its next write.
 */
export async function withSlotLock<T>(home: string, work: (hold: SlotLockHold) => Promise<T>, options: SlotLockOptions = {}): Promise<T> {
  const staleMs = options.staleMs ?? 30_000;
  const waitMs = options.waitMs ?? 120_000;
  const lost = new AbortController();
  let release: () => Promise<void>;
  try {
    release = await lock(home, {
      lockfilePath: join(home, REFRESH_LOCK),
      // The slot home is ours; never resolve (and follow) a symlink to find it.
      realpath: false,
      stale: staleMs,
      update: Math.max(1000, Math.floor(staleMs / 3)),
      retries: { retries: Math.ceil(waitMs / 500), factor: 1, minTimeout: 500, maxTimeout: 500 },
      // proper-lockfile's default throws from a timer: an uncaught exception that ends the process.
      onCompromised: (err) => {
        const how = (err as { code?: string }).code === 'ENOENT' ? 'was removed' : 'was taken over or could not be kept';
        lost.abort(new CredentialStoreError('lock-lost', `the slot's refresh lock ${REFRESH_LOCK} ${how} during the work; it stopped before writing anything more`, REFRESH_LOCK, { cause: err }));
      },
    });
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ELOCKED') {
      throw new CredentialStoreError('write-failed', `another refresh of this slot has held ${REFRESH_LOCK} for more than ${Math.round(waitMs / 1000)} s`, REFRESH_LOCK, { cause: err });
    }
    throw new CredentialStoreError('write-failed', `cannot take the slot's refresh lock ${REFRESH_LOCK} (${code ?? 'error'})`, REFRESH_LOCK, { cause: err });
  }
  const lockPath = join(home, REFRESH_LOCK);
  const taken = await lstat(lockPath).then(
    (st) => st.ino,
    () => undefined,
  );
  const throwIfLost = (): void => {
    if (lost.signal.aborted) throw lost.signal.reason as Error;
  };
  const hold: SlotLockHold = {
    signal: lost.signal,
    throwIfLost,
    verify: async () => {
      throwIfLost();
      const now = await lstat(lockPath).then(
        (st) => st.ino,
        () => undefined,
      );
      if (now === undefined || now !== taken) {
        lost.abort(new CredentialStoreError('lock-lost', `the slot's refresh lock ${REFRESH_LOCK} was ${now === undefined ? 'removed' : 'replaced'} during the work; it stopped before writing anything more`, REFRESH_LOCK));
        throwIfLost();
      }
    },
  };
  try {
    return await work(hold);
  } finally {
    // Released after a loss it rejects (ERELEASED): nothing of ours is left to remove.
    await release().catch(() => undefined);
  }
}
