// The slot's record on its host: written by the first request naming a provider,
// then every request must come from `slot:<id>` with the same provider and
// configuration, servers only from the host's list, never for a retired slot. Real
// files in a slot home; the activity context as a worker gives it.
import type { Info } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ensureSlotHome } from '../../activities/credential-store';
import { checkSlotRequest, SLOT_RECORD_FILE, type SlotRequest } from '../../activities/slot-record';
import { freeSlotId, readTombstone, trashSlotHome, unretireSlot, TRASH_DIR } from '../../activities/slot-trash';

const quiet = new DefaultLogger('ERROR');
const OIDC = { issuer: 'https://idp.example.com/realms/a', clientId: 'agents' };
/** The host's list: the servers these tests name, the attacker's included where a test is about the pin. */
const HOST_ENV = { SLOTS_OIDC_SERVERS: 'https://idp.example.com,https://attacker.example,https://evil.example' };
let slotsDir: string;

beforeEach(async () => {
  slotsDir = await mkdtemp(join(tmpdir(), 'slot-record-'));
});
afterEach(async () => {
  await rm(slotsDir, { recursive: true, force: true });
});

const asWorkflow = (workflowId: string, workflowType = 'slotWorkflow'): Partial<Info> => ({ workflowExecution: { workflowId, runId: 'run-1' }, workflowType });

/** One request as a host activity makes it, from workflow `workflowId` (default `slot:<id>`). */
async function ask(request: SlotRequest, workflowId = `slot:${request.slotId}`, workflowType?: string, env: NodeJS.ProcessEnv = HOST_ENV): Promise<ApplicationFailure | undefined> {
  try {
    await new MockActivityEnvironment(asWorkflow(workflowId, workflowType), { logger: quiet }).run(checkSlotRequest, { slotsDir, env }, request);
    return undefined;
  } catch (err) {
    if (err instanceof ApplicationFailure) return err;
    throw err;
  }
}

const record = async (slotId: string): Promise<Record<string, unknown>> => JSON.parse(await readFile(join(slotsDir, slotId, SLOT_RECORD_FILE), 'utf8')) as Record<string, unknown>;

describe('checkSlotRequest', () => {
  it('records the provider and its normalised configuration on the first request, 0600', async () => {
    expect(await ask({ slotId: 'a', provider: 'oidc-device', providerConfig: OIDC })).toBeUndefined();
    expect(await record('a')).toMatchObject({
      version: 1,
      slotId: 'a',
      provider: 'oidc-device',
      // Defaults filled in: a later request that spells them out is the same configuration.
      providerConfig: { ...OIDC, scopes: ['openid', 'offline_access'], tokens: { path: '.oidc/tokens.json', format: 'oauth-json' } },
      createdBy: { workflowId: 'slot:a', runId: 'run-1' },
    });
    expect((await stat(join(slotsDir, 'a', SLOT_RECORD_FILE))).mode & 0o777).toBe(0o600);
    expect(await ask({ slotId: 'a', provider: 'oidc-device', providerConfig: { ...OIDC, scopes: ['openid', 'offline_access'] } })).toBeUndefined();
    expect(await ask({ slotId: 'a' })).toBeUndefined();
  });

  it('acts on slot <id> only for the workflow slot:<id>', async () => {
    await ask({ slotId: 'victim', provider: 'claude' });
    for (const workflowId of ['evil-1', 'slot:other', 'slot:victim:x']) {
      const refused = await ask({ slotId: 'victim', provider: 'claude' }, workflowId);
      expect(refused).toMatchObject({ type: 'SlotRequestRefused', nonRetryable: true });
      expect(refused?.message).toBe(`refusing a request for slot victim from workflow "${workflowId}": only the workflow slot:victim may act on this slot`);
    }
    // Also for activities that name no provider (status, removal): no record is needed to refuse them.
    expect(await ask({ slotId: 'fresh' }, 'evil-2')).toMatchObject({ type: 'SlotRequestRefused' });
    expect(await ask({ slotId: '../etc' }, 'slot:../etc')).toMatchObject({ type: 'SlotRequestRefused', message: expect.stringContaining('slot id must be lowercase') });
  });

  it('refuses a workflow with a v1-looking id and type unless the server says it is a child of the running slot:<id>', async () => {
    await ask({ slotId: 'old', provider: 'claude' });
    // Anyone may start `refresh:old:7` of type refreshWorkflow on their own worker: without a running parent slot:old it is nobody.
    for (const [workflowId, workflowType] of [['refresh:old:7', 'refreshWorkflow'], ['login:old:2', 'loginWorkflow']] as const) {
      const refused = await ask({ slotId: 'old', provider: 'claude' }, workflowId, workflowType);
      expect(refused).toMatchObject({ type: 'SlotRequestRefused', nonRetryable: true });
      expect(refused?.message).toContain(`a v1 ${workflowType} is accepted only as a child of the running slot:old; this one has no running parent`);
      expect(await ask({ slotId: 'old' }, workflowId, workflowType)).toMatchObject({ type: 'SlotRequestRefused' });
    }
    expect(await ask({ slotId: 'old', provider: 'claude' }, 'refresh:old:7', 'slotWorkflow')).toMatchObject({ type: 'SlotRequestRefused' });
    expect(await ask({ slotId: 'old', provider: 'claude' }, 'refresh:older:7', 'refreshWorkflow')).toMatchObject({ type: 'SlotRequestRefused' });
  });

  it("refuses an oidc-device configuration whose servers are not on the host's list, naming SLOTS_OIDC_SERVERS", async () => {
    // None by default.
    const none = await ask({ slotId: 'h', provider: 'oidc-device', providerConfig: OIDC }, undefined, undefined, {});
    expect(none).toMatchObject({ type: 'SlotRequestRefused', nonRetryable: true });
    expect(none?.message).toBe(
      'refusing a request for slot h: its oidc-device configuration names issuer "https://idp.example.com/realms/a", not on this host\'s list of OAuth servers ' +
        '(SLOTS_OIDC_SERVERS: none configured); the host\'s operator adds the server to SLOTS_OIDC_SERVERS on the slot\'s host if it is to be trusted',
    );
    await expect(stat(join(slotsDir, 'h'))).rejects.toThrow(/ENOENT/);
    // Under a listed path (a path boundary, not a prefix of characters), same scheme, host and port.
    const list = { SLOTS_OIDC_SERVERS: 'https://idp.example.com/realms/a, http://127.0.0.1:*' };
    expect(await ask({ slotId: 'h', provider: 'oidc-device', providerConfig: OIDC }, undefined, undefined, list)).toBeUndefined();
    for (const issuer of ['https://idp.example.com/realms/ab', 'https://idp.example.com:8443/realms/a', 'https://idp.example.com.evil.example/realms/a', 'http://localhost:9/x']) {
      expect(await ask({ slotId: 'i', provider: 'oidc-device', providerConfig: { ...OIDC, issuer } }, undefined, undefined, list), issuer).toMatchObject({ type: 'SlotRequestRefused', message: expect.stringContaining('not on this host\'s list') });
    }
    // Explicit endpoints: each one is checked, and the refusal names the ones not listed.
    const endpoints = await ask(
      { slotId: 'i', provider: 'oidc-device', providerConfig: { endpoints: { device_authorization_endpoint: 'http://127.0.0.1:4444/device', token_endpoint: 'https://attacker.example/token' }, clientId: 'x' } },
      undefined,
      undefined,
      list,
    );
    expect(endpoints?.message).toContain('names endpoints.token_endpoint "https://attacker.example/token", not on');
    expect(endpoints?.message).not.toContain('device_authorization_endpoint');
    // A slot already pinned to a server the host no longer lists is refused too: the list is the host's, now.
    expect(await ask({ slotId: 'h', provider: 'oidc-device', providerConfig: OIDC }, undefined, undefined, {})).toMatchObject({ type: 'SlotRequestRefused' });
    // Fixed providers name no server.
    expect(await ask({ slotId: 'j', provider: 'claude' }, undefined, undefined, {})).toBeUndefined();
  });

  it('refuses every request for a retired slot, whatever it asks, until the host frees or un-retires it', async () => {
    await ask({ slotId: 'r', provider: 'oidc-device', providerConfig: OIDC });
    await writeFile(join(slotsDir, 'r', 'keep.txt'), 'the victim\'s', { mode: 0o600 });
    const { tombstone } = await trashSlotHome({ slotsDir, slotId: 'r', kind: 'retired', by: { workflowId: 'slot:r', runId: 'run-1' }, record: { provider: 'oidc-device', providerConfig: OIDC } });
    await expect(stat(join(slotsDir, 'r'))).rejects.toThrow(/ENOENT/);
    expect(await readFile(join(slotsDir, TRASH_DIR, tombstone.trashed!, 'keep.txt'), 'utf8')).toBe('the victim\'s');
    for (const request of [{ slotId: 'r' }, { slotId: 'r', provider: 'oidc-device', providerConfig: OIDC }, { slotId: 'r', provider: 'oidc-device', providerConfig: { ...OIDC, issuer: 'https://attacker.example' } }, { slotId: 'r', provider: 'claude' }]) {
      const refused = await ask(request);
      expect(refused).toMatchObject({ type: 'SlotRequestRefused', nonRetryable: true });
      expect(refused?.message).toContain('the slot was retired on this host');
      expect(refused?.message).toContain('slotctl host unretire r');
    }
    // Nothing was created: no home to adopt, no record to pin.
    await expect(stat(join(slotsDir, 'r'))).rejects.toThrow(/ENOENT/);
    // The host's operator brings it back as it was: its record pins it again.
    expect(await unretireSlot(slotsDir, 'r')).toEqual({ restoredHome: true });
    expect(await readTombstone(slotsDir, 'r')).toBeUndefined();
    expect(await ask({ slotId: 'r', provider: 'oidc-device', providerConfig: { ...OIDC, issuer: 'https://attacker.example' } })).toMatchObject({ message: expect.stringContaining('this host pinned the slot') });
    expect(await ask({ slotId: 'r', provider: 'oidc-device', providerConfig: OIDC })).toBeUndefined();
    // Or frees the id: the next slot starts afresh (its old home stays in the trash).
    await trashSlotHome({ slotsDir, slotId: 'r', kind: 'retired', by: { workflowId: 'slot:r', runId: 'run-2' }, record: undefined });
    await freeSlotId(slotsDir, 'r');
    expect(await ask({ slotId: 'r', provider: 'claude' })).toBeUndefined();
    expect(await record('r')).toMatchObject({ provider: 'claude' });
  });

  it('pins a slot that moved away to what its tombstone kept, and to nothing else', async () => {
    await ask({ slotId: 'm', provider: 'oidc-device', providerConfig: OIDC });
    await trashSlotHome({ slotsDir, slotId: 'm', kind: 'moved-away', by: { workflowId: 'slot:m', runId: 'run-1' }, record: { provider: 'oidc-device', providerConfig: (await record('m')).providerConfig } });
    const other = await ask({ slotId: 'm', provider: 'oidc-device', providerConfig: { ...OIDC, issuer: 'https://attacker.example' } });
    expect(other?.message).toContain('this host pinned the slot to provider oidc-device and its configuration when the slot moved away from this host');
    await expect(stat(join(slotsDir, 'm', SLOT_RECORD_FILE))).rejects.toThrow(/ENOENT/);
    // Moving back with the same configuration pins it again; the tombstone has done its work.
    expect(await ask({ slotId: 'm', provider: 'oidc-device', providerConfig: OIDC })).toBeUndefined();
    expect(await record('m')).toMatchObject({ provider: 'oidc-device', providerConfig: { issuer: OIDC.issuer } });
    expect(await readTombstone(slotsDir, 'm')).toBeUndefined();
  });

  it('refuses another provider, naming both', async () => {
    await ask({ slotId: 'b', provider: 'claude' });
    const refused = await ask({ slotId: 'b', provider: 'oidc-device', providerConfig: OIDC });
    expect(refused).toMatchObject({ type: 'SlotRequestRefused', nonRetryable: true });
    expect(refused?.message).toMatch(/^refusing a request for slot b: this host pinned the slot to provider claude and its configuration when slot:b created it \(.+\), and the request differs: provider: pinned claude, asked oidc-device\. A workflow cannot change the pin: provision the slot with the old configuration, or use a new slot id \(retiring the slot keeps its id retired on this host until the host's operator frees it: slotctl host reuse b\)$/);
    expect(await record('b')).toMatchObject({ provider: 'claude', providerConfig: null });
  });

  it('refuses another configuration, showing URLs and naming other fields without their values', async () => {
    await ask({ slotId: 'c', provider: 'oidc-device', providerConfig: OIDC });
    const refused = await ask({
      slotId: 'c',
      provider: 'oidc-device',
      providerConfig: { issuer: 'https://attacker.example/x?q=1', clientId: 'stolen-client', scopes: ['openid', 'secret-scope'] },
    });
    expect(refused?.type).toBe('SlotRequestRefused');
    expect(refused?.message).toContain('providerConfig.issuer: pinned "https://idp.example.com/realms/a", asked "https://attacker.example/x"');
    expect(refused?.message).toContain('providerConfig.clientId differs');
    expect(refused?.message).toContain('providerConfig.scopes differs');
    expect(refused?.message).not.toContain('stolen-client');
    expect(refused?.message).not.toContain('secret-scope');
    // Explicit endpoints instead of the issuer: both sides named.
    const endpoints = await ask({
      slotId: 'c',
      provider: 'oidc-device',
      providerConfig: { endpoints: { device_authorization_endpoint: 'https://evil.example/device', token_endpoint: 'https://evil.example/token' }, clientId: 'agents' },
    });
    expect(endpoints?.message).toContain('providerConfig.endpoints.token_endpoint: pinned (none), asked "https://evil.example/token"');
    expect(endpoints?.message).toContain('providerConfig.issuer: pinned "https://idp.example.com/realms/a", asked (none)');
  });

  it("starts fresh once the host's operator removed the slot home by hand", async () => {
    await ask({ slotId: 'd', provider: 'claude' });
    await rm(join(slotsDir, 'd'), { recursive: true });
    expect(await ask({ slotId: 'd', provider: 'oidc-device', providerConfig: OIDC })).toBeUndefined();
    expect(await record('d')).toMatchObject({ provider: 'oidc-device' });
  });

  it('records a slot that has files but no record (a v1 or adopted slot) on its first request', async () => {
    await ensureSlotHome(slotsDir, 'e');
    await writeFile(join(slotsDir, 'e', 'slot-status.json'), '{}', { mode: 0o600 });
    expect(await ask({ slotId: 'e', provider: 'codex' })).toBeUndefined();
    expect(await record('e')).toMatchObject({ provider: 'codex' });
    expect(await ask({ slotId: 'e', provider: 'claude' })).toMatchObject({ type: 'SlotRequestRefused' });
  });

  it('refuses a damaged or readable record, and leaves bad configurations to the activity', async () => {
    await ask({ slotId: 'f', provider: 'claude' });
    const file = join(slotsDir, 'f', SLOT_RECORD_FILE);
    await writeFile(file, '{"version": 1, "provider": ', { mode: 0o600 });
    expect(await ask({ slotId: 'f', provider: 'claude' })).toMatchObject({ type: 'SlotRequestRefused', message: expect.stringContaining(`its record ${SLOT_RECORD_FILE} on this host is damaged`) });
    await rm(file);
    await writeFile(file, JSON.stringify({ version: 1, slotId: 'f', provider: 'oidc-device', providerConfig: {}, createdBy: { workflowId: 'x', runId: 'y' }, createdAt: 'now' }), { mode: 0o644 });
    expect(await ask({ slotId: 'f', provider: 'claude' })).toMatchObject({ type: 'SlotRequestRefused', message: expect.stringContaining('cannot be used') });
    // An unknown provider or a bad configuration is the activity's to refuse, with its own failure type; nothing is recorded.
    expect(await ask({ slotId: 'g', provider: 'gemini' })).toBeUndefined();
    expect(await ask({ slotId: 'g', provider: 'oidc-device', providerConfig: { clientId: 'x' } })).toBeUndefined();
    await expect(stat(join(slotsDir, 'g', SLOT_RECORD_FILE))).rejects.toThrow(/ENOENT/);
  });
});
