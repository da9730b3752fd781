// A hostile workflow on the real dev server: anyone who may start workflows starts
// `slotWorkflow` naming an existing slot and an attacker's endpoints, terminates and
// replaces `slot:<id>`, retires it, or runs workflows of their own against the host's
// and a live session's queues. The slot's host refuses every request (wrong workflow,
// a provider it did not record, a server not on its list, a retired slot): the
// attacker's server hears nothing, the victim's files do not change, no token leaks.
import type { WorkflowHandle } from '@temporalio/client';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { NativeConnection, Worker } from '@temporalio/worker';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { SlotStatus } from '../../common/messages';
import { hostTaskQueue, slotWorkflowId } from '../../common/slot';
import type { SlotInput } from '../../common/slot-input';
import { SLOT_RECORD_FILE } from '../../activities/slot-record';
import { readTombstone, TRASH_DIR, type Tombstone } from '../../activities/slot-trash';
import { startWorkers, uniqueName } from '../harness';
import { answerDeviceLogin } from '../peers/device-approver';
import { DEVICE_CLIENT_ID, startOidcServer, type OidcServer } from '../peers/oidc-server';
import { claudeCode, startSlotRig, waitForPhase, waitForPrompt, type SlotRig } from '../slot-fixtures';
import { refreshWorkflow, sessionIntruder } from './hostile.workflow';

const HOSTILE_WORKFLOWS = fileURLToPath(new URL('./hostile.workflow.ts', import.meta.url));

const TOKENS_FILE = '.oidc/tokens.json';

/** The attacker's OAuth server: answers everything 503 (so that nobody would notice) and records what reaches it. */
interface Attacker {
  readonly url: string;
  readonly heard: string[];
  close(): Promise<void>;
}

async function startAttacker(): Promise<Attacker> {
  const heard: string[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
    req.on('end', () => {
      heard.push(`${req.method} ${req.url} ${body}`);
      res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":"temporarily_unavailable"}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, heard, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

const attackerConfig = (attacker: Attacker) => ({
  endpoints: {
    device_authorization_endpoint: `${attacker.url}/device`,
    token_endpoint: `${attacker.url}/token`,
    revocation_endpoint: `${attacker.url}/revoke`,
  },
  clientId: 'attacker-client',
});

/** Every payload of a workflow's history, decoded: what anyone with access to Temporal can read. */
async function historyText(handle: WorkflowHandle): Promise<string> {
  const history = await handle.fetchHistory();
  const texts: string[] = [];
  const walk = (value: unknown): void => {
    if (value instanceof Uint8Array) texts.push(Buffer.from(value).toString('utf8'));
    else if (Array.isArray(value)) value.forEach(walk);
    else if (typeof value === 'object' && value !== null) Object.values(value).forEach(walk);
    else if (typeof value === 'string') texts.push(value);
  };
  walk(history);
  return texts.join('\n');
}

async function statusWhen(handle: WorkflowHandle, done: (s: SlotStatus) => boolean, timeoutMs = 30_000): Promise<SlotStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await handle.query<SlotStatus>('status');
    if (done(status)) return status;
    if (Date.now() > deadline) throw new Error(`${handle.workflowId} never got there: ${JSON.stringify(status)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('a hostile workflow naming an existing slot', () => {
  let oidc: OidcServer;
  let rig: SlotRig;
  let attacker: Attacker;
  beforeAll(async () => {
    oidc = await startOidcServer();
    attacker = await startAttacker();
    rig = await startSlotRig();
  });
  afterAll(async () => {
    await rig?.close();
    await attacker?.close();
    await oidc?.close();
  });

  /** Starts `slotWorkflow` with the `temporal` client, as anyone with namespace access can. */
  const startHostile = (workflowId: string, input: SlotInput): Promise<WorkflowHandle> =>
    rig.slots.client.workflow.start('slotWorkflow', { workflowId, taskQueue: rig.workers.sharedTaskQueue, args: [input] });

  it('under another workflow id gets nothing from an oidc-device slot and changes nothing', async () => {
    const victim = uniqueName('victim');
    const home = join(rig.slotsDir, victim);
    await rig.slots.provision({
      slotId: victim,
      provider: 'oidc-device',
      providerConfig: { issuer: oidc.issuer, clientId: DEVICE_CLIENT_ID, scopes: ['openid', 'offline_access'] },
      host: rig.workers.hostName,
    });
    const waiting = await rig.slots.waitFor(victim, (s) => s.phase === 'awaiting-operator' && s.prompt?.userCode !== undefined, { timeoutMs: 30_000, pollMs: 100 });
    await answerDeviceLogin(waiting.status.prompt!.url, waiting.status.prompt!.userCode!, { answer: 'approve', login: 'operator@example.test' });
    expect((await waitForPhase(rig.slots, victim, ['active', 'needs-relogin'])).phase).toBe('active');
    const tokensBefore = await readFile(join(home, TOKENS_FILE));
    const recordBefore = await readFile(join(home, SLOT_RECORD_FILE), 'utf8');
    expect(JSON.parse(recordBefore)).toMatchObject({ provider: 'oidc-device', providerConfig: { issuer: oidc.issuer }, createdBy: { workflowId: slotWorkflowId(victim) } });
    const tokens = JSON.parse(tokensBefore.toString('utf8')) as Record<string, string>;
    const secrets = [tokens.access_token, tokens.refresh_token, tokens.id_token].filter((t): t is string => typeof t === 'string');
    expect(secrets.length).toBeGreaterThanOrEqual(2);

    // Adopting the victim's credential would refresh it at the attacker's token endpoint.
    const adopting = await startHostile(uniqueName('evil'), {
      slotId: victim,
      provider: 'oidc-device',
      providerConfig: attackerConfig(attacker),
      host: rig.workers.hostName,
      adoptExisting: true,
      onPermanentFailure: 'wait',
    });
    const refusal = new RegExp(`refusing a request for slot ${victim} from workflow "${adopting.workflowId}": only the workflow slot:${victim} may act on this slot`);
    const refused = await statusWhen(adopting, (s) => refusal.test(s.lastOutcome?.message ?? ''));
    expect(refused.phase).toBe('needs-relogin');
    // Then everything else it can ask for: a refresh, a login, a retirement that revokes and removes the files.
    await adopting.signal('refreshNow');
    await adopting.signal('relogin');
    await statusWhen(adopting, (s) => (s.logins ?? 0) >= 1 && s.phase !== 'logging-in' && refusal.test(s.lastOutcome?.message ?? ''));
    await adopting.signal('retire', { removeFiles: true });
    await adopting.result();

    // A plain login under yet another id.
    const login = await startHostile(`evil:${victim}`, { slotId: victim, provider: 'oidc-device', providerConfig: attackerConfig(attacker), host: rig.workers.hostName });
    await statusWhen(login, (s) => /refusing a request for slot .* from workflow "evil:/.test(s.lastOutcome?.message ?? ''));
    await login.signal('retire', { removeFiles: true });
    await login.result();

    expect(attacker.heard).toEqual([]);
    expect(await readFile(join(home, TOKENS_FILE))).toEqual(tokensBefore);
    expect(await readFile(join(home, SLOT_RECORD_FILE), 'utf8')).toBe(recordBefore);
    for (const handle of [adopting, login]) {
      const history = await historyText(handle);
      expect(history).toContain('refusing a request for slot');
      for (const secret of secrets) expect(history).not.toContain(secret);
      expect(JSON.stringify(await handle.query<SlotStatus>('status'))).not.toContain(secrets[0]);
    }
    // The victim never noticed: still active, still its own tokens.
    expect((await rig.slots.status(victim)).phase).toBe('active');
    expect(await oidc.introspect(tokens.access_token!)).toMatchObject({ active: true });
    await rig.slots.retire(victim);
  });

  it('as slot:<id> of a retired claude slot, with any provider or the same one, is refused: a retired slot is the host\'s to bring back', async () => {
    const victim = uniqueName('victim2');
    await rig.slots.provision({ slotId: victim, provider: 'claude', host: rig.workers.hostName });
    await waitForPrompt(rig.slots, victim);
    const recordBefore = await readFile(join(rig.slotsDir, victim, SLOT_RECORD_FILE), 'utf8');
    expect(JSON.parse(recordBefore)).toMatchObject({ provider: 'claude', providerConfig: null });
    // Retired with its files "kept": the home goes to the host's trash, record and all, behind a tombstone.
    await rig.slots.retire(victim);
    const retired = await rig.slots.client.workflow.getHandle(slotWorkflowId(victim)).result();
    expect(retired.lastOutcome?.message).toMatch(new RegExp(`^retired; nothing was revoked \\(the slot holds no credential to revoke\\); the slot home was moved to the trash on host ${rig.workers.hostName} \\(${victim}\\.[0-9TZ]+\\.[0-9a-f]+\\); slot ${victim} stays retired there`));
    const tombstone = await readTombstone(rig.slotsDir, victim);
    expect(tombstone).toMatchObject({ kind: 'retired', record: { provider: 'claude' }, by: { workflowId: slotWorkflowId(victim) } });
    const trashed = join(rig.slotsDir, TRASH_DIR, (tombstone as Tombstone).trashed!);
    expect(await readFile(join(trashed, SLOT_RECORD_FILE), 'utf8')).toBe(recordBefore);

    for (const [provider, providerConfig] of [['oidc-device', attackerConfig(attacker)], ['claude', undefined]] as const) {
      const restarted = await startHostile(slotWorkflowId(victim), { slotId: victim, provider, ...(providerConfig ? { providerConfig } : {}), host: rig.workers.hostName, adoptExisting: true, onPermanentFailure: 'wait' });
      const status = await statusWhen(restarted, (s) => /the slot was retired on this host/.test(s.lastOutcome?.message ?? ''));
      expect(status.lastOutcome?.message).toContain(`refusing a request for slot ${victim} from workflow "${slotWorkflowId(victim)}": the slot was retired on this host`);
      expect(status.lastOutcome?.message).toContain(`slotctl host unretire ${victim}`);
      // Retiring it again revokes nothing at the attacker's revocation endpoint and moves nothing.
      await restarted.signal('retire', { removeFiles: true });
      expect((await restarted.result()).lastOutcome?.message).toContain('the slot could NOT be retired on host');
    }
    expect(attacker.heard).toEqual([]);
    await expect(stat(join(rig.slotsDir, victim))).rejects.toThrow(/ENOENT/);
    expect(await readFile(join(trashed, SLOT_RECORD_FILE), 'utf8')).toBe(recordBefore);
  });
});

/** The victim's oidc-device slot on a host that lists only the victim's server, and what anyone with namespace access can start. */
describe('re-pinning a slot from inside the namespace (issue 23, findings 1 and 2)', () => {
  let oidc: OidcServer;
  let rig: SlotRig;
  let attacker: Attacker;
  let native: NativeConnection;
  let hostile: Worker;
  let hostileRun: Promise<void>;
  const hostileQueue = uniqueName('hostile');
  beforeAll(async () => {
    oidc = await startOidcServer();
    attacker = await startAttacker();
    // The host trusts the victim's issuer and nothing else (the attacker's server also listens on 127.0.0.1).
    rig = await startSlotRig({ SLOTS_OIDC_SERVERS: oidc.issuer });
    native = await NativeConnection.connect({ address: inject('temporalAddress') });
    hostile = await Worker.create({ connection: native, taskQueue: hostileQueue, workflowsPath: HOSTILE_WORKFLOWS });
    hostileRun = hostile.run();
  });
  afterAll(async () => {
    hostile?.shutdown();
    await hostileRun;
    await native?.close();
    await rig?.close();
    await attacker?.close();
    await oidc?.close();
  });

  const startHostile = (workflowId: string, input: SlotInput): Promise<WorkflowHandle> =>
    rig.slots.client.workflow.start('slotWorkflow', { workflowId, taskQueue: rig.workers.sharedTaskQueue, args: [input] });

  /** An active oidc-device slot of the victim's, and its tokens as the host holds them. */
  async function activeVictim(prefix: string): Promise<{ slotId: string; home: string; tokens: Buffer; access: string }> {
    const slotId = uniqueName(prefix);
    await rig.slots.provision({ slotId, provider: 'oidc-device', providerConfig: { issuer: oidc.issuer, clientId: DEVICE_CLIENT_ID }, host: rig.workers.hostName });
    const waiting = await rig.slots.waitFor(slotId, (s) => s.phase === 'awaiting-operator' && s.prompt?.userCode !== undefined, { timeoutMs: 30_000, pollMs: 100 });
    await answerDeviceLogin(waiting.status.prompt!.url, waiting.status.prompt!.userCode!, { answer: 'approve', login: 'operator@example.test' });
    expect((await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin'])).phase).toBe('active');
    const home = join(rig.slotsDir, slotId);
    const tokens = await readFile(join(home, TOKENS_FILE));
    return { slotId, home, tokens, access: (JSON.parse(tokens.toString('utf8')) as { access_token: string }).access_token };
  }

  it('terminate, own slot:X, retire --remove-files, adopt with the attacker\'s token endpoint: the attacker hears nothing, the victim\'s files are intact in the trash', async () => {
    const victim = await activeVictim('repin');
    const record = await readFile(join(victim.home, SLOT_RECORD_FILE), 'utf8');
    // 1. Terminate the victim's slot:X and start one's own slot:X, then retire it, asking for the files to go.
    await rig.slots.client.workflow.getHandle(slotWorkflowId(victim.slotId)).terminate('an attacker');
    const own = await startHostile(slotWorkflowId(victim.slotId), { slotId: victim.slotId, provider: 'oidc-device', providerConfig: attackerConfig(attacker), host: rig.workers.hostName, onPermanentFailure: 'wait' });
    await statusWhen(own, (s) => s.phase === 'needs-relogin');
    await own.signal('retire', { removeFiles: true });
    await own.result();
    // 2. Start slot:X again, adopting "the existing credential" with the attacker's token endpoint, and ask for a refresh and a login.
    const adopting = await startHostile(slotWorkflowId(victim.slotId), {
      slotId: victim.slotId,
      provider: 'oidc-device',
      providerConfig: attackerConfig(attacker),
      host: rig.workers.hostName,
      adoptExisting: true,
      onPermanentFailure: 'wait',
    });
    const refused = await statusWhen(adopting, (s) => s.phase === 'needs-relogin');
    await adopting.signal('refreshNow');
    await adopting.signal('relogin');
    await statusWhen(adopting, (s) => (s.logins ?? 0) >= 1 && s.phase !== 'logging-in');
    await adopting.terminate('done');

    expect(attacker.heard).toEqual([]);
    expect(refused.lastOutcome?.message).toContain(`refusing a request for slot ${victim.slotId} from workflow "${slotWorkflowId(victim.slotId)}": the slot was retired on this host`);
    // Nothing was adopted: no home was made again; the victim's home, tokens and record are in the host's trash, byte for byte.
    await expect(stat(victim.home)).rejects.toThrow(/ENOENT/);
    const tombstone = (await readTombstone(rig.slotsDir, victim.slotId)) as Tombstone;
    expect(tombstone).toMatchObject({ kind: 'retired', removeFilesAsked: true, record: { provider: 'oidc-device', providerConfig: { issuer: oidc.issuer } } });
    const trashed = join(rig.slotsDir, TRASH_DIR, tombstone.trashed!);
    expect(await readFile(join(trashed, TOKENS_FILE))).toEqual(victim.tokens);
    expect(await readFile(join(trashed, SLOT_RECORD_FILE), 'utf8')).toBe(record);
    // Never refreshed or revoked by the attacker's runs: the victim's token is still the live one.
    expect(await oidc.introspect(victim.access)).toMatchObject({ active: true });
  });

  it('on another host (no record there), the attacker\'s endpoints are not on that host\'s list: refused before any request', async () => {
    const victim = await activeVictim('repin2');
    const otherDir = await mkdtemp(join(tmpdir(), 'slots-other-'));
    const other = await startWorkers({ slotsDir: otherDir, sharedTaskQueue: rig.workers.sharedTaskQueue, roles: ['host'], env: { ...process.env, SLOTS_OIDC_SERVERS: oidc.issuer } });
    try {
      await rig.slots.client.workflow.getHandle(slotWorkflowId(victim.slotId)).terminate('an attacker');
      const elsewhere = await startHostile(slotWorkflowId(victim.slotId), {
        slotId: victim.slotId,
        provider: 'oidc-device',
        providerConfig: attackerConfig(attacker),
        host: other.hostName,
        adoptExisting: true,
        onPermanentFailure: 'wait',
      });
      const refused = await statusWhen(elsewhere, (s) => s.phase === 'needs-relogin');
      await elsewhere.signal('relogin');
      await statusWhen(elsewhere, (s) => (s.logins ?? 0) >= 1 && s.phase !== 'logging-in');
      await elsewhere.terminate('done');
      expect(attacker.heard).toEqual([]);
      expect(refused.lastOutcome?.message).toContain(`its oidc-device configuration names endpoints.device_authorization_endpoint "${attacker.url}/device", endpoints.token_endpoint "${attacker.url}/token", endpoints.revocation_endpoint "${attacker.url}/revoke", not on this host's list of OAuth servers (SLOTS_OIDC_SERVERS: 1 entry)`);
      await expect(stat(join(otherDir, victim.slotId, SLOT_RECORD_FILE))).rejects.toThrow(/ENOENT/);
      expect(await readFile(join(victim.home, TOKENS_FILE))).toEqual(victim.tokens);
    } finally {
      await other.stop();
      await rm(otherDir, { recursive: true, force: true });
    }
  });

  it('a workflow with a v1 child\'s type and id (refreshWorkflow, refresh:<id>:1) on another worker cannot act on the slot', async () => {
    const victim = await activeVictim('v1id');
    const handle = await rig.slots.client.workflow.start(refreshWorkflow, {
      workflowId: `refresh:${victim.slotId}:1`,
      taskQueue: hostileQueue,
      args: [hostTaskQueue(rig.workers.hostName), victim.slotId],
    });
    const answer = await handle.result();
    expect(answer).toMatchObject({ ok: false, type: 'SlotRequestRefused' });
    expect((answer as { message: string }).message).toContain(`a v1 refreshWorkflow is accepted only as a child of the running slot:${victim.slotId}; this one has no running parent`);
    expect(await readFile(join(victim.home, TOKENS_FILE))).toEqual(victim.tokens);
    expect((await rig.slots.status(victim.slotId)).phase).toBe('active');
    await rig.slots.retire(victim.slotId);
  });
});

describe('a foreign workflow reaching a live login session (issue 23, finding 7)', () => {
  let rig: SlotRig;
  let native: NativeConnection;
  let hostile: Worker;
  let hostileRun: Promise<void>;
  const hostileQueue = uniqueName('intruder');
  beforeAll(async () => {
    rig = await startSlotRig();
    native = await NativeConnection.connect({ address: inject('temporalAddress') });
    hostile = await Worker.create({ connection: native, taskQueue: hostileQueue, workflowsPath: HOSTILE_WORKFLOWS });
    hostileRun = hostile.run();
  });
  afterAll(async () => {
    hostile?.shutdown();
    await hostileRun;
    await native?.close();
    await rig?.close();
  });

  it('cannot type into or close it: refused, the CLI saw no byte of it, and the operator\'s code still logs the slot in', async () => {
    const slotId = uniqueName('session');
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName });
    const waiting = await waitForPrompt(rig.slots, slotId);
    // What the attacker reads from the victim's history: the startLogin result names the session's queue and id.
    const history = await historyText(rig.slots.client.workflow.getHandle(slotWorkflowId(slotId)));
    const started = /"sessionQueue":"([^"]+)"/.exec(history);
    const loginId = new RegExp(`"loginId":"(${slotId}:[^"]+)"`).exec(history);
    expect(started?.[1]).toBeDefined();
    expect(loginId?.[1]).toBeDefined();

    for (const claimed of [undefined, slotId]) {
      const handle = await rig.slots.client.workflow.start(sessionIntruder, { workflowId: uniqueName('intruder'), taskQueue: hostileQueue, args: [started![1]!, loginId![1]!, claimed] });
      const { submit, close } = await handle.result();
      for (const answer of [submit, close]) {
        expect(answer).toMatchObject({ ok: false, type: 'SlotRequestRefused' });
        expect((answer as { message: string }).message).toContain(`only the workflow slot:${slotId} may act on this slot`);
      }
    }
    // The CLI is still waiting, on the same URL, and never received the attacker's bytes.
    const still = await rig.slots.status(slotId);
    expect(still.phase).toBe('awaiting-operator');
    expect(still.prompt?.url).toBe(waiting.prompt.url);
    expect(await readFile(rig.inputLog, 'utf8').catch(() => '')).not.toContain('attacker-code');
    await rig.slots.submitCode(slotId, claudeCode(waiting));
    expect((await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin'])).phase).toBe('active');
    await rig.slots.retire(slotId);
  });
});
