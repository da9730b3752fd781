// Upgrading from v1 slot workflows on the real dev server: genuine v1 slots (the
// frozen bundle in test/fixtures/legacy-v1, logins and refreshes as children) are
// moved to today's workflow by `slotctl migrate`, keeping each credential, with no login.
import type { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, Worker, type WorkflowBundle } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ensureSlotHome, writeSecretFileAtomic } from '../../activities/credential-store';
import { readTombstone, TRASH_DIR, type Tombstone } from '../../activities/slot-trash';
import { MIGRATION_REASON, migrateSlots, V2_MEMO, type SlotMigration } from '../../cli/migrate';
import { SlotClient } from '../../client/slot-client';
import { retireSignal, type SlotStatus } from '../../common/messages';
import { slotWorkflowId } from '../../common/slot';
import { PROJECT_ROOT } from '../../workers/temporal-binaries';
import { createSlotWorkers, type SlotWorkers } from '../../workers/worker';
import { devServerClient, startWorkers, uniqueName, workflowBundle, type RunningWorkers } from '../harness';
import { startTokenServer, type TokenServer } from '../peers/token-server';

const CLAUDE_CLIENT_ID = '9d1c250a-e61b-44d9-88ed-5944d1962f5e';
const LEGACY_WORKFLOWS = fileURLToPath(new URL('../fixtures/legacy-v1/workflows/index.ts', import.meta.url));
const CREDENTIAL = join('.claude', '.credentials.json');

interface ClaudeFile {
  claudeAiOauth: { accessToken: string; refreshToken: string; expiresAt: number; subscriptionType?: string };
}

/** A slot as its operator knew it before the upgrade. */
interface Before {
  readonly slotId: string;
  readonly runId: string;
  readonly status: SlotStatus;
  readonly refreshToken: string | undefined;
}

let server: TokenServer;
let slotsDir: string;
let hostName: string;
let sharedTaskQueue: string;
let connection: Connection;
let client: Client;
let slots: SlotClient;
let workerEnv: NodeJS.ProcessEnv;
let current: RunningWorkers | undefined;

beforeAll(async () => {
  server = await startTokenServer({ defaultClientId: CLAUDE_CLIENT_ID, accessTtlSec: 8 * 3600 });
  slotsDir = await mkdtemp(join(tmpdir(), 'slots-migrate-'));
  hostName = uniqueName('host');
  sharedTaskQueue = uniqueName('shared');
  ({ client, connection } = await devServerClient());
  slots = new SlotClient(client, sharedTaskQueue);
  // No CLI may run: a login would need an operator, and nothing here may start one.
  workerEnv = { ...process.env, CLAUDE_TOKEN_URL: server.claudeTokenUrl, CLAUDE_BIN: '/nonexistent/claude', SLOTS_ALLOWED_ENDPOINT_HOSTS: '127.0.0.1' };
});

afterAll(async () => {
  // Retired while the workers still run, so nothing of this file keeps timers on the shared server.
  await Promise.all(provisioned.map((slotId) => retired(slotId)));
  await current?.stop();
  await connection?.close();
  await server?.close();
  if (slotsDir) await rm(slotsDir, { recursive: true, force: true });
});

const provisioned: string[] = [];

/** Retires the slot and waits (briefly) for its run to end. */
async function retired(slotId: string): Promise<void> {
  const handle = client.workflow.getHandle(slotWorkflowId(slotId));
  await handle.signal(retireSignal).catch(() => undefined);
  await Promise.race([handle.result().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 10_000))]);
}
/** The token server's grant behind each seeded slot. */
const grants = new Map<string, string>();

async function seedClaude(slotId: string): Promise<void> {
  const tokens = server.issue();
  grants.set(slotId, tokens.grantId);
  await writeSecretFileAtomic(
    await ensureSlotHome(slotsDir, slotId),
    CREDENTIAL,
    JSON.stringify({
      claudeAiOauth: {
        accessToken: tokens.accessToken,
        refreshToken: tokens.refreshToken,
        expiresAt: Date.now() + tokens.expiresIn * 1000,
        scopes: ['user:inference'],
        subscriptionType: 'max',
      },
    }),
  );
}

const readClaude = async (slotId: string): Promise<ClaudeFile> => JSON.parse(await readFile(join(slotsDir, slotId, CREDENTIAL), 'utf8')) as ClaudeFile;

async function until(slotId: string, check: (s: SlotStatus) => boolean, what: string, timeoutMs = 30_000): Promise<SlotStatus> {
  const { status, reached } = await slots.waitFor(slotId, check, { timeoutMs, pollMs: 100 });
  if (!reached) throw new Error(`slot ${slotId}: wanted ${what}, have ${JSON.stringify(status)}`);
  return status;
}

let legacy: Promise<WorkflowBundle> | undefined;
/** v1 workers: the frozen v1 workflows on `queue`, today's activities on the host's queue (as after a host upgrade). */
async function startLegacyWorkers(queue: string, host = hostName): Promise<{ stop(): Promise<void> }> {
  legacy ??= bundleWorkflowCode({
    workflowsPath: LEGACY_WORKFLOWS,
    logger: { log: () => undefined, trace: () => undefined, debug: () => undefined, info: () => undefined, warn: console.warn, error: console.error },
  });
  const native = await NativeConnection.connect({ address: inject('temporalAddress') });
  let workers: SlotWorkers;
  try {
    workers = await createSlotWorkers({ connection: native, namespace: 'default', slotsDir, host, sharedTaskQueue: queue, workflowBundle: await legacy, env: workerEnv });
  } catch (err) {
    await native.close();
    throw err;
  }
  const running = workers.run();
  return {
    async stop() {
      workers.shutdown();
      await running;
      await native.close();
    },
  };
}

/** Runs slotctl as an operator would, in a real process. */
function slotctlProcess(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('npx', ['tsx', 'cli/slotctl.ts', ...args], {
      cwd: PROJECT_ROOT,
      env: { ...process.env, TEMPORAL_ADDRESS: inject('temporalAddress'), SLOTS_TASK_QUEUE: sharedTaskQueue, SLOT_HOST: hostName },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** Child workflows of the slot that are still running (v1 leaves none behind after a migration). */
async function runningChildren(slotId: string): Promise<string[]> {
  const ids: string[] = [];
  const query = `WorkflowType IN ('loginWorkflow', 'refreshWorkflow') AND ExecutionStatus = 'Running'`;
  for await (const wf of client.workflow.list({ query })) if (wf.workflowId.includes(`:${slotId}:`)) ids.push(wf.workflowId);
  return ids;
}

describe('migrating v1 slots to v2', () => {
  /** Provisioned and run on v1: `live` adopts a valid credential, `empty` has none (and waits for a relogin). */
  const live = uniqueName('mig-live');
  const cli = uniqueName('mig-cli');
  const empty = uniqueName('mig-empty');
  /** Provisioned for a login (which fails: no CLI on this host), then logged in by hand on the host. */
  const byHand = uniqueName('mig-byhand');
  const before = new Map<string, Before>();

  beforeAll(async () => {
    const v1 = await startLegacyWorkers(sharedTaskQueue);
    try {
      await seedClaude(live);
      await seedClaude(cli);
      for (const slotId of [live, cli, empty]) {
        provisioned.push(slotId);
        await slots.provision({ slotId, provider: 'claude', host: hostName, adoptExisting: true, options: { onPermanentFailure: 'wait' } });
      }
      await until(live, (s) => s.phase === 'active', 'active on v1');
      await until(cli, (s) => s.phase === 'active', 'active on v1');
      await until(empty, (s) => s.phase === 'needs-relogin', 'needs-relogin on v1');
      provisioned.push(byHand);
      await slots.provision({ slotId: byHand, provider: 'claude', host: hostName });
      await until(byHand, (s) => s.phase === 'needs-relogin' && s.logins === 1, 'a failed login on v1');
      await seedClaude(byHand);
      // A v1 refresh child rotates `live`'s token: the credential migrated is one v1 wrote.
      await slots.refreshNow(live);
      await until(live, (s) => s.phase === 'active' && s.lastOutcome?.message.startsWith('refreshed') === true, 'refreshed on v1');
      for (const slotId of [live, cli, empty, byHand]) {
        const description = await client.workflow.getHandle(slotWorkflowId(slotId)).describe();
        const refreshToken = await readClaude(slotId).then(
          (f) => f.claudeAiOauth.refreshToken,
          () => undefined,
        );
        before.set(slotId, { slotId, runId: description.runId, status: await slots.status(slotId), refreshToken });
      }
    } finally {
      // The upgrade: every v1 worker stops before the new ones start.
      await v1.stop();
    }
    current = await startWorkers({ slotsDir, env: workerEnv, hostName, sharedTaskQueue });
  });

  it('started genuine v1 slots: refreshes ran as child workflows, and no run carries the v2 marker', async () => {
    const history = await client.workflow.getHandle(slotWorkflowId(live), before.get(live)?.runId).fetchHistory();
    const children = (history.events ?? []).flatMap((e) => e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowId ?? []);
    expect(children).toEqual([`refresh:${live}:1`, `refresh:${live}:2`]);
    // Why migration exists: today's workflow cannot take such a run over.
    await expect(Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history)).rejects.toBeInstanceOf(DeterminismViolationError);
    for (const slotId of [live, cli, empty]) {
      const description = await client.workflow.getHandle(slotWorkflowId(slotId)).describe();
      expect(description.memo?.slotWorkflowVersion).toBeUndefined();
    }
    expect(before.get(live)?.status.logins).toBe(0);
    expect(before.get(empty)?.status.lastOutcome?.message).toMatch(/no Claude.* credential to refresh/);
    expect(server.grant(grants.get(live) ?? '')?.rotations).toBe(1);
    expect(server.grant(grants.get(cli) ?? '')?.rotations).toBe(0);
  });

  it('a dry run reports each v1 slot and changes nothing', async () => {
    const requests = server.requests.length;
    const files = await Promise.all([live, cli].map((s) => readFile(join(slotsDir, s, CREDENTIAL), 'utf8')));
    // Without names a dry run sees every v1 slot of the server; ours are among them.
    const all = await migrateSlots(client, { taskQueue: sharedTaskQueue, dryRun: true });
    const ours = all.filter((m) => [live, cli, empty].includes(m.slotId));
    expect(ours.map((m) => m.outcome)).toEqual(['planned', 'planned', 'planned']);
    const planned = ours.find((m) => m.slotId === live);
    expect(planned).toMatchObject({ outcome: 'planned', from: before.get(live)?.runId, fromPhase: 'active' });
    expect(ours.find((m) => m.slotId === empty)).toMatchObject({ fromPhase: 'needs-relogin', note: expect.stringContaining(`slotctl relogin ${empty}`) });

    for (const slotId of [live, cli, empty]) {
      const description = await client.workflow.getHandle(slotWorkflowId(slotId)).describe();
      expect(description.runId).toBe(before.get(slotId)?.runId);
      expect(description.status.name).toBe('RUNNING');
    }
    expect(await Promise.all([live, cli].map((s) => readFile(join(slotsDir, s, CREDENTIAL), 'utf8')))).toEqual(files);
    expect(server.requests.length).toBe(requests);
  });

  it('migrateSlots moves a v1 slot to v2: active, same account and expiry, same credential, no login', async () => {
    const was = before.get(live) as Before;
    const [result] = await migrateSlots(client, { taskQueue: sharedTaskQueue, slotIds: [live] });
    expect(result).toMatchObject({ outcome: 'migrated', slotId: live, from: was.runId, fromPhase: 'active', phase: 'active' });
    const to = (result as Extract<SlotMigration, { outcome: 'migrated' }>).to;
    expect(to).not.toBe(was.runId);
    expect((result as { note?: string }).note).toBeUndefined();
    await expectMigrated(was, to);

    // The credential is live under v2: a refresh rotates it once, from the token v1 wrote.
    await slots.refreshNow(live);
    const refreshed = await until(live, (s) => s.phase === 'active' && s.lastOutcome?.message.startsWith('refreshed') === true, 'refreshed on v2');
    const onDisk = await readClaude(live);
    expect(onDisk.claudeAiOauth.refreshToken).not.toBe(was.refreshToken);
    expect(onDisk.claudeAiOauth.refreshToken).toBe(server.grant(grants.get(live) ?? '')?.refreshToken);
    expect(server.grant(grants.get(live) ?? '')).toMatchObject({ alive: true, rotations: 2 });
    expect(refreshed.logins).toBe(0);
    expect(server.presentedTwice()).toEqual([]);

    // Migrating again is a no-op.
    expect(await migrateSlots(client, { taskQueue: sharedTaskQueue, slotIds: [live] })).toEqual([
      { outcome: 'skipped', slotId: live, note: 'already runs slot workflow v2' },
    ]);
  });

  it('a slot without a credential keeps its options and still needs a relogin, without a login started', async () => {
    const was = before.get(empty) as Before;
    const [result] = await migrateSlots(client, { taskQueue: sharedTaskQueue, slotIds: [empty] });
    expect(result).toMatchObject({ outcome: 'migrated', slotId: empty, from: was.runId, fromPhase: 'needs-relogin', phase: 'needs-relogin' });
    expect((result as { note?: string }).note).toContain(`slotctl relogin ${empty}`);
    const status = await slots.status(empty);
    // onPermanentFailure "wait" came along: nothing asks an operator for a login URL.
    expect(status).toMatchObject({ phase: 'needs-relogin', logins: 0 });
    expect(status.prompt).toBeUndefined();
    const old = await client.workflow.getHandle(slotWorkflowId(empty), was.runId).describe();
    expect(old.status.name).toBe('TERMINATED');
  });

  it('always adopts: a slot provisioned for a login takes up the credential an operator placed by hand, without a login', async () => {
    const was = before.get(byHand) as Before;
    expect(was.status.lastOutcome?.kind).toBe('login-failed');
    const [result] = await migrateSlots(client, { taskQueue: sharedTaskQueue, slotIds: [byHand] });
    expect(result).toMatchObject({ outcome: 'migrated', slotId: byHand, from: was.runId, fromPhase: 'needs-relogin', phase: 'active' });
    const status = await until(byHand, (s) => s.phase === 'active', 'active on v2');
    // A fresh run: the failed v1 login is history, and no new one was started.
    expect(status).toMatchObject({ logins: 0, account: 'max subscription' });
    expect(status.prompt).toBeUndefined();
    expect((await readClaude(byHand)).claudeAiOauth.refreshToken).toBe(was.refreshToken);
    expect(server.grant(grants.get(byHand) ?? '')).toMatchObject({ alive: true, rotations: 0 });
  });

  it('slotctl migrate --json (a real process) prints one JSON document and exits 0; a failed slot exits 1', async () => {
    const was = before.get(cli) as Before;
    const run = await slotctlProcess(['migrate', '--json', cli]);
    expect(run.code, run.stderr).toBe(0);
    const doc = JSON.parse(run.stdout) as { ok: boolean; dryRun: boolean; failed: number; slots: SlotMigration[] };
    expect(doc).toMatchObject({ ok: true, dryRun: false, failed: 0 });
    expect(doc.slots).toHaveLength(1);
    expect(doc.slots[0]).toMatchObject({ outcome: 'migrated', slotId: cli, from: was.runId, phase: 'active' });
    await expectMigrated(was, (doc.slots[0] as Extract<SlotMigration, { outcome: 'migrated' }>).to);
    // Never a token on the operator's screen.
    const onDisk = await readClaude(cli);
    for (const secret of [onDisk.claudeAiOauth.accessToken, onDisk.claudeAiOauth.refreshToken]) expect(run.stdout + run.stderr).not.toContain(secret);

    const mixed = await slotctlProcess(['migrate', cli, 'no-such-slot']);
    expect(mixed.code).toBe(1);
    expect(mixed.stdout.split('\n').filter(Boolean)).toEqual([
      `${cli}: skipped; already runs slot workflow v2`,
      `no-such-slot: FAILED: slot no-such-slot has no workflow (slot:no-such-slot not found)`,
    ]);
  });
});

describe('a v1 refresh in flight at migration time', () => {
  it('is waited for: the rotating refresh token is never presented twice, and the grant survives', async () => {
    // Its tokens live 30 minutes, inside Claude's one-hour margin: every check of this slot refreshes at once.
    const slotId = uniqueName('mig-busy');
    const tokens = server.issue({ accessTtlSec: 1800 });
    grants.set(slotId, tokens.grantId);
    await writeSecretFileAtomic(
      await ensureSlotHome(slotsDir, slotId),
      CREDENTIAL,
      JSON.stringify({ claudeAiOauth: { accessToken: tokens.accessToken, refreshToken: tokens.refreshToken, expiresAt: Date.now() + 1800_000, scopes: [] } }),
    );
    // v1 still runs this one, on its own queues, while upgraded workers serve the same host.
    const host = uniqueName('host');
    const v1Queue = uniqueName('shared-v1');
    const v2Queue = uniqueName('shared-v2');
    const v1Slots = new SlotClient(client, v1Queue);
    const v2 = await startWorkers({ slotsDir, env: workerEnv, hostName: host, sharedTaskQueue: v2Queue });
    const v1 = await startLegacyWorkers(v1Queue, host);
    let elapsed = 0;
    try {
      await v1Slots.provision({ slotId, provider: 'claude', host, adoptExisting: true });
      await v1Slots.waitFor(slotId, (s) => s.phase === 'active', { timeoutMs: 30_000, pollMs: 100 });
      expect(server.grant(tokens.grantId)?.rotations).toBe(1);
      const from = (await client.workflow.getHandle(slotWorkflowId(slotId)).describe()).runId;

      // The token endpoint holds v1's next refresh for three seconds.
      server.script([{ delayMs: 3000 }]);
      const sent = server.requests.length;
      await v1Slots.refreshNow(slotId);
      const deadline = Date.now() + 10_000;
      while (server.requests.length === sent && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      expect(server.requests.length, 'v1 sent its refresh').toBe(sent + 1);

      const started = Date.now();
      const [result] = await migrateSlots(client, { taskQueue: v2Queue, slotIds: [slotId] });
      expect(result).toMatchObject({ outcome: 'migrated', slotId, from, fromPhase: 'refreshing', phase: 'active' });
      elapsed = Date.now() - started;
      expect(await new SlotClient(client, v2Queue).status(slotId)).toMatchObject({ phase: 'active', logins: 0 });
    } finally {
      await v1.stop();
      await retired(slotId);
      await v2.stop();
    }
    // v1's answer was written, then v2's first check (the token is due) rotated once more, from the token v1 wrote.
    expect(server.presentedTwice()).toEqual([]);
    const grant = server.grant(tokens.grantId);
    // Rotated three times and never presented twice; then the retire revoked its refresh token (and so the grant).
    expect(grant).toMatchObject({ rotations: 3 });
    expect(server.requests.filter((r) => r.outcome === 'token-revoked').map((r) => r.revokedToken)).toContain(grant?.refreshToken);
    // Retired: the home is in the host's trash, as the last refresh left it.
    const tombstone = (await readTombstone(slotsDir, slotId)) as Tombstone;
    const trashed = JSON.parse(await readFile(join(slotsDir, TRASH_DIR, tombstone.trashed as string, CREDENTIAL), 'utf8')) as ClaudeFile;
    expect(trashed.claudeAiOauth.refreshToken).toBe(grant?.refreshToken);
    expect(elapsed, 'migrate waited for the request in flight').toBeGreaterThanOrEqual(2000);
  });
});

/** What a user notices after a migration: v2 runs the slot, active as before, on the same credential, and v1 is gone. */
async function expectMigrated(was: Before, to: string): Promise<void> {
  const handle = client.workflow.getHandle(slotWorkflowId(was.slotId));
  const description = await handle.describe();
  expect(description.runId).toBe(to);
  expect(description.status.name).toBe('RUNNING');
  expect(description.memo).toMatchObject(V2_MEMO);

  const status = await until(was.slotId, (s) => s.phase === 'active', 'active on v2');
  expect(status.account).toBe(was.status.account);
  expect(status.expiresAt).toBe(was.status.expiresAt);
  expect(status.prompt).toBeUndefined();
  expect(status.logins).toBe(0);
  // Adopting a fresh credential asks the token endpoint nothing: the file is as v1 left it.
  expect((await readClaude(was.slotId)).claudeAiOauth.refreshToken).toBe(was.refreshToken);

  const old = await client.workflow.getHandle(slotWorkflowId(was.slotId), was.runId).describe();
  expect(old.status.name).toBe('TERMINATED');
  const history = await client.workflow.getHandle(slotWorkflowId(was.slotId), was.runId).fetchHistory();
  expect(history.events?.at(-1)?.workflowExecutionTerminatedEventAttributes?.reason).toBe(MIGRATION_REASON);
  expect(await runningChildren(was.slotId)).toEqual([]);
}
