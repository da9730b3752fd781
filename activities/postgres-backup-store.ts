// The PostgreSQL backend of the credential backup store: one table the project
// creates (CREATE TABLE IF NOT EXISTS on first use), one row per stored version,
// ciphertext and non-secret facts only. The generation is taken under a per-slot
// advisory lock, so two writers of one slot never get the same number.
import pg from 'pg';
import { BackupStoreError } from '../common/failures';
import type { BackupStore, NewBackup, StoredBackup } from './credential-backup';

/** The table's name; the schema below is its one definition. */
export const BACKUP_TABLE = 'slot_credential_backups';

const CREATE_TABLE = `
CREATE TABLE IF NOT EXISTS ${BACKUP_TABLE} (
  slot_id      text        NOT NULL,
  generation   bigint      NOT NULL CHECK (generation > 0),
  provider     text        NOT NULL,
  key_id       text        NOT NULL,
  ciphertext   bytea       NOT NULL,
  created_at   timestamptz NOT NULL,
  host         text        NOT NULL,
  last_refresh timestamptz,
  expires_at   timestamptz,
  PRIMARY KEY (slot_id, generation)
)`;

/** Versions kept per slot; older ones are deleted as new ones arrive. */
const KEEP_VERSIONS = 10;

export interface PostgresBackupStoreOptions {
  /** `postgres://user:password@host:port/database` (SLOT_BACKUP_URL). */
  readonly url: string;
  /** Connecting gives up after this long. @default 5000 */
  readonly connectTimeoutMs?: number;
  /** A statement gives up after this long. @default 10000 */
  readonly queryTimeoutMs?: number;
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
  slot_id: string;
  generation: string;
  provider: string;
  key_id: string;
  ciphertext: Buffer;
  created_at: Date;
  host: string;
  last_refresh: Date | null;
  expires_at: Date | null;
};

export class PostgresBackupStore implements BackupStore {
  readonly description: string;
  private readonly pool: pg.Pool;
  private ready: Promise<void> | undefined;

  constructor(opts: PostgresBackupStoreOptions) {
    this.description = describePostgresUrl(opts.url);
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

  async put(backup: NewBackup): Promise<{ generation: number }> {
    let client: pg.PoolClient | undefined;
    try {
      await this.ensureTable();
      client = await this.pool.connect();
      await client.query('BEGIN');
      // One writer per slot at a time: the next generation is read and taken in one transaction.
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [backup.slotId]);
      const next = await client.query<{ generation: string }>(`SELECT COALESCE(MAX(generation), 0) + 1 AS generation FROM ${BACKUP_TABLE} WHERE slot_id = $1`, [backup.slotId]);
      const generation = Number(next.rows[0]?.generation ?? 1);
      await client.query(
        `INSERT INTO ${BACKUP_TABLE} (slot_id, generation, provider, key_id, ciphertext, created_at, host, last_refresh, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
        [
          backup.slotId,
          generation,
          backup.provider,
          backup.keyId,
          backup.ciphertext,
          new Date(backup.createdAt),
          backup.host,
          backup.lastRefresh !== undefined ? new Date(backup.lastRefresh) : null,
          backup.expiresAt !== undefined ? new Date(backup.expiresAt) : null,
        ],
      );
      await client.query(`DELETE FROM ${BACKUP_TABLE} WHERE slot_id = $1 AND generation <= $2`, [backup.slotId, generation - KEEP_VERSIONS]);
      await client.query('COMMIT');
      return { generation };
    } catch (err) {
      await client?.query('ROLLBACK').catch(() => undefined);
      throw this.fail('storing a backup', err);
    } finally {
      client?.release();
    }
  }

  async latest(slotId: string): Promise<StoredBackup | undefined> {
    let rows: Row[];
    try {
      await this.ensureTable();
      rows = (await this.pool.query<Row>(`SELECT * FROM ${BACKUP_TABLE} WHERE slot_id = $1 ORDER BY generation DESC LIMIT 1`, [slotId])).rows;
    } catch (err) {
      throw this.fail('reading the newest backup', err);
    }
    const row = rows[0];
    if (!row) return undefined;
    return {
      slotId: row.slot_id,
      generation: Number(row.generation),
      provider: row.provider,
      keyId: row.key_id,
      ciphertext: row.ciphertext,
      createdAt: row.created_at.getTime(),
      host: row.host,
      ...(row.last_refresh ? { lastRefresh: row.last_refresh.getTime() } : {}),
      ...(row.expires_at ? { expiresAt: row.expires_at.getTime() } : {}),
    };
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
