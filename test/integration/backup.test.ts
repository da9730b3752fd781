// Credential backup and restore against a real PostgreSQL (our own instance under a
// temporary directory) and a real token endpoint on 127.0.0.1, on the dev server: the
// write-through after each refresh, a slot whose directory is deleted coming back with
// no login, a store that is down, a table that holds no token, moves that are refused.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureSlotHome, writeSecretFileAtomic } from '../../activities/credential-store';
import { BACKUP_TABLE, PostgresBackupStore } from '../../activities/postgres-backup-store';
import { SlotClient } from '../../client/slot-client';
import { MoveRefusedError } from '../../common/failures';
import type { SlotStatus } from '../../common/messages';
import { devServerClient, startWorkers, uniqueName, type RunningWorkers } from '../harness';
import { startTokenServer, type TokenServer } from '../peers/token-server';
import { postgresOrSkip, startPostgres, type Postgres } from '../postgres';

const CLAUDE_CLIENT_ID = '9d1c250a-e61b-44d9-88ed-5944d1962f5e';
const CREDENTIAL = '.claude/.credentials.json';
const { skip, missing } = postgresOrSkip('backup');

describe.skipIf(skip)('credential backup on PostgreSQL', () => {
  let pg: Postgres;
  let store: PostgresBackupStore;
  let server: TokenServer;
  let slotsDir: string;
  let workers: RunningWorkers;
  let slots: SlotClient;
  let closeConnection: () => Promise<void>;
  const keys = [{ id: 'k1', key: randomBytes(32) }];
  const provisioned: string[] = [];

  beforeAll(async () => {
    if (missing) throw new Error(`${missing} is missing and CI is set`);
    pg = await startPostgres();
    store = new PostgresBackupStore({ url: pg.url, connectTimeoutMs: 2000, queryTimeoutMs: 5000 });
    server = await startTokenServer({ defaultClientId: CLAUDE_CLIENT_ID, accessTtlSec: 8 * 3600 });
    slotsDir = await mkdtemp(join(tmpdir(), 'slots-backup-'));
    workers = await startWorkers({
      slotsDir,
      env: { ...process.env, CLAUDE_TOKEN_URL: server.claudeTokenUrl, SLOTS_ALLOWED_ENDPOINT_HOSTS: '127.0.0.1', CLAUDE_BIN: '/nonexistent/claude' },
      backup: { store, keys },
    });
    const { client, connection } = await devServerClient();
    slots = new SlotClient(client, workers.sharedTaskQueue);
    closeConnection = () => connection.close();
  }, 180_000);

  afterAll(async () => {
    for (const slotId of provisioned) await slots?.retire(slotId).catch(() => undefined);
    await workers?.stop();
    await closeConnection?.();
    await store?.close();
    await server?.close();
    await pg?.stop();
    if (slotsDir) await rm(slotsDir, { recursive: true, force: true });
  });

  afterEach(() => {
    // A test that stopped the database leaves it running for the next.
    try {
      pg.psql('SELECT 1');
    } catch {
      pg.startServer();
    }
  });

  /** A Claude credential as the CLI writes it, with tokens the server issued; the slot adopts it. */
  async function adoptedSlot(options: { onPermanentFailure?: 'login' | 'wait' } = {}): Promise<{ slotId: string; grantId: string }> {
    const slotId = uniqueName('bk');
    const tokens = server.issue();
    await writeSecretFileAtomic(
      await ensureSlotHome(slotsDir, slotId),
      CREDENTIAL,
      JSON.stringify({ claudeAiOauth: { accessToken: tokens.accessToken, refreshToken: tokens.refreshToken, expiresAt: Date.now() + 8 * 3600_000, scopes: ['user:inference'], subscriptionType: 'max' } }),
    );
    provisioned.push(slotId);
    await slots.provision({ slotId, provider: 'claude', host: workers.hostName, adoptExisting: true, options: { hostWaitMs: 20_000, ...options } });
    const adopted = await until(slotId, (s) => s.phase === 'active', 'active after adoption');
    // The adopted credential is backed up by the first check, before any refresh.
    expect(adopted.backup).toMatchObject({ ok: true, generation: 1 });
    return { slotId, grantId: tokens.grantId };
  }

  async function until(slotId: string, check: (s: SlotStatus) => boolean, what: string, timeoutMs = 60_000): Promise<SlotStatus> {
    const { status, reached } = await slots.waitFor(slotId, check, { timeoutMs, pollMs: 200 });
    if (!reached) throw new Error(`slot ${slotId}: wanted ${what}, have ${JSON.stringify(status)}`);
    return status;
  }

  /** Asks for a refresh and waits until the slot did one more (and is not refreshing). */
  async function refreshed(slotId: string): Promise<SlotStatus> {
    const before = (await slots.status(slotId)).refreshes;
    await slots.refreshNow(slotId);
    return until(slotId, (s) => s.refreshes > before && (s.phase === 'active' || s.phase === 'needs-relogin'), 'a refresh');
  }

  const readCredential = async (slotId: string): Promise<{ claudeAiOauth: { accessToken: string; refreshToken: string } }> =>
    JSON.parse(await readFile(join(slotsDir, slotId, CREDENTIAL), 'utf8'));

  const generations = (slotId: string): number[] => pg.psql(`SELECT generation FROM ${BACKUP_TABLE} WHERE namespace = 'default' AND slot_id = '${slotId}' ORDER BY generation`).map(Number);

  it('backs up every refresh, and restores a deleted slot directory from the newest backup, proven by a refresh', { timeout: 180_000 }, async () => {
    const { slotId, grantId } = await adoptedSlot();
    const first = await refreshed(slotId);
    expect(first.backup).toMatchObject({ ok: true, generation: 2 });
    const second = await refreshed(slotId);
    expect(second.phase).toBe('active');
    expect(second.backup).toMatchObject({ ok: true, generation: 3 });
    expect(second.backup?.message).toContain('PostgreSQL at 127.0.0.1');
    expect(generations(slotId)).toEqual([1, 2, 3]);
    const newestBeforeLoss = (await readCredential(slotId)).claudeAiOauth.refreshToken;
    expect(server.grant(grantId)?.refreshToken).toBe(newestBeforeLoss);

    // The host loses the slot's directory (a volume gone): the next refresh finds no credential.
    await rm(join(slotsDir, slotId), { recursive: true, force: true });
    const presentedBefore = server.requests.length;
    const restored = await refreshed(slotId);
    expect(restored.phase).toBe('active');
    expect(restored.logins).toBe(0);
    expect(restored.lastOutcome?.kind).toBe('refresh-succeeded');
    expect(restored.lastOutcome?.message).toMatch(/the credential was lost \(no Claude Code credential to refresh.*restored backup generation 3 .*a refresh proved it/);
    // The restored refresh token was the newest one: the server rotated it (a spent one would have killed the grant).
    const proof = server.requests.slice(presentedBefore).filter((r) => r.examined);
    expect(proof.map((r) => [r.refreshToken, r.outcome])).toEqual([[newestBeforeLoss, 'rotated']]);
    const after = await readCredential(slotId);
    expect(after.claudeAiOauth.refreshToken).toBe(server.grant(grantId)?.refreshToken);
    expect(server.grant(grantId)?.alive).toBe(true);
    // The proof's rotation was written through as well.
    expect(restored.backup).toMatchObject({ ok: true, generation: 4 });
    expect(generations(slotId)).toEqual([1, 2, 3, 4]);
  });

  it('a restored backup that does not refresh leaves the slot needing a login, saying so; it is restored only once', { timeout: 120_000 }, async () => {
    const { slotId } = await adoptedSlot({ onPermanentFailure: 'wait' });
    await refreshed(slotId);
    // The account's session is revoked at the provider: the backup's refresh token is dead too.
    expect(server.revoke((await readCredential(slotId)).claudeAiOauth.refreshToken)).toBe(true);
    await rm(join(slotsDir, slotId), { recursive: true, force: true });
    const before = server.requests.length;
    const status = await refreshed(slotId);
    expect(status.phase).toBe('needs-relogin');
    expect(status.lastOutcome?.kind).toBe('refresh-failed');
    expect(status.lastOutcome?.message).toMatch(/restored backup generation \d+ .*, but it did not prove good: refresh failed permanently/);
    // One restore, one proof: the dead token was presented once.
    expect(server.requests.slice(before).filter((r) => r.examined)).toHaveLength(1);
  });

  it('stores ciphertext only: no token, in any encoding, is in the table', { timeout: 120_000 }, async () => {
    const { slotId } = await adoptedSlot();
    await refreshed(slotId);
    const { claudeAiOauth } = await readCredential(slotId);
    const planted = [claudeAiOauth.accessToken, claudeAiOauth.refreshToken];
    const forms = (secret: string): string[] => [secret, Buffer.from(secret).toString('hex'), Buffer.from(secret).toString('base64')];
    const dump = (table: string): string => pg.psql(`COPY (SELECT * FROM ${table}) TO STDOUT`).join('\n') + pg.psql(`COPY (SELECT encode(t::text::bytea, 'escape') FROM ${table} t) TO STDOUT`).join('\n');
    // The search finds a token where one is: a control table with the same column type.
    pg.psql(`CREATE TABLE IF NOT EXISTS control_plain (slot_id text, ciphertext bytea)`);
    pg.psql(`INSERT INTO control_plain VALUES ('${slotId}', convert_to('${claudeAiOauth.refreshToken}', 'UTF8'))`);
    expect(forms(claudeAiOauth.refreshToken).some((form) => dump('control_plain').includes(form))).toBe(true);

    const table = dump(BACKUP_TABLE);
    expect(table).toContain(slotId);
    for (const secret of planted) for (const form of forms(secret)) expect(table).not.toContain(form);
    // And what is there opens with the host's key, bound to this slot.
    const latest = await store.latest('default', slotId);
    expect(latest?.keyId).toBe('k1');
  });

  it('keeps refreshing while the backup store is down, says so in the status, and backs up again once it is back', { timeout: 180_000 }, async () => {
    const { slotId } = await adoptedSlot();
    await refreshed(slotId);
    const before = generations(slotId);
    pg.stopServer();
    const down = await refreshed(slotId);
    expect(down.phase).toBe('active');
    expect(down.lastOutcome?.kind).toBe('refresh-succeeded');
    expect(down.backup?.ok).toBe(false);
    expect(down.backup?.message).toMatch(/the backup to PostgreSQL at 127\.0\.0\.1:\d+\/slots is failing \(.+\); the credential on the host is fine, the next refresh tries again/);
    pg.startServer();
    const back = await refreshed(slotId);
    expect(back.backup).toMatchObject({ ok: true, generation: Math.max(...before) + 1 });
  });

  it('refuses a move to the host the slot is on, and a move to a host without a backup store', { timeout: 180_000 }, async () => {
    const { slotId } = await adoptedSlot();
    await expect(slots.move(slotId, workers.hostName)).rejects.toThrow(MoveRefusedError);
    await expect(slots.move(slotId, workers.hostName)).rejects.toThrow(`slot ${slotId} is already on host ${workers.hostName}`);
    await expect(slots.move(slotId, 'bad host')).rejects.toThrow(/toHost must be 1-63 letters/);
    const bare = await startWorkers({ slotsDir: await mkdtemp(join(tmpdir(), 'slots-bare-')), sharedTaskQueue: workers.sharedTaskQueue, roles: ['host'] });
    try {
      const state = await slots.move(slotId, bare.hostName, { timeoutMs: 120_000 });
      expect(state).toMatchObject({ state: 'refused', from: workers.hostName, to: bare.hostName });
      expect(state.message).toContain(`host ${bare.hostName} has no backup store configured (set SLOT_BACKUP_URL and SLOT_BACKUP_KEYS there)`);
      const status = await slots.status(slotId);
      expect(status.host).toBe(workers.hostName);
      expect(status.phase).toBe('active');
      // The slot still lives where it was.
      await refreshed(slotId);
    } finally {
      await bare.stop();
    }
  });
});
