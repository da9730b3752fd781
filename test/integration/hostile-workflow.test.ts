// A hostile workflow on the real dev server: anyone who may start workflows starts
// `slotWorkflow` naming an existing slot and an attacker's endpoints. The slot's host
// refuses every request (wrong workflow id, or a provider it did not record): the
// attacker's server hears nothing, the victim's files do not change, no token leaks.
import type { WorkflowHandle } from '@temporalio/client';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SlotStatus } from '../../common/messages';
import { slotWorkflowId } from '../../common/slot';
import type { SlotInput } from '../../common/slot-input';
import { SLOT_RECORD_FILE } from '../../activities/slot-record';
import { uniqueName } from '../harness';
import { answerDeviceLogin } from '../peers/device-approver';
import { DEVICE_CLIENT_ID, startOidcServer, type OidcServer } from '../peers/oidc-server';
import { startSlotRig, waitForPhase, waitForPrompt, type SlotRig } from '../slot-fixtures';

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

  it('as slot:<id> of a retired claude slot, with the oidc-device provider, is refused with the pinned configuration', async () => {
    const victim = uniqueName('victim2');
    await rig.slots.provision({ slotId: victim, provider: 'claude', host: rig.workers.hostName });
    await waitForPrompt(rig.slots, victim);
    // Retired with its files kept: the host still holds its record.
    await rig.slots.retire(victim);
    await rig.slots.client.workflow.getHandle(slotWorkflowId(victim)).result();
    const recordBefore = await readFile(join(rig.slotsDir, victim, SLOT_RECORD_FILE), 'utf8');
    expect(JSON.parse(recordBefore)).toMatchObject({ provider: 'claude', providerConfig: null });

    const restarted = await startHostile(slotWorkflowId(victim), {
      slotId: victim,
      provider: 'oidc-device',
      providerConfig: attackerConfig(attacker),
      host: rig.workers.hostName,
    });
    const status = await statusWhen(restarted, (s) => /this host pinned the slot/.test(s.lastOutcome?.message ?? ''));
    expect(status.lastOutcome?.message).toContain(
      `refusing a request for slot ${victim}: this host pinned the slot to provider claude and its configuration when ${slotWorkflowId(victim)} created it`,
    );
    expect(status.lastOutcome?.message).toContain('the request differs: provider: pinned claude, asked oidc-device');
    expect(status.lastOutcome?.message).toContain('retire the slot with --remove-files and provision it again; or provision it with the old configuration');
    // Retiring it revokes nothing at the attacker's revocation endpoint either.
    await restarted.signal('retire');
    await restarted.result();
    expect(attacker.heard).toEqual([]);
    expect(await readFile(join(rig.slotsDir, victim, SLOT_RECORD_FILE), 'utf8')).toBe(recordBefore);
  });
});
