// The PostgreSQL backend of the credential backup store: one table the project
// creates (CREATE TABLE IF NOT EXISTS on first use), one row per stored version, keyed
// by namespace and slot, ciphertext and non-secret facts only. The generation is taken
// under a per-slot advisory lock, so two writers of one slot never get the same number.
import pg from 'pg';
import { BackupStoreError } from '../common/failures';
import type { BackupKind, BackupStore, NewBackup, PutResult, StoredBackup } from './credential-backup';

/**
 * The table's name; the schema below is its one definition. `_v2`: rows bound to a
 * namespace and sealed with the host's backup key. The table of earlier versions
 * (LEGACY_BACKUP_TABLE: no namespace, sealed with the payload keys) is never written,
 * read for a restore or pruned: it is only counted, to say why a slot has no backup.
 */
export const BACKUP_TABLE = 'slot_credential_backups_v2';
export const LEGACY_BACKUP_TABLE = 'slot_credential_backups';

const CREATE_TABLE = `
CREATE TABLE IF NOT EXISTS ${BACKUP_TABLE} (
  namespace    text        NOT NULL,
  slot_id      text        NOT NULL,
  generation   bigint      NOT NULL CHECK (generation > 0),
  kind         text        NOT NULL CHECK (kind IN ('credential', 'tombstone')),
  provider     text        NOT NULL,
  config_hash  text        NOT NULL,
  key_id       text        NOT NULL,
  ciphertext   bytea       NOT NULL,
  created_at   timestamptz NOT NULL,
  host         text        NOT NULL,
  last_refresh timestamptz,
  expires_at   timestamptz,
  PRIMARY KEY (namespace, slot_id, generation)
);
CREATE INDEX IF NOT EXISTS ${BACKUP_TABLE}_tombstones ON ${BACKUP_TABLE} (namespace, created_at) WHERE kind = 'tombstone'`;

/** Versions kept per slot; older ones are deleted as new ones arrive. */
const KEEP_VERSIONS = 10;

/** How long a retired slot's backups are kept by default (SLOT_BACKUP_RETIRED_KEEP_DAYS). */
export const DEFAULT_RETIRED_KEEP_DAYS = 30;

export interface PostgresBackupStoreOptions {
  /** `postgres://user:password@host:port/database` (SLOT_BACKUP_URL). */
  readonly url: string;
  /** Connecting gives up after this long. @default 5000 */
  readonly connectTimeoutMs?: number;
  /** A statement gives up after this long. @default 10000 */
  readonly queryTimeoutMs?: number;
  /** How long a tombstoned (retired) slot's rows are kept before a write in the namespace deletes them. @default 30 days */
  readonly retiredKeepMs?: number;
}

/** `postgres://host:port/db`, without user or password: what messages and logs may show. */
export function describePostgresUrl(url: string): string {
  try {
    const u = new URL(url);
    return `PostgreSQL at ${u.hostname}${u.port ? `:${u.port}` : ''}${u.pathname && u.pathname !== '/' ? u.pathname : ''}`;
  } catch {
    return 'PostgreSQL (SLOT_BACKUP_URL)';
  }
}

type Row = {
  namespace: string;
  slot_id: string;
  generation: string;
  kind: BackupKind;
  provider: string;
  config_hash: string;
  key_id: string;
  ciphertext: Buffer;
  created_at: Date;
  host: string;
  last_refresh: Date | null;
  expires_at: Date | null;
};

const fromRow = (row: Row): StoredBackup => ({
  namespace: row.namespace,
  slotId: row.slot_id,
  generation: Number(row.generation),
  kind: row.kind,
  provider: row.provider,
  configHash: row.config_hash,
  keyId: row.key_id,
  ciphertext: row.ciphertext,
  createdAt: row.created_at.getTime(),
  host: row.host,
  ...(row.last_refresh ? { lastRefresh: row.last_refresh.getTime() } : {}),
  ...(row.expires_at ? { expiresAt: row.expires_at.getTime() } : {}),
});

export class PostgresBackupStore implements BackupStore {
  readonly description: string;
  readonly retiredKeepMs: number;
  private readonly pool: pg.Pool;
  private ready: Promise<void> | undefined;

  constructor(opts: PostgresBackupStoreOptions) {
    this.description = describePostgresUrl(opts.url);
    this.retiredKeepMs = opts.retiredKeepMs ?? DEFAULT_RETIRED_KEEP_DAYS * 86_400_000;
    this.pool = new pg.Pool({
      connectionString: opts.url,
      max: 4,
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 5000,
      query_timeout: opts.queryTimeoutMs ?? 10_000,
      idleTimeoutMillis: 30_000,
    });
    // An idle client's error (the server restarted) must not end the worker.
    this.pool.on('error', () => undefined);
  }

  /** Creates the table if it is missing; once per process, again after a failure. */
  private ensureTable(): Promise<void> {
    this.ready ??= this.pool.query(CREATE_TABLE).then(
      () => undefined,
      (err: unknown) => {
        this.ready = undefined;
        throw err;
      },
    );
    return this.ready;
  }

  private fail(what: string, err: unknown): BackupStoreError {
    // pg's messages name the server's problem (refused, timeout, auth failed), never the URL's password.
    const reason = err instanceof Error ? err.message.replace(/\s+/g, ' ').slice(0, 300) : String(err);
    return new BackupStoreError(`${what} on ${this.description} failed: ${reason}`, this.description, { cause: err });
  }

  async put(backup: NewBackup): Promise<PutResult> {
    let client: pg.PoolClient | undefined;
    try {
      await this.ensureTable();
      client = await this.pool.connect();
      await client.query('BEGIN');
      // One writer per slot at a time: the newest is read and the next generation taken in one transaction.
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))', [backup.namespace, backup.slotId]);
      const newest = (await client.query<Row>(`SELECT * FROM ${BACKUP_TABLE} WHERE namespace = $1 AND slot_id = $2 ORDER BY generation DESC LIMIT 1`, [backup.namespace, backup.slotId])).rows[0];
      // A retired slot's backups stay as the retire left them: nothing is added after its tombstone.
      if (newest?.kind === 'tombstone') {
        await client.query('COMMIT');
        return { kind: 'retired', tombstone: fromRow(newest) };
      }
      const generation = Number(newest?.generation ?? 0) + 1;
      await client.query(
        `INSERT INTO ${BACKUP_TABLE} (namespace, slot_id, generation, kind, provider, config_hash, key_id, ciphertext, created_at, host, last_refresh, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
        [
          backup.namespace,
          backup.slotId,
          generation,
          backup.kind,
          backup.provider,
          backup.configHash,
          backup.keyId,
          backup.ciphertext,
          new Date(backup.createdAt),
          backup.host,
          backup.lastRefresh !== undefined ? new Date(backup.lastRefresh) : null,
          backup.expiresAt !== undefined ? new Date(backup.expiresAt) : null,
        ],
      );
      // A tombstone keeps what it covers (until the retention below); a credential keeps the newest few.
      if (backup.kind === 'credential') {
        await client.query(`DELETE FROM ${BACKUP_TABLE} WHERE namespace = $1 AND slot_id = $2 AND generation <= $3`, [backup.namespace, backup.slotId, generation - KEEP_VERSIONS]);
      }
      // Retired slots of this namespace whose retention ended go, tombstone and all (other namespaces' rows are theirs to prune).
      await client.query(
        `DELETE FROM ${BACKUP_TABLE} b USING ${BACKUP_TABLE} t
         WHERE t.namespace = $1 AND t.kind = 'tombstone' AND t.created_at < $2
           AND b.namespace = t.namespace AND b.slot_id = t.slot_id AND b.generation <= t.generation`,
        [backup.namespace, new Date(backup.createdAt - this.retiredKeepMs)],
      );
      await client.query('COMMIT');
      return { kind: 'stored', generation };
    } catch (err) {
      await client?.query('ROLLBACK').catch(() => undefined);
      throw this.fail(backup.kind === 'tombstone' ? 'tombstoning the backups' : 'storing a backup', err);
    } finally {
      client?.release();
    }
  }

  async latest(namespace: string, slotId: string): Promise<StoredBackup | undefined> {
    let rows: Row[];
    try {
      await this.ensureTable();
      rows = (await this.pool.query<Row>(`SELECT * FROM ${BACKUP_TABLE} WHERE namespace = $1 AND slot_id = $2 ORDER BY generation DESC LIMIT 1`, [namespace, slotId])).rows;
    } catch (err) {
      throw this.fail('reading the newest backup', err);
    }
    const row = rows[0];
    return row ? fromRow(row) : undefined;
  }

  async legacyCount(slotId: string): Promise<number> {
    try {
      const exists = await this.pool.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [LEGACY_BACKUP_TABLE]);
      if (!exists.rows[0]?.t) return 0;
      const count = await this.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${LEGACY_BACKUP_TABLE} WHERE slot_id = $1`, [slotId]);
      return Number(count.rows[0]?.n ?? 0);
    } catch (err) {
      throw this.fail('counting the older table\'s backups', err);
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
