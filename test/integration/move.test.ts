// `slotctl move` between two real worker processes with different SLOT_HOST, each with
// its own SLOTS_DIR, backing up to one real PostgreSQL: the slot arrives on the new host
// with no login, refreshed there, the old copy gone; a backup older than the file on the
// target host is refused and the slot stays where it was.
import { Client, Connection } from '@temporalio/client';
import { createDecipheriv, randomBytes } from 'node:crypto';
import { access, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ensureSlotHome, writeSecretFileAtomic } from '../../activities/credential-store';
import { BACKUP_TABLE } from '../../activities/postgres-backup-store';
import { SLOT_RECORD_FILE } from '../../activities/slot-record';
import { SlotClient } from '../../client/slot-client';
import { slotctl } from '../../cli/slotctl';
import type { MoveState } from '../../common/backup';
import type { SlotStatus } from '../../common/messages';
import { SlotHostKey } from '../../common/search-attributes';
import { slotWorkflowId } from '../../common/slot';
import { parseEncryptionKeys, slotDataConverter } from '../../client/encryption';
import { uniqueName } from '../harness';
import { startTokenServer, type TokenServer } from '../peers/token-server';
import { postgresOrSkip, startPostgres, type Postgres } from '../postgres';
import { fixtureWorkerEnv, spawnWorkerProcess, stopWorkerProcess, untilPolling, type WorkerProcess } from '../worker-process';

const CLAUDE_CLIENT_ID = '9d1c250a-e61b-44d9-88ed-5944d1962f5e';
const CREDENTIAL = '.claude/.credentials.json';
const KEYS = `k1:${randomBytes(32).toString('base64')}`;
const BACKUP_KEYS = `b1:${randomBytes(32).toString('base64')}`;
const { skip, missing } = postgresOrSkip('move');

const exists = (path: string): Promise<boolean> => access(path).then(() => true, () => false);

describe.skipIf(skip)('moving a slot between two worker processes', () => {
  let pg: Postgres;
  let server: TokenServer;
  let slots: SlotClient;
  let connection: Connection;
  const sharedQueue = uniqueName('shared');
  const hosts = { a: uniqueName('host-a'), b: uniqueName('host-b') };
  const dirs = { a: '', b: '' };
  const workers: Partial<Record<'a' | 'b', WorkerProcess>> = {};
  const provisioned: string[] = [];

  beforeAll(async () => {
    if (missing) throw new Error(`${missing} is missing and CI is set`);
    pg = await startPostgres();
    server = await startTokenServer({ defaultClientId: CLAUDE_CLIENT_ID, accessTtlSec: 8 * 3600 });
    connection = await Connection.connect({ address: inject('temporalAddress') });
    slots = new SlotClient(new Client({ connection, dataConverter: slotDataConverter(parseEncryptionKeys(KEYS)) }), sharedQueue);
    for (const side of ['a', 'b'] as const) {
      dirs[side] = await mkdtemp(join(tmpdir(), `slots-move-${side}-`));
      workers[side] = spawnWorkerProcess({
        ...fixtureWorkerEnv({ temporalAddress: inject('temporalAddress'), host: hosts[side], sharedQueue, slotsDir: dirs[side] }),
        CLAUDE_TOKEN_URL: server.claudeTokenUrl,
        SLOT_BACKUP_URL: pg.url,
        SLOTS_ENCRYPTION_KEYS: KEYS,
        SLOT_BACKUP_KEYS: BACKUP_KEYS,
        // Each host restores the other's backups: the operators of both allow moves between them.
        SLOT_BACKUP_RESTORE_FROM_HOSTS: hosts[side === 'a' ? 'b' : 'a'],
        METRICS_PORT: 'off',
      });
    }
    await Promise.all((['a', 'b'] as const).map((side) => untilPolling(workers[side] as WorkerProcess, slots.client, hosts[side], 120_000)));
  }, 240_000);

  afterAll(async () => {
    for (const slotId of provisioned) await slots?.retire(slotId).catch(() => undefined);
    await Promise.all(Object.values(workers).map((w) => stopWorkerProcess(w)));
    await connection?.close();
    await server?.close();
    await pg?.stop();
    for (const dir of Object.values(dirs)) if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function until(slotId: string, check: (s: SlotStatus) => boolean, what: string, timeoutMs = 60_000): Promise<SlotStatus> {
    const { status, reached } = await slots.waitFor(slotId, check, { timeoutMs, pollMs: 200 });
    if (!reached) throw new Error(`slot ${slotId}: wanted ${what}, have ${JSON.stringify(status)}\n${workers.a?.output().slice(-3000)}\n${workers.b?.output().slice(-3000)}`);
    return status;
  }

  async function refreshed(slotId: string): Promise<SlotStatus> {
    const before = (await slots.status(slotId)).refreshes;
    await slots.refreshNow(slotId);
    return until(slotId, (s) => s.refreshes > before && s.phase === 'active', 'a refresh');
  }

  /** `slotctl move <slot> --to-host <host> --json`, as an operator runs it: exit code and its one JSON document. */
  async function slotctlMove(slotId: string, toHost: string): Promise<{ code: number; answer: MoveState & { ok: boolean } }> {
    const out: string[] = [];
    const env = { ...process.env, TEMPORAL_ADDRESS: inject('temporalAddress'), SLOTS_TASK_QUEUE: sharedQueue, SLOTS_ENCRYPTION_KEYS: KEYS };
    const code = await slotctl(['move', slotId, '--to-host', toHost, '--timeout', '180', '--json'], { out: (t) => out.push(t), err: () => undefined, readStdin: async () => '', stdinIsTTY: false }, env);
    expect(out).toHaveLength(1);
    return { code, answer: JSON.parse(out[0] as string) as MoveState & { ok: boolean } };
  }

  const credentialText = (side: 'a' | 'b', expiresAt: number, tokens = server.issue()): string =>
    JSON.stringify({ claudeAiOauth: { accessToken: tokens.accessToken, refreshToken: tokens.refreshToken, expiresAt, scopes: ['user:inference'], subscriptionType: 'max' } });

  /** A slot on host A that adopted a credential and refreshed it once (so a backup exists). */
  async function slotOnA(): Promise<{ slotId: string; grantId: string }> {
    const slotId = uniqueName('mv');
    const tokens = server.issue();
    await writeSecretFileAtomic(await ensureSlotHome(dirs.a, slotId), CREDENTIAL, credentialText('a', Date.now() + 8 * 3600_000, tokens));
    provisioned.push(slotId);
    await slots.provision({ slotId, provider: 'claude', host: hosts.a, adoptExisting: true, options: { hostWaitMs: 10_000 } });
    await until(slotId, (s) => s.phase === 'active', 'active on host A');
    const first = await refreshed(slotId);
    expect(first.backup).toMatchObject({ ok: true });
    return { slotId, grantId: tokens.grantId };
  }

  it("the payload keys alone cannot open a backup the workers wrote: only the hosts' backup key does", { timeout: 240_000 }, async () => {
    const { slotId, grantId } = await slotOnA();
    const token = server.grant(grantId)?.refreshToken as string;
    const [hex] = pg.psql(`SELECT encode(ciphertext, 'hex') FROM ${BACKUP_TABLE} WHERE slot_id = '${slotId}' ORDER BY generation DESC LIMIT 1`);
    const data = Buffer.from(hex as string, 'hex');
    // AES-GCM is counter mode: whoever holds the key reads the text, without the tag or the associated data.
    const read = (key: Buffer): string => {
      const counter = createDecipheriv('aes-256-ctr', key, Buffer.concat([data.subarray(0, 12), Buffer.from([0, 0, 0, 2])]));
      return Buffer.concat([counter.update(data.subarray(12, data.length - 16)), counter.final()]).toString('latin1');
    };
    const [payloadKey] = parseEncryptionKeys(KEYS);
    const [backupKey] = parseEncryptionKeys(BACKUP_KEYS);
    // The search finds the token where it is (the key the host sealed with)...
    expect(read((backupKey as { key: Buffer }).key)).toContain(token);
    // ...and the payload key, which operators' slotctl, the codec server and workflow-only workers hold, reads nothing.
    expect(read((payloadKey as { key: Buffer }).key)).not.toContain(token);
    expect(read((payloadKey as { key: Buffer }).key)).not.toContain('claudeAiOauth');
  });

  it('moves a slot to the other host with no login: restored and refreshed there, the old copy removed', { timeout: 240_000 }, async () => {
    const { slotId, grantId } = await slotOnA();
    const { code, answer: moved } = await slotctlMove(slotId, hosts.b);
    expect(code).toBe(0);
    expect(moved).toMatchObject({ ok: true, state: 'moved', from: hosts.a, to: hosts.b });
    expect(moved.message).toContain(`a fresh backup was taken on ${hosts.a}`);
    expect(moved.message).toContain(`the files on ${hosts.a} were removed`);

    const status = await until(slotId, (s) => s.host === hosts.b, 'the slot on host B');
    expect(status).toMatchObject({ phase: 'active', logins: 0 });
    expect(status.move?.state).toBe('moved');
    // The credential lives on B only, holding the newest refresh token, and B pinned the slot.
    expect(await exists(join(dirs.a, slotId))).toBe(false);
    const onB = JSON.parse(await readFile(join(dirs.b, slotId, CREDENTIAL), 'utf8')) as { claudeAiOauth: { refreshToken: string } };
    expect(onB.claudeAiOauth.refreshToken).toBe(server.grant(grantId)?.refreshToken);
    expect(server.grant(grantId)?.alive).toBe(true);
    expect(await exists(join(dirs.b, slotId, SLOT_RECORD_FILE))).toBe(true);
    expect(server.presentedTwice()).toEqual([]);
    // The dashboard says where it is.
    const described = await slots.client.workflow.getHandle(slotWorkflowId(slotId)).describe();
    expect(described.typedSearchAttributes.get(SlotHostKey)).toBe(hosts.b);

    // It goes on refreshing on B.
    const again = await refreshed(slotId);
    expect(again.host).toBe(hosts.b);
    const later = JSON.parse(await readFile(join(dirs.b, slotId, CREDENTIAL), 'utf8')) as { claudeAiOauth: { refreshToken: string } };
    expect(later.claudeAiOauth.refreshToken).toBe(server.grant(grantId)?.refreshToken);
    expect(later.claudeAiOauth.refreshToken).not.toBe(onB.claudeAiOauth.refreshToken);
  });

  it('refuses to restore a backup older than the file on the target host; the slot stays on its host', { timeout: 240_000 }, async () => {
    const { slotId } = await slotOnA();
    // Host B holds a newer credential for this slot than the newest backup (its expiry is later).
    const newer = credentialText('b', Date.now() + 30 * 3600_000);
    await writeSecretFileAtomic(await ensureSlotHome(dirs.b, slotId), CREDENTIAL, newer);
    // Host A is gone: no fresh backup can be taken, the stored one is all there is.
    await stopWorkerProcess(workers.a as WorkerProcess);
    const { code, answer: state } = await slotctlMove(slotId, hosts.b);
    expect(code).toBe(1);
    expect(state).toMatchObject({ ok: false, state: 'refused', from: hosts.a, to: hosts.b });
    expect(state.message).toContain(`host ${hosts.a} did not answer`);
    expect(state.message).toMatch(/backup generation \d+ .* is older than the \.claude\/\.credentials\.json on host .*: a backup older than a rotation is never restored over a newer file/);
    expect(await readFile(join(dirs.b, slotId, CREDENTIAL), 'utf8')).toBe(newer);
    const status = await slots.status(slotId);
    expect(status.host).toBe(hosts.a);
    expect(status.move?.state).toBe('refused');
  });
});
