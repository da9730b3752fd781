// Credential backup: after every login and refresh the credential file is sealed on its
// host (the host's backup key; namespace, slot, provider, configuration and every stored
// fact bound) and written through to a store that never sees a token; restores and retires.
import { Context } from '@temporalio/activity';
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import type { BackupNote, RestoreResult, RetireBackupsResult } from '../common/backup';
import { BackupStoreError, CredentialStoreError, ProviderConfigError, UnknownProviderError } from '../common/failures';
import { parseProviderConfig } from '../providers';
import type { CredentialFacts, Provider } from '../providers/provider';
import { ensureSlotHome, writeSecretFileAtomic } from './credential-store';
import { openSlot, readCredentialFile } from './open-slot';
import { checkSlotRequest, type SlotCheckDeps } from './slot-record';
import { withSlotLock } from './slot-lock';

/** A credential, or the tombstone a retire leaves as the slot's newest version. */
export type BackupKind = 'credential' | 'tombstone';

/**
 * What a backup was made for and what it says of itself: every field is bound to the
 * ciphertext as associated data, so a row whose columns were changed does not open.
 */
export interface BackupFacts {
  /** The Temporal namespace of the host that wrote it (teams sharing a database never see each other's rows). */
  readonly namespace: string;
  readonly slotId: string;
  readonly kind: BackupKind;
  readonly provider: string;
  /** `configHash(provider, providerConfig)` of the slot it was made for. */
  readonly configHash: string;
  /** The host that wrote it. */
  readonly host: string;
  /** Epoch ms. */
  readonly createdAt: number;
  /** The credential's own freshness, so staleness is judged without opening the credential. */
  readonly lastRefresh?: number;
  readonly expiresAt?: number;
}

/** One stored version of a slot's credential. Everything but `ciphertext` is a non-secret fact. */
export interface StoredBackup extends BackupFacts {
  /** 1, 2, 3 … per namespace and slot: a larger one was stored later. */
  readonly generation: number;
  /** The id of the backup key that sealed it (SLOT_BACKUP_KEYS). */
  readonly keyId: string;
  /** IV (12 bytes) ‖ AES-256-GCM ciphertext ‖ tag (16 bytes). */
  readonly ciphertext: Buffer;
}

export type NewBackup = Omit<StoredBackup, 'generation'>;

/** A put's outcome: stored, or not, because the slot's newest version is a tombstone (it was retired). */
export type PutResult = { readonly kind: 'stored'; readonly generation: number } | { readonly kind: 'retired'; readonly tombstone: StoredBackup };

/**
 * Where sealed credentials are kept. PostgreSQL is the first backend
 * (postgres-backup-store.ts); a key-value secret store with versions (Vault KV v2, a
 * cloud secret manager) fits the same calls: write a new version with metadata,
 * read the newest. A store only ever holds ciphertext.
 */
export interface BackupStore {
  /** For messages: the kind and where (never a password). */
  readonly description: string;
  /**
   * Stores a new version of the slot's credential (or its tombstone) and answers its
   * generation; a credential is not stored over a tombstone, a second tombstone answers
   * the first. Throws BackupStoreError.
   */
  put(backup: NewBackup): Promise<PutResult>;
  /** The slot's newest version in `namespace`, or undefined. Throws BackupStoreError. */
  latest(namespace: string, slotId: string): Promise<StoredBackup | undefined>;
  /** Backups of the slot in the store's pre-namespace table (written before backup keys existed): only counted, never read. */
  legacyCount?(slotId: string): Promise<number>;
  /** How long a tombstoned slot's rows are kept (ms); undefined: until removed by hand. */
  readonly retiredKeepMs?: number;
  close(): Promise<void>;
}

/** A backup key (SLOT_BACKUP_KEYS; the same shape as the payload keys, never one of them). */
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
  /** This worker's Temporal namespace, recorded with and required of each backup. */
  readonly namespace: string;
  /** Hosts whose backups this host restores besides its own (SLOT_BACKUP_RESTORE_FROM_HOSTS); `'*'`: any host's. */
  readonly restoreFromHosts?: readonly string[] | '*';
  /** Slots whose backups this host restores although they were made for another configuration (SLOT_BACKUP_RESTORE_RECONFIGURED). */
  readonly restoreReconfigured?: readonly string[];
}

const IV_BYTES = 12;
const TAG_BYTES = 16;

/** JSON with object keys sorted at every level: one text per value. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    return `{${entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

/**
 * SHA-256 of the slot's normalised provider configuration (its endpoints, client,
 * scopes, token path; defaults filled in), as hex. Throws UnknownProviderError or
 * ProviderConfigError for a configuration the provider refuses.
 */
export function configHash(provider: string, providerConfig: unknown): string {
  const normalised = parseProviderConfig(provider, providerConfig) ?? null;
  return createHash('sha256').update(`slot-provisioner provider configuration v1\0${provider}\0${canonicalJson(normalised)}`, 'utf8').digest('hex');
}

/** Binds a ciphertext to everything its row says: a row copied to another namespace, slot or configuration, or with a changed column, does not open. */
const associatedData = (f: BackupFacts): Buffer =>
  Buffer.from(
    `slot-provisioner credential backup v2\0${JSON.stringify([f.namespace, f.slotId, f.kind, f.provider, f.configHash, f.host, f.createdAt, f.lastRefresh ?? null, f.expiresAt ?? null])}`,
    'utf8',
  );

export function sealBackup(keys: readonly SealingKey[], facts: BackupFacts, plaintext: string): NewBackup {
  const [current] = keys;
  if (!current) throw new RangeError('sealing a backup needs a key');
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', current.key, iv);
  cipher.setAAD(associatedData(facts));
  const sealed = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return { ...facts, keyId: current.id, ciphertext: Buffer.concat([iv, sealed, cipher.getAuthTag()]) };
}

/** The plaintext, or why it cannot be had (never any of its bytes). Success also proves every fact of the row. */
export function openBackup(keys: readonly SealingKey[], backup: NewBackup): { ok: true; text: string } | { ok: false; reason: string } {
  const key = keys.find((k) => k.id === backup.keyId)?.key;
  if (!key) return { ok: false, reason: `it was sealed with backup key "${backup.keyId}", which is not among this host's SLOT_BACKUP_KEYS` };
  const data = backup.ciphertext;
  if (data.length < IV_BYTES + TAG_BYTES) return { ok: false, reason: 'it is truncated' };
  const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, IV_BYTES));
  decipher.setAAD(associatedData(backup));
  decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
  try {
    return { ok: true, text: Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]).toString('utf8') };
  } catch {
    return {
      ok: false,
      reason: `it failed authentication with backup key "${backup.keyId}": a row altered in the store (its ciphertext or a column: namespace, slot, provider, configuration, host, times), another namespace's or slot's row, or a different key with the same id`,
    };
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

/** What a slot's backups are bound to on this host: its namespace, slot, provider and configuration. */
export interface BackupSubject {
  readonly slotId: string;
  readonly provider: Provider;
  /** The slot's provider configuration as the workflow gives it (checked against the host's record first). */
  readonly providerConfig: unknown;
}

const retiredMessage = (t: StoredBackup, keepMs: number | undefined): string =>
  `slot ${t.slotId} was retired on host ${t.host} at ${iso(t.createdAt)}: its backups are tombstoned, never restored or added to by a workflow, ` +
  (keepMs === undefined ? 'and kept until removed by hand' : `and deleted after ${iso(t.createdAt + keepMs)}`);

/**
 * Seals `text` (the credential file as written) and stores it. Never throws: a store
 * that is down is reported in the note, and the slot's status says so.
 */
export async function writeThrough(backup: CredentialBackup, subject: BackupSubject, text: string, facts: CredentialFacts, now: number): Promise<BackupNote> {
  const { slotId, provider } = subject;
  const sealed = sealBackup(
    backup.keys,
    {
      namespace: backup.namespace,
      slotId,
      kind: 'credential',
      provider: provider.name,
      configHash: configHash(provider.name, subject.providerConfig),
      host: backup.host,
      createdAt: now,
      ...(facts.lastRefresh !== undefined ? { lastRefresh: facts.lastRefresh } : {}),
      ...(facts.expiresAt !== undefined ? { expiresAt: facts.expiresAt } : {}),
    },
    text,
  );
  try {
    const put = await backup.store.put(sealed);
    if (put.kind === 'retired') return { ok: false, at: now, message: `nothing was backed up: ${retiredMessage(put.tombstone, backup.store.retiredKeepMs)}` };
    return { ok: true, at: now, generation: put.generation, message: `backed up to ${backup.store.description} as generation ${put.generation} (sealed with backup key "${sealed.keyId}")` };
  } catch (err) {
    const reason = err instanceof BackupStoreError ? err.message : 'an unexpected error';
    Context.current().log.warn('credential backup failed; retried next cycle', { slotId, store: backup.store.description, reason });
    return { ok: false, at: now, message: `the backup to ${backup.store.description} is failing (${reason}); the credential on the host is fine, the next refresh tries again` };
  }
}

/** Backs up the credential file as it is now; a missing or unparsable file is not backed up. */
export async function backUpFile(backup: CredentialBackup, subject: BackupSubject, home: string, now: number): Promise<BackupNote> {
  const { provider } = subject;
  const read = await readCredentialFile(provider, home);
  switch (read.kind) {
    case 'unread':
      return { ok: false, at: now, message: `nothing was backed up: ${read.message}` };
    case 'not-json':
      return { ok: false, at: now, message: `nothing was backed up: ${provider.credential.file} is not valid JSON` };
    case 'invalid':
      return { ok: false, at: now, message: `nothing was backed up: ${provider.credential.file} is not a ${provider.displayName} credential` };
    case 'parsed':
      return writeThrough(backup, subject, read.text, provider.credential.facts(read.credential), now);
  }
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

/** The slot's newest version, opened (which authenticates all its facts); `unusable` when it does not open. */
type Newest = { kind: 'none' } | { kind: 'ok'; stored: StoredBackup; text: string } | { kind: 'unusable'; stored: StoredBackup; reason: string };

async function newestOpened(backup: CredentialBackup, slotId: string): Promise<Newest> {
  const stored = await backup.store.latest(backup.namespace, slotId);
  if (!stored) return { kind: 'none' };
  // The store is asked by namespace; a row that says otherwise was not written for it (and does not open either).
  if (stored.namespace !== backup.namespace || stored.slotId !== slotId) return { kind: 'unusable', stored, reason: `the store answered a row of namespace ${stored.namespace}, slot ${stored.slotId}` };
  const opened = openBackup(backup.keys, stored);
  return opened.ok ? { kind: 'ok', stored, text: opened.text } : { kind: 'unusable', stored, reason: opened.reason };
}

/**
 * Whole on purpose (about 150 lines): its body is three activities of 20–70 lines that share
 * only `deps`, each reading top to bottom as the order of its refusals; the helpers they share are above.
 */
export function createBackupActivities(deps: SlotCheckDeps & { readonly backup?: CredentialBackup }) {
  /**
   * A backup of the credential as it is on this host now (before a move, or of a copy a
   * failed move leaves). Not stored when the store's newest is fresher than the file here:
   * an older credential never becomes the newest backup.
   */
  async function backupCredential(input: BackupRequest): Promise<BackupNote> {
    const opening = await openSlot(deps, input);
    if (!deps.backup) return { ok: false, at: input.now, message: 'this host has no backup store (SLOT_BACKUP_URL is not set)' };
    if (!opening.ok) return { ok: false, at: input.now, message: opening.problem };
    const { provider } = opening.slot;
    const backup = deps.backup;
    const subject = { slotId: input.slotId, provider, providerConfig: input.providerConfig };
    const home = await ensureSlotHome(deps.slotsDir, input.slotId);
    return withSlotLock(home, async () => {
      const here = await diskFacts(provider, home);
      let newest: Newest = { kind: 'none' };
      try {
        if (here) newest = await newestOpened(backup, input.slotId);
      } catch (err) {
        if (!(err instanceof BackupStoreError)) throw err;
        return { ok: false, at: input.now, message: `the backup store cannot be read: ${err.message}` };
      }
      // Only authenticated facts decide: a column raised in the store cannot stop the backup of a newer file.
      if (here && newest.kind === 'ok' && newest.stored.kind === 'credential' && newest.stored.provider === provider.name && compareFreshness(here, newest.stored) === -1) {
        return { ok: false, at: input.now, message: `the stored generation ${newest.stored.generation} is newer than the credential on this host, which was not backed up` };
      }
      return backUpFile(backup, subject, home, input.now);
    });
  }

  /**
   * Writes the slot's newest backup as its credential file on this host. Refused, with
   * nothing written, when there is no usable backup, when the backup was made for another
   * namespace, slot, provider or configuration, on a host this host does not restore
   * from, or for a retired slot; and when the file here is newer: a rotation is never undone.
   */
  async function restoreCredential(input: RestoreRequest): Promise<RestoreResult> {
    const opening = await openSlot(deps, input);
    const host = deps.backup?.host;
    if (!deps.backup) return { kind: 'off', reason: 'this host has no backup store (SLOT_BACKUP_URL is not set)' };
    const backup = deps.backup;
    const { store } = backup;
    if (!opening.ok) return { kind: 'refused', reason: opening.problem };
    const { provider } = opening.slot;
    let newest: Newest;
    try {
      newest = await newestOpened(backup, input.slotId);
    } catch (err) {
      if (err instanceof BackupStoreError) return { kind: 'refused', reason: `the backup store cannot be read: ${err.message}` };
      throw err;
    }
    if (newest.kind === 'none') return { kind: 'refused', reason: await noBackupReason(backup, input.slotId) };
    const { stored } = newest;
    const which = `backup generation ${stored.generation} (taken ${iso(stored.createdAt)} on host ${stored.host})`;
    if (newest.kind === 'unusable') return { kind: 'refused', reason: `${which} cannot be opened: ${newest.reason}` };
    // From here every fact of `stored` is authenticated (it opened with this host's key, bound to them).
    if (stored.kind === 'tombstone') return { kind: 'refused', reason: retiredMessage(stored, store.retiredKeepMs) };
    if (stored.provider !== provider.name) return { kind: 'refused', reason: `${which} is a ${stored.provider} credential, not ${provider.name}` };
    const askedHash = configHash(provider.name, input.providerConfig);
    if (stored.configHash !== askedHash && !(backup.restoreReconfigured ?? []).includes(input.slotId)) {
      return {
        kind: 'refused',
        reason:
          `${which} was made for another configuration of slot ${input.slotId} (configuration hash ${stored.configHash.slice(0, 12)}, asked ${askedHash.slice(0, 12)}): ` +
          'a backup is restored only into the configuration it was made for; if the change is intended, the host\'s operator allows it with SLOT_BACKUP_RESTORE_RECONFIGURED',
      };
    }
    const fromHosts = backup.restoreFromHosts ?? [];
    if (stored.host !== host && fromHosts !== '*' && !fromHosts.includes(stored.host)) {
      return {
        kind: 'refused',
        reason: `${which} was made on host ${stored.host}, and host ${host} restores only its own backups and those of the hosts in its SLOT_BACKUP_RESTORE_FROM_HOSTS (set it on ${host} to move slots here from ${stored.host})`,
      };
    }
    let restored: ReturnType<Provider['credential']['schema']['safeParse']> | undefined;
    try {
      restored = provider.credential.schema.safeParse(JSON.parse(newest.text));
    } catch {
      restored = undefined;
    }
    if (!restored?.success) return { kind: 'refused', reason: `${which} does not hold a ${provider.displayName} credential` };
    const backupFacts = provider.credential.facts(restored.data);
    const file = provider.credential.file;
    const text = newest.text;
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

  /**
   * Retiring: a sealed tombstone becomes the slot's newest version, so no workflow restores
   * its backups (nor adds to them) again; the store deletes them after its retention.
   */
  async function tombstoneBackups(input: BackupRequest): Promise<RetireBackupsResult> {
    // Only the slot's own workflow; without a provider, so that a slot without a record on this host gets none (the tombstone blocks whatever it names).
    await checkSlotRequest(deps, { slotId: input.slotId });
    if (!deps.backup) return { kind: 'off', reason: 'this host has no backup store (SLOT_BACKUP_URL is not set)' };
    const backup = deps.backup;
    let hash: string;
    try {
      hash = configHash(input.provider, input.providerConfig);
    } catch (err) {
      if (err instanceof UnknownProviderError || err instanceof ProviderConfigError) return { kind: 'failed', reason: err.message };
      throw err;
    }
    const tombstone = sealBackup(backup.keys, { namespace: backup.namespace, slotId: input.slotId, kind: 'tombstone', provider: input.provider, configHash: hash, host: backup.host, createdAt: input.now }, '');
    let put: PutResult;
    try {
      put = await backup.store.put(tombstone);
    } catch (err) {
      if (err instanceof BackupStoreError) return { kind: 'failed', reason: err.message };
      throw err;
    }
    const at = put.kind === 'stored' ? { generation: put.generation, createdAt: input.now } : { generation: put.tombstone.generation, createdAt: put.tombstone.createdAt };
    const keepMs = backup.store.retiredKeepMs;
    return { kind: 'tombstoned', generation: at.generation, ...(keepMs !== undefined ? { keptUntil: at.createdAt + keepMs } : {}) };
  }

  return { backupCredential, restoreCredential, tombstoneBackups };
}

/** Why nothing was restored when the store holds nothing for the slot in this namespace; names backups the old table still holds. */
async function noBackupReason(backup: CredentialBackup, slotId: string): Promise<string> {
  const none = `${backup.store.description} holds no backup of slot ${slotId} in namespace ${backup.namespace}`;
  let legacy = 0;
  try {
    legacy = (await backup.store.legacyCount?.(slotId)) ?? 0;
  } catch {
    return none;
  }
  if (legacy === 0) return none;
  return (
    `${none}; its older table holds ${legacy} backup${legacy === 1 ? '' : 's'} of slot ${slotId} from before backups were sealed with the host's backup key and bound to a namespace, ` +
    'which are never restored (anyone with the payload keys could have written them; they are kept as they were): see docs/fleets.md, "Credential backup", upgrading'
  );
}

/** The facts of a credential file on the host that parses as the provider's; undefined when missing or unusable. */
async function diskFacts(provider: Provider, home: string): Promise<CredentialFacts | undefined> {
  const read = await readCredentialFile(provider, home);
  return read.kind === 'parsed' ? provider.credential.facts(read.credential) : undefined;
}
