// The credential backup attacked as someone with namespace access would (issue 23): a
// backup restored into an attacker's configuration, into another team's namespace on a
// shared database, from a row whose stored facts were altered, or into a slot started
// again after it was retired. Real PostgreSQL, real workflows, real HTTP servers on 127.0.0.1.
import type { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureSlotHome, writeSecretFileAtomic } from '../../activities/credential-store';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { configHash, createBackupActivities, sealBackup } from '../../activities/credential-backup';
import { BACKUP_TABLE, LEGACY_BACKUP_TABLE, PostgresBackupStore } from '../../activities/postgres-backup-store';
import { SlotClient } from '../../client/slot-client';
import type { SlotStatus } from '../../common/messages';
import { slotWorkflowId } from '../../common/slot';
import { registerSearchAttributes } from '../../workers/worker';
import { devServerClient, startWorkers, uniqueName, type RunningWorkers } from '../harness';
import { startTokenServer, type TokenServer } from '../peers/token-server';
import { postgresOrSkip, startPostgres, type Postgres } from '../postgres';

const CLAUDE_CLIENT_ID = '9d1c250a-e61b-44d9-88ed-5944d1962f5e';
const CLAUDE_FILE = '.claude/.credentials.json';
const OIDC_FILE = '.oidc/tokens.json';
const { skip, missing } = postgresOrSkip('backup attacks');

const exists = (path: string): Promise<boolean> => access(path).then(() => true, () => false);

/** An OAuth server that records every request and answers a refresh with fresh tokens (as an attacker's would). */
interface RecordingServer {
  readonly url: string;
  readonly requests: Array<{ method: string; path: string; body: string }>;
  close(): Promise<void>;
}

async function startRecordingServer(): Promise<RecordingServer> {
  const requests: RecordingServer['requests'] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', path: req.url ?? '', body });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ access_token: `at-${randomBytes(8).toString('hex')}`, refresh_token: `rt-${randomBytes(8).toString('hex')}`, token_type: 'Bearer', expires_in: 3600 }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** Registers a team's namespace with the project's search attributes; waits until slots can be started and listed there. */
async function registerTeamNamespace(connection: Connection, namespace: string): Promise<void> {
  await connection.workflowService.registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs('1 day') });
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await registerSearchAttributes(connection, namespace);
      await connection.workflowService.listWorkflowExecutions({ namespace, query: `WorkflowType = 'slotWorkflow'` });
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`namespace ${namespace} did not become usable: ${(err as Error).message}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

describe.skipIf(skip)('credential backups under attack', () => {
  let pg: Postgres;
  let store: PostgresBackupStore;
  let server: TokenServer;
  let slotsDir: string;
  let workers: RunningWorkers;
  let slots: SlotClient;
  const closers: Array<() => Promise<void>> = [];
  // The host's backup key (SLOT_BACKUP_KEYS): one per host or team, never a payload key.
  const keys = [{ id: 'b1', key: randomBytes(32) }];
  const provisioned: Array<{ slots: SlotClient; slotId: string }> = [];

  beforeAll(async () => {
    if (missing) throw new Error(`${missing} is missing and CI is set`);
    pg = await startPostgres();
    store = new PostgresBackupStore({ url: pg.url, connectTimeoutMs: 2000, queryTimeoutMs: 5000 });
    server = await startTokenServer({ defaultClientId: CLAUDE_CLIENT_ID, accessTtlSec: 8 * 3600 });
    slotsDir = await mkdtemp(join(tmpdir(), 'slots-backup-attacks-'));
    workers = await startWorkers({
      slotsDir,
      env: { ...process.env, CLAUDE_TOKEN_URL: server.claudeTokenUrl, SLOTS_ALLOWED_ENDPOINT_HOSTS: '127.0.0.1', CLAUDE_BIN: '/nonexistent/claude' },
      backup: { store, keys },
    });
    const { client, connection } = await devServerClient();
    slots = new SlotClient(client, workers.sharedTaskQueue);
    closers.push(() => connection.close());
  }, 180_000);

  afterAll(async () => {
    for (const { slots: owner, slotId } of provisioned) await owner.client.workflow.getHandle(slotWorkflowId(slotId)).terminate('test over').catch(() => undefined);
    await workers?.stop();
    for (const close of closers.reverse()) await close().catch(() => undefined);
    await store?.close();
    await server?.close();
    await pg?.stop();
    if (slotsDir) await rm(slotsDir, { recursive: true, force: true });
  });

  afterEach(() => {
    try {
      pg.psql('SELECT 1');
    } catch {
      pg.startServer();
    }
  });

  async function until(client: SlotClient, slotId: string, check: (s: SlotStatus) => boolean, what: string, timeoutMs = 60_000): Promise<SlotStatus> {
    const { status, reached } = await client.waitFor(slotId, check, { timeoutMs, pollMs: 200 });
    if (!reached) throw new Error(`slot ${slotId}: wanted ${what}, have ${JSON.stringify(status)}`);
    return status;
  }

  async function refreshed(client: SlotClient, slotId: string): Promise<SlotStatus> {
    const before = (await client.status(slotId)).refreshes;
    await client.refreshNow(slotId);
    return until(client, slotId, (s) => s.refreshes > before && (s.phase === 'active' || s.phase === 'needs-relogin'), 'a refresh');
  }

  /** A Claude slot that adopted a credential the token server issued, backed up once; `dir` is its host's SLOTS_DIR. */
  async function claudeSlot(client: SlotClient, host: string, dir: string, slotId = uniqueName('atk')): Promise<{ slotId: string; grantId: string }> {
    const tokens = server.issue();
    await writeSecretFileAtomic(
      await ensureSlotHome(dir, slotId),
      CLAUDE_FILE,
      JSON.stringify({ claudeAiOauth: { accessToken: tokens.accessToken, refreshToken: tokens.refreshToken, expiresAt: Date.now() + 8 * 3600_000, scopes: ['user:inference'], subscriptionType: 'max' } }),
    );
    provisioned.push({ slots: client, slotId });
    await client.provision({ slotId, provider: 'claude', host, adoptExisting: true, options: { hostWaitMs: 20_000, onPermanentFailure: 'wait' } });
    const adopted = await until(client, slotId, (s) => s.phase === 'active', 'active after adoption');
    expect(adopted.backup).toMatchObject({ ok: true });
    return { slotId, grantId: tokens.grantId };
  }

  /** Refresh tokens the token server was shown since request `from`. */
  const presentedSince = (from: number): string[] => server.requests.slice(from).flatMap((r) => (r.refreshToken !== undefined ? [r.refreshToken] : []));

  /** The workflow is gone (terminated by whoever may), and its id is free for anyone with namespace access. */
  const terminate = (client: SlotClient, slotId: string): Promise<void> => client.client.workflow.getHandle(slotWorkflowId(slotId)).terminate('taken over').then(() => undefined);

  it("is never restored into an attacker's configuration: their token endpoint receives nothing", { timeout: 180_000 }, async () => {
    const [victimIdp, attackerIdp] = [await startRecordingServer(), await startRecordingServer()];
    closers.push(victimIdp.close, attackerIdp.close);
    const endpoints = (base: string) => ({ device_authorization_endpoint: `${base}/device`, token_endpoint: `${base}/token` });
    const slotId = uniqueName('oidc');
    const refreshToken = `victim-refresh-${randomBytes(12).toString('hex')}`;
    await writeSecretFileAtomic(
      await ensureSlotHome(slotsDir, slotId),
      OIDC_FILE,
      JSON.stringify({ access_token: `victim-access-${randomBytes(8).toString('hex')}`, refresh_token: refreshToken, token_type: 'Bearer', expires_at: Math.floor(Date.now() / 1000) + 8 * 3600 }),
    );
    provisioned.push({ slots, slotId });
    const victimConfig = { endpoints: endpoints(victimIdp.url), clientId: 'victim-client' };
    await slots.provision({ slotId, provider: 'oidc-device', providerConfig: victimConfig, host: workers.hostName, adoptExisting: true, options: { hostWaitMs: 20_000, onPermanentFailure: 'wait' } });
    const adopted = await until(slots, slotId, (s) => s.phase === 'active', 'active after adoption');
    expect(adopted.backup).toMatchObject({ ok: true, generation: 1 });

    // The attack (issue 23, finding 1): the slot's workflow is terminated, its home has no record
    // (a v1 home, or one retire --remove-files took), and slot:<id> is started again with the
    // attacker's token endpoint and adoptExisting: the refresh finds no file and asks for the backup.
    await terminate(slots, slotId);
    await rm(join(slotsDir, slotId), { recursive: true, force: true });
    await slots.provision({
      slotId,
      provider: 'oidc-device',
      providerConfig: { endpoints: endpoints(attackerIdp.url), clientId: 'victim-client' },
      host: workers.hostName,
      adoptExisting: true,
      options: { hostWaitMs: 20_000, onPermanentFailure: 'wait' },
    });
    const status = await until(slots, slotId, (s) => s.phase === 'needs-relogin' || s.phase === 'active', 'the adoption to end');
    // Nothing reached the attacker (nor, on the victim's behalf, anyone): the refresh token stayed in the backup.
    expect(attackerIdp.requests.filter((r) => r.body.includes(refreshToken))).toEqual([]);
    expect(attackerIdp.requests).toEqual([]);
    expect(victimIdp.requests).toEqual([]);
    expect(status.phase).toBe('needs-relogin');
    expect(status.lastOutcome?.message).toMatch(/no backup was restored: backup generation 1 .* was made for another configuration of slot/);
    expect(await exists(join(slotsDir, slotId, OIDC_FILE))).toBe(false);
    // The victim's backup is intact: the victim's own configuration still restores it.
    const [row] = pg.psql(`SELECT count(*) FROM ${BACKUP_TABLE} WHERE slot_id = '${slotId}'`);
    expect(Number(row)).toBe(1);
  });

  it('is never restored on a host it was not made on, unless that host allows it: neither by starting slot:<id> there nor by a move', { timeout: 240_000 }, async () => {
    // A second host of the team: the same database and backup key, its own slots, no SLOT_BACKUP_RESTORE_FROM_HOSTS.
    const dirB = await mkdtemp(join(tmpdir(), 'slots-backup-host-b-'));
    closers.push(() => rm(dirB, { recursive: true, force: true }));
    const storeB = new PostgresBackupStore({ url: pg.url, connectTimeoutMs: 2000, queryTimeoutMs: 5000 });
    closers.push(() => storeB.close());
    const env = { ...process.env, CLAUDE_TOKEN_URL: server.claudeTokenUrl, SLOTS_ALLOWED_ENDPOINT_HOSTS: '127.0.0.1', CLAUDE_BIN: '/nonexistent/claude' };
    const hostB = await startWorkers({ slotsDir: dirB, sharedTaskQueue: workers.sharedTaskQueue, roles: ['host'], env, backup: { store: storeB, keys } });
    closers.push(() => hostB.stop());

    // A move there is refused: host B does not restore host A's backups.
    const moved = await claudeSlot(slots, workers.hostName, slotsDir);
    const state = await slots.move(moved.slotId, hostB.hostName, { timeoutMs: 120_000 });
    expect(state).toMatchObject({ state: 'refused', from: workers.hostName, to: hostB.hostName });
    expect(state.message).toContain(`was made on host ${workers.hostName}, and host ${hostB.hostName} restores only its own backups and those of the hosts in its SLOT_BACKUP_RESTORE_FROM_HOSTS`);
    expect(await exists(join(dirB, moved.slotId, CLAUDE_FILE))).toBe(false);
    expect((await refreshed(slots, moved.slotId)).phase).toBe('active');

    // The attack: slot:<id> terminated and started again on host B (no record there), adoptExisting.
    const { slotId, grantId } = await claudeSlot(slots, workers.hostName, slotsDir);
    const newest = server.grant(grantId)?.refreshToken as string;
    await terminate(slots, slotId);
    const before = server.requests.length;
    await slots.provision({ slotId, provider: 'claude', host: hostB.hostName, adoptExisting: true, options: { hostWaitMs: 20_000, onPermanentFailure: 'wait' } });
    const status = await until(slots, slotId, (s) => s.phase === 'needs-relogin' || s.phase === 'active', 'the adoption on host B to end');
    expect(presentedSince(before)).not.toContain(newest);
    expect(status.phase).toBe('needs-relogin');
    expect(status.lastOutcome?.message).toContain(`was made on host ${workers.hostName}, and host ${hostB.hostName} restores only its own backups`);
    expect(await exists(join(dirB, slotId, CLAUDE_FILE))).toBe(false);
    // The slot's credential is still only on host A, alive.
    expect(server.grant(grantId)?.alive).toBe(true);
    expect(await exists(join(slotsDir, slotId, CLAUDE_FILE))).toBe(true);

    // A host whose operator allows host A's backups (SLOT_BACKUP_RESTORE_FROM_HOSTS) takes the move.
    const dirC = await mkdtemp(join(tmpdir(), 'slots-backup-host-c-'));
    closers.push(() => rm(dirC, { recursive: true, force: true }));
    const hostC = await startWorkers({ slotsDir: dirC, sharedTaskQueue: workers.sharedTaskQueue, roles: ['host'], env, backup: { store: storeB, keys, restoreFromHosts: [workers.hostName] } });
    closers.push(() => hostC.stop());
    const accepted = await slots.move(moved.slotId, hostC.hostName, { timeoutMs: 120_000 });
    expect(accepted).toMatchObject({ state: 'moved', from: workers.hostName, to: hostC.hostName });
    expect(await exists(join(dirC, moved.slotId, CLAUDE_FILE))).toBe(true);
    expect(server.grant(moved.grantId)?.alive).toBe(true);
  });

  it("two teams' namespaces on one database neither shadow nor prune each other's backups", { timeout: 240_000 }, async () => {
    const teamB = uniqueName('team-b');
    const { client: defaultClient, connection } = await devServerClient();
    closers.push(() => connection.close());
    await registerTeamNamespace(connection, teamB);
    const dirB = await mkdtemp(join(tmpdir(), 'slots-backup-team-b-'));
    closers.push(() => rm(dirB, { recursive: true, force: true }));
    // Team B's host: the same database, and (the worst case) the same backup key, restoring any host's backups.
    const storeB = new PostgresBackupStore({ url: pg.url, connectTimeoutMs: 2000, queryTimeoutMs: 5000 });
    closers.push(() => storeB.close());
    const workersB = await startWorkers({
      namespace: teamB,
      slotsDir: dirB,
      env: { ...process.env, CLAUDE_TOKEN_URL: server.claudeTokenUrl, SLOTS_ALLOWED_ENDPOINT_HOSTS: '127.0.0.1', CLAUDE_BIN: '/nonexistent/claude' },
      backup: { store: storeB, keys, restoreFromHosts: '*' },
    });
    closers.push(() => workersB.stop());
    const { client: clientB, connection: connectionB } = await devServerClient(undefined, teamB);
    closers.push(() => connectionB.close());
    const slotsB = new SlotClient(clientB, workersB.sharedTaskQueue);
    expect(defaultClient.options.namespace).toBe('default');

    // Team A's slot X, backed up twice.
    const { slotId, grantId } = await claudeSlot(slots, workers.hostName, slotsDir);
    await refreshed(slots, slotId);
    const aRows = (): number => Number(pg.psql(`SELECT count(*) FROM ${BACKUP_TABLE} WHERE slot_id = '${slotId}' AND host = '${workers.hostName}'`)[0]);
    expect(aRows()).toBe(2);
    const aToken = server.grant(grantId)?.refreshToken as string;

    // Team B starts its own slot X, empty, with adoptExisting: nothing of team A's is restored to it.
    const before = server.requests.length;
    provisioned.push({ slots: slotsB, slotId });
    await slotsB.provision({ slotId, provider: 'claude', host: workersB.hostName, adoptExisting: true, options: { hostWaitMs: 20_000, onPermanentFailure: 'wait' } });
    const b = await until(slotsB, slotId, (s) => s.phase === 'needs-relogin' || s.phase === 'active', 'team B adoption to end');
    expect(presentedSince(before)).not.toContain(aToken);
    expect(b.phase).toBe('needs-relogin');
    expect(b.lastOutcome?.message).toContain(`holds no backup of slot ${slotId} in namespace ${teamB}`);
    expect(await exists(join(dirB, slotId, CLAUDE_FILE))).toBe(false);

    // Team B gets its own credential for X and writes more versions than a slot keeps.
    const tokensB = server.issue();
    await writeSecretFileAtomic(
      await ensureSlotHome(dirB, slotId),
      CLAUDE_FILE,
      JSON.stringify({ claudeAiOauth: { accessToken: tokensB.accessToken, refreshToken: tokensB.refreshToken, expiresAt: Date.now() + 8 * 3600_000, scopes: ['user:inference'], subscriptionType: 'max' } }),
    );
    for (let i = 0; i < 11; i += 1) expect((await refreshed(slotsB, slotId)).backup).toMatchObject({ ok: true });
    // Team A's rows are all there.
    expect(aRows()).toBe(2);

    // Team A loses the slot's home: it comes back from team A's own newest backup, not team B's.
    await rm(join(slotsDir, slotId), { recursive: true, force: true });
    const beforeRestore = server.requests.length;
    const restored = await refreshed(slots, slotId);
    expect(restored.phase).toBe('active');
    expect(restored.lastOutcome?.message).toMatch(/restored backup generation 2 taken .* on host /);
    expect(presentedSince(beforeRestore)).toEqual([aToken]);
    expect(server.grant(grantId)?.alive).toBe(true);
    expect(server.grant(tokensB.grantId)?.alive).toBe(true);
    expect(server.presentedTwice()).toEqual([]);
  });

  it('detects an altered expires_at column: the row is not restored', { timeout: 180_000 }, async () => {
    const { slotId, grantId } = await claudeSlot(slots, workers.hostName, slotsDir);
    await refreshed(slots, slotId);
    // Someone with write access to the table pushes the newest row's expiry a year ahead (its last refresh stays).
    pg.psql(`UPDATE ${BACKUP_TABLE} SET expires_at = expires_at + interval '365 days' WHERE slot_id = '${slotId}' AND generation = (SELECT max(generation) FROM ${BACKUP_TABLE} WHERE slot_id = '${slotId}')`);
    await rm(join(slotsDir, slotId), { recursive: true, force: true });
    const before = server.requests.length;
    const status = await refreshed(slots, slotId);
    expect(status.phase).toBe('needs-relogin');
    expect(status.lastOutcome?.message).toMatch(/backup generation 2 .* cannot be opened: it failed authentication with backup key "b1": a row altered in the store/);
    expect(presentedSince(before)).toEqual([]);
    expect(await exists(join(slotsDir, slotId, CLAUDE_FILE))).toBe(false);
    expect(server.grant(grantId)?.alive).toBe(true);
  });

  it('a retired slot started again with adoptExisting restores nothing; its backups are kept, tombstoned', { timeout: 180_000 }, async () => {
    const { slotId, grantId } = await claudeSlot(slots, workers.hostName, slotsDir);
    await refreshed(slots, slotId);
    const newest = server.grant(grantId)?.refreshToken as string;
    await slots.retire(slotId, { removeFiles: true });
    const retired = await until(slots, slotId, (s) => s.phase === 'retired', 'retired');
    await slots.client.workflow.getHandle(slotWorkflowId(slotId)).result();

    // Finding 3: slot:<id> again, adoptExisting, on the same host (its home is gone).
    const before = server.requests.length;
    await slots.provision({ slotId, provider: 'claude', host: workers.hostName, adoptExisting: true, options: { hostWaitMs: 20_000, onPermanentFailure: 'wait' } });
    const again = await until(slots, slotId, (s) => s.phase === 'needs-relogin' || s.phase === 'active', 'the adoption to end');
    expect(presentedSince(before)).not.toContain(newest);
    expect(again.phase).toBe('needs-relogin');
    // Two defences stand in the way; the host's own tombstone (the slot was retired on this host) is met first.
    expect(again.lastOutcome?.message).toMatch(new RegExp(`slot ${slotId} from workflow "slot:${slotId}": the slot was retired on this host|slot ${slotId} was retired on host ${workers.hostName} at .*: its backups are tombstoned`));
    // Not a login's business: the host refuses the slot itself.
    expect(again.lastOutcome?.message).not.toContain('slotctl relogin');
    expect(presentedSince(before)).not.toContain(newest);
    expect(await exists(join(slotsDir, slotId, CLAUDE_FILE))).toBe(false);
    // The retire said so.
    expect(retired.lastOutcome?.message).toMatch(/the backups were tombstoned \(never restored by a workflow; deleted after \d{4}-/);
    // Kept for the retention, under the tombstone.
    expect(pg.psql(`SELECT generation || ':' || kind FROM ${BACKUP_TABLE} WHERE slot_id = '${slotId}' ORDER BY generation`)).toEqual(['1:credential', '2:credential', '3:tombstone']);
  });

  it('a retire whose host cannot tombstone the backups says so, and the retire still ends', { timeout: 180_000 }, async () => {
    const { slotId } = await claudeSlot(slots, workers.hostName, slotsDir);
    pg.stopServer();
    try {
      await slots.retire(slotId);
      const retired = await until(slots, slotId, (s) => s.phase === 'retired', 'retired');
      expect(retired.lastOutcome?.message).toMatch(
        new RegExp(`the backups could NOT be tombstoned on host ${workers.hostName} \\(tombstoning the backups on PostgreSQL at 127\\.0\\.0\\.1:\\d+/slots failed: .+\\): they stay restorable until that host's operator deletes them`),
      );
    } finally {
      pg.startServer();
    }
  });

  it('never restores from, writes to or prunes the first backup table, and says what it holds for a slot', { timeout: 180_000 }, async () => {
    const { slotId } = await claudeSlot(slots, workers.hostName, slotsDir);
    // What a deployment of the first backup version has: a table without namespace, rows sealed with the payload key.
    pg.psql(`CREATE TABLE IF NOT EXISTS ${LEGACY_BACKUP_TABLE} (slot_id text NOT NULL, generation bigint NOT NULL, provider text NOT NULL, key_id text NOT NULL, ciphertext bytea NOT NULL,
      created_at timestamptz NOT NULL, host text NOT NULL, last_refresh timestamptz, expires_at timestamptz, PRIMARY KEY (slot_id, generation))`);
    pg.psql(`INSERT INTO ${LEGACY_BACKUP_TABLE} VALUES ('${slotId}', 41, 'claude', 'k1', '\\x00112233445566778899aabbccddeeff00112233445566778899', now(), 'old-host', now(), now() + interval '1 day')`);
    pg.psql(`DELETE FROM ${BACKUP_TABLE} WHERE slot_id = '${slotId}'`);
    await rm(join(slotsDir, slotId), { recursive: true, force: true });
    const status = await refreshed(slots, slotId);
    expect(status.phase).toBe('needs-relogin');
    expect(status.lastOutcome?.message).toContain(`holds no backup of slot ${slotId} in namespace default; its older table holds 1 backup of slot ${slotId} from before backups were sealed with the host's backup key`);
    // The old row is exactly as it was.
    expect(pg.psql(`SELECT generation || ':' || host FROM ${LEGACY_BACKUP_TABLE} WHERE slot_id = '${slotId}'`)).toEqual(['41:old-host']);
  });

  it("restores into another configuration, or another host's backup, only where the host's operator allows it", async () => {
    const hostDir = await mkdtemp(join(tmpdir(), 'slots-backup-policy-'));
    closers.push(() => rm(hostDir, { recursive: true, force: true }));
    const config = (base: string) => ({ endpoints: { device_authorization_endpoint: `${base}/device`, token_endpoint: `${base}/token` }, clientId: 'c' });
    const made = config('http://127.0.0.1:1');
    const changed = config('http://127.0.0.1:2');
    const tokens = JSON.stringify({ access_token: 'a', refresh_token: `r-${randomBytes(6).toString('hex')}`, expires_at: Math.floor(Date.now() / 1000) + 3600 });
    /** A backup of `slotId` made on `host` for `made`, and a restore asked with `asked` on host h1 allowing `policy`. */
    const restore = async (slotId: string, host: string, asked: unknown, policy: { restoreFromHosts?: string[] | '*'; restoreReconfigured?: string[] }) => {
      await store.put(sealBackup(keys, { namespace: 'default', slotId, kind: 'credential', provider: 'oidc-device', configHash: configHash('oidc-device', made), host, createdAt: Date.now() }, tokens));
      const { restoreCredential } = createBackupActivities({ slotsDir: hostDir, env: { SLOTS_OIDC_SERVERS: 'http://127.0.0.1:*' }, backup: { store, keys, host: 'h1', namespace: 'default', ...policy } });
      const env = new MockActivityEnvironment({ workflowExecution: { workflowId: slotWorkflowId(slotId), runId: 'r' }, workflowType: 'slotWorkflow' }, { logger: new DefaultLogger('ERROR') });
      return env.run(restoreCredential, { slotId, provider: 'oidc-device', providerConfig: asked, now: Date.now(), reason: 'lost' as const });
    };
    expect(await restore(uniqueName('p'), 'h1', changed, {})).toMatchObject({ kind: 'refused', reason: expect.stringContaining('was made for another configuration') });
    const allowed = uniqueName('p');
    expect(await restore(allowed, 'h1', changed, { restoreReconfigured: [allowed] })).toMatchObject({ kind: 'restored', fromHost: 'h1' });
    expect(await restore(uniqueName('p'), 'h0', made, { restoreFromHosts: ['h2'] })).toMatchObject({ kind: 'refused', reason: expect.stringContaining('was made on host h0') });
    expect(await restore(uniqueName('p'), 'h0', made, { restoreFromHosts: ['h0'] })).toMatchObject({ kind: 'restored', fromHost: 'h0' });
    expect(await restore(uniqueName('p'), 'h0', made, { restoreFromHosts: '*' })).toMatchObject({ kind: 'restored', fromHost: 'h0' });
  });

  it("prunes a retired slot's backups after the retention, and only that namespace's", async () => {
    const slotId = uniqueName('pr');
    const row = (namespace: string, kind: 'credential' | 'tombstone', createdAt: number, id = slotId) =>
      sealBackup(keys, { namespace, slotId: id, kind, provider: 'claude', configHash: configHash('claude', undefined), host: 'h', createdAt }, kind === 'credential' ? '{}' : '');
    const day = 86_400_000;
    const now = Date.now();
    const week = new PostgresBackupStore({ url: pg.url, retiredKeepMs: 7 * day });
    try {
      for (const namespace of ['ns-a', 'ns-b']) {
        expect(await week.put(row(namespace, 'credential', now - 10 * day))).toMatchObject({ kind: 'stored', generation: 1 });
        expect(await week.put(row(namespace, 'tombstone', now - 8 * day))).toMatchObject({ kind: 'stored', generation: 2 });
        // Nothing is added over a tombstone, and a second tombstone answers the first.
        expect(await week.put(row(namespace, 'credential', now - 8 * day))).toMatchObject({ kind: 'retired', tombstone: { generation: 2 } });
      }
      expect(pg.psql(`SELECT count(*) FROM ${BACKUP_TABLE} WHERE slot_id = '${slotId}'`)).toEqual(['4']);
      // A write in namespace ns-a, now: ns-a's retired slot is past its week and goes; ns-b's stays for ns-b's hosts to prune.
      await week.put(row('ns-a', 'credential', now, `${slotId}-other`));
      expect(pg.psql(`SELECT namespace || ':' || generation FROM ${BACKUP_TABLE} WHERE slot_id = '${slotId}' ORDER BY namespace, generation`)).toEqual(['ns-b:1', 'ns-b:2']);
    } finally {
      await week.close();
    }
  });
});
