// Credential backup: after every login and refresh the slot's credential file is
// sealed on its host (AES-256-GCM with the payload keys, the slot id as associated
// data) and written through to a backup store, which never sees a token. A lost
// file, or a move to another host, is restored from the newest backup.
import { Context } from '@temporalio/activity';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { BackupNote, RestoreResult } from '../common/backup';
import { BackupStoreError, CredentialStoreError, ProviderConfigError, UnknownProviderError } from '../common/failures';
import { getProvider } from '../providers';
import type { CredentialFacts, Provider } from '../providers/provider';
import { ensureSlotHome, readSecretFile, writeSecretFileAtomic } from './credential-store';
import { checkSlotRequest } from './slot-record';
import { withSlotLock } from './slot-lock';

/** One stored version of a slot's credential. Everything but `ciphertext` is a non-secret fact. */
export interface StoredBackup {
  readonly slotId: string;
  /** 1, 2, 3 … per slot: a larger one was stored later. */
  readonly generation: number;
  readonly provider: string;
  /** The id of the payload key that sealed it (SLOTS_ENCRYPTION_KEYS). */
  readonly keyId: string;
  /** IV (12 bytes) ‖ AES-256-GCM ciphertext ‖ tag (16 bytes). */
  readonly ciphertext: Buffer;
  /** Epoch ms. */
  readonly createdAt: number;
  /** The host that wrote it. */
  readonly host: string;
  /** The credential's own freshness, so staleness is judged without opening it. */
  readonly lastRefresh?: number;
  readonly expiresAt?: number;
}

export type NewBackup = Omit<StoredBackup, 'generation'>;

/**
 * Where sealed credentials are kept. PostgreSQL is the first backend
 * (postgres-backup-store.ts); a key-value secret store with versions (Vault KV v2, a
 * cloud secret manager) fits the same two calls: write a new version with metadata,
 * read the newest. A store only ever holds ciphertext.
 */
export interface BackupStore {
  /** For messages: the kind and where (never a password). */
  readonly description: string;
  /** Stores a new version of the slot's credential; answers its generation. Throws BackupStoreError. */
  put(backup: NewBackup): Promise<{ generation: number }>;
  /** The slot's newest version, or undefined. Throws BackupStoreError. */
  latest(slotId: string): Promise<StoredBackup | undefined>;
  close(): Promise<void>;
}

/** A payload key (the same shape as workers/encryption.ts's). */
export interface SealingKey {
  readonly id: string;
  readonly key: Buffer;
}

/** A host's backup: the store and the keys; the first key seals, all of them open. */
export interface CredentialBackup {
  readonly store: BackupStore;
  readonly keys: readonly SealingKey[];
  /** This host's name, recorded with each backup. */
  readonly host: string;
}

const IV_BYTES = 12;
const TAG_BYTES = 16;

/** Binds a ciphertext to its slot and provider: a row copied to another slot does not open. */
const associatedData = (slotId: string, provider: string): Buffer => Buffer.from(`slot-provisioner credential backup v1\0${slotId}\0${provider}`, 'utf8');

export function sealCredential(keys: readonly SealingKey[], slotId: string, provider: string, plaintext: string): { keyId: string; ciphertext: Buffer } {
  const [current] = keys;
  if (!current) throw new RangeError('sealing a credential needs a key');
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', current.key, iv);
  cipher.setAAD(associatedData(slotId, provider));
  const sealed = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return { keyId: current.id, ciphertext: Buffer.concat([iv, sealed, cipher.getAuthTag()]) };
}

/** The plaintext, or why it cannot be had (never any of its bytes). */
export function openCredential(keys: readonly SealingKey[], backup: Pick<StoredBackup, 'slotId' | 'provider' | 'keyId' | 'ciphertext'>): { ok: true; text: string } | { ok: false; reason: string } {
  const key = keys.find((k) => k.id === backup.keyId)?.key;
  if (!key) return { ok: false, reason: `it was sealed with key "${backup.keyId}", which is not among this host's SLOTS_ENCRYPTION_KEYS` };
  const data = backup.ciphertext;
  if (data.length < IV_BYTES + TAG_BYTES) return { ok: false, reason: 'it is truncated' };
  const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, IV_BYTES));
  decipher.setAAD(associatedData(backup.slotId, backup.provider));
  decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
  try {
    return { ok: true, text: Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]).toString('utf8') };
  } catch {
    return { ok: false, reason: `it failed authentication with key "${backup.keyId}": another slot's row, an altered row, or a different key with the same id` };
  }
}

const iso = (ms: number | undefined): string => (ms === undefined ? 'unknown' : new Date(ms).toISOString());

/**
 * -1 when `a` is older than `b`, 1 when newer, 0 when as new, undefined when the
 * facts do not tell. The last refresh decides; the expiry when one has no last refresh.
 */
export function compareFreshness(a: Pick<CredentialFacts, 'lastRefresh' | 'expiresAt'>, b: Pick<CredentialFacts, 'lastRefresh' | 'expiresAt'>): -1 | 0 | 1 | undefined {
  const pick = a.lastRefresh !== undefined && b.lastRefresh !== undefined ? ([a.lastRefresh, b.lastRefresh] as const) : a.expiresAt !== undefined && b.expiresAt !== undefined ? ([a.expiresAt, b.expiresAt] as const) : undefined;
  if (!pick) return undefined;
  return pick[0] < pick[1] ? -1 : pick[0] > pick[1] ? 1 : 0;
}

/**
 * Seals `text` (the credential file as written) and stores it. Never throws: a store
 * that is down is reported in the note, and the slot's status says so.
 */
export async function writeThrough(backup: CredentialBackup, slotId: string, provider: Provider, text: string, facts: CredentialFacts, now: number): Promise<BackupNote> {
  const sealed = sealCredential(backup.keys, slotId, provider.name, text);
  try {
    const { generation } = await backup.store.put({
      slotId,
      provider: provider.name,
      ...sealed,
      createdAt: now,
      host: backup.host,
      ...(facts.lastRefresh !== undefined ? { lastRefresh: facts.lastRefresh } : {}),
      ...(facts.expiresAt !== undefined ? { expiresAt: facts.expiresAt } : {}),
    });
    return { ok: true, at: now, generation, message: `backed up to ${backup.store.description} as generation ${generation} (sealed with key "${sealed.keyId}")` };
  } catch (err) {
    const reason = err instanceof BackupStoreError ? err.message : 'an unexpected error';
    Context.current().log.warn('credential backup failed; retried next cycle', { slotId, store: backup.store.description, reason });
    return { ok: false, at: now, message: `the backup to ${backup.store.description} is failing (${reason}); the credential on the host is fine, the next refresh tries again` };
  }
}

/** Backs up the credential file as it is now; a missing or unparsable file is not backed up. */
export async function backUpFile(backup: CredentialBackup, slotId: string, provider: Provider, home: string, now: number): Promise<BackupNote> {
  const read = await readSecretFile(home, provider.credential.file);
  if (!read.ok) return { ok: false, at: now, message: `nothing was backed up: ${read.message}` };
  let parsed: ReturnType<Provider['credential']['schema']['safeParse']>;
  try {
    parsed = provider.credential.schema.safeParse(JSON.parse(read.text));
  } catch {
    return { ok: false, at: now, message: `nothing was backed up: ${provider.credential.file} is not valid JSON` };
  }
  if (!parsed.success) return { ok: false, at: now, message: `nothing was backed up: ${provider.credential.file} is not a ${provider.displayName} credential` };
  return writeThrough(backup, slotId, provider, read.text, provider.credential.facts(parsed.data), now);
}

export interface BackupRequest {
  readonly slotId: string;
  readonly provider: string;
  readonly providerConfig?: unknown;
  /** The workflow's clock (epoch ms). */
  readonly now: number;
}

export interface RestoreRequest extends BackupRequest {
  /** Why: the file was lost (`lost`), or the slot moves here (`move`); said in the log. */
  readonly reason: 'lost' | 'move';
}

const providerOf = (name: string, config: unknown): Provider | string => {
  try {
    return getProvider(name, config);
  } catch (err) {
    if (err instanceof UnknownProviderError || err instanceof ProviderConfigError) return err.message;
    throw err;
  }
};

export function createBackupActivities(deps: { readonly slotsDir: string; readonly backup?: CredentialBackup }) {
  /**
   * A backup of the credential as it is on this host now (before a move, or of a copy a
   * failed move leaves). Not stored when the store's newest is fresher than the file here:
   * an older credential never becomes the newest backup.
   */
  async function backupCredential(input: BackupRequest): Promise<BackupNote> {
    await checkSlotRequest(deps, input);
    if (!deps.backup) return { ok: false, at: input.now, message: 'this host has no backup store (SLOT_BACKUP_URL is not set)' };
    const provider = providerOf(input.provider, input.providerConfig);
    if (typeof provider === 'string') return { ok: false, at: input.now, message: provider };
    const backup = deps.backup;
    const home = await ensureSlotHome(deps.slotsDir, input.slotId);
    return withSlotLock(home, async () => {
      const here = await diskFacts(provider, home);
      let stored: StoredBackup | undefined;
      try {
        stored = here ? await backup.store.latest(input.slotId) : undefined;
      } catch (err) {
        if (!(err instanceof BackupStoreError)) throw err;
        return { ok: false, at: input.now, message: `the backup store cannot be read: ${err.message}` };
      }
      if (here && stored && stored.provider === provider.name && compareFreshness(here, stored) === -1) {
        return { ok: false, at: input.now, message: `the stored generation ${stored.generation} is newer than the credential on this host, which was not backed up` };
      }
      return backUpFile(backup, input.slotId, provider, home, input.now);
    });
  }

  /**
   * Writes the slot's newest backup as its credential file on this host (pinning the
   * slot here, as any first request does). Refused, with nothing written, when there is
   * no usable backup or when the file here is newer: a rotation is never undone.
   */
  async function restoreCredential(input: RestoreRequest): Promise<RestoreResult> {
    await checkSlotRequest(deps, input);
    const host = deps.backup?.host;
    if (!deps.backup) return { kind: 'off', reason: 'this host has no backup store (SLOT_BACKUP_URL is not set)' };
    const { store, keys } = deps.backup;
    const provider = providerOf(input.provider, input.providerConfig);
    if (typeof provider === 'string') return { kind: 'refused', reason: provider };
    let stored: StoredBackup | undefined;
    try {
      stored = await store.latest(input.slotId);
    } catch (err) {
      if (err instanceof BackupStoreError) return { kind: 'refused', reason: `the backup store cannot be read: ${err.message}` };
      throw err;
    }
    if (!stored) return { kind: 'refused', reason: `${store.description} holds no backup of slot ${input.slotId}` };
    const which = `backup generation ${stored.generation} (taken ${iso(stored.createdAt)} on host ${stored.host})`;
    if (stored.provider !== provider.name) return { kind: 'refused', reason: `${which} is a ${stored.provider} credential, not ${provider.name}` };
    const opened = openCredential(keys, stored);
    if (!opened.ok) return { kind: 'refused', reason: `${which} cannot be opened: ${opened.reason}` };
    let restored: ReturnType<Provider['credential']['schema']['safeParse']> | undefined;
    try {
      restored = provider.credential.schema.safeParse(JSON.parse(opened.text));
    } catch {
      restored = undefined;
    }
    if (!restored?.success) return { kind: 'refused', reason: `${which} does not hold a ${provider.displayName} credential` };
    const backupFacts = provider.credential.facts(restored.data);
    const file = provider.credential.file;
    const text = opened.text;
    const home = await ensureSlotHome(deps.slotsDir, input.slotId);
    return withSlotLock(home, async (): Promise<RestoreResult> => {
      const onDisk = await diskFacts(provider, home);
      if (onDisk) {
        const order = compareFreshness(backupFacts, onDisk);
        const facts = (f: CredentialFacts): string => (f.lastRefresh !== undefined ? `last refresh ${iso(f.lastRefresh)}` : `expiry ${iso(f.expiresAt)}`);
        if (order === undefined || order < 0) {
          return {
            kind: 'refused',
            reason:
              `${which} (${facts(backupFacts)}) is ${order === undefined ? 'not known to be newer than' : 'older than'} the ${file} on host ${host} (${facts(onDisk)}): ` +
              'a backup older than a rotation is never restored over a newer file; the file on the host is kept',
          };
        }
      }
      try {
        await writeSecretFileAtomic(home, file, text);
      } catch (err) {
        if (err instanceof CredentialStoreError) return { kind: 'refused', reason: `${which} could not be written to ${file}: ${err.message}` };
        throw err;
      }
      Context.current().log.info('restored the credential from its backup', { slotId: input.slotId, file, generation: stored.generation, reason: input.reason });
      return {
        kind: 'restored',
        generation: stored.generation,
        createdAt: stored.createdAt,
        fromHost: stored.host,
        ...(backupFacts.lastRefresh !== undefined ? { lastRefresh: backupFacts.lastRefresh } : {}),
        ...(backupFacts.expiresAt !== undefined ? { expiresAt: backupFacts.expiresAt } : {}),
      };
    });
  }

  return { backupCredential, restoreCredential };
}

/** The facts of a credential file on the host that parses as the provider's; undefined when missing or unusable. */
async function diskFacts(provider: Provider, home: string): Promise<CredentialFacts | undefined> {
  const read = await readSecretFile(home, provider.credential.file);
  if (!read.ok) return undefined;
  try {
    const parsed = provider.credential.schema.safeParse(JSON.parse(read.text));
    return parsed.success ? provider.credential.facts(parsed.data) : undefined;
  } catch {
    return undefined;
  }
}
