// The slot's record on its host: written by the first request naming a provider,
// then every request must come from `slot:<id>` with the same provider and
// configuration. Real files in a slot home; the activity context as a worker gives it.
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

const quiet = new DefaultLogger('ERROR');
const OIDC = { issuer: 'https://idp.example.com/realms/a', clientId: 'agents' };
let slotsDir: string;

beforeEach(async () => {
  slotsDir = await mkdtemp(join(tmpdir(), 'slot-record-'));
});
afterEach(async () => {
  await rm(slotsDir, { recursive: true, force: true });
});

const asWorkflow = (workflowId: string, workflowType = 'slotWorkflow'): Partial<Info> => ({ workflowExecution: { workflowId, runId: 'run-1' }, workflowType });

/** One request as a host activity makes it, from workflow `workflowId` (default `slot:<id>`). */
async function ask(request: SlotRequest, workflowId = `slot:${request.slotId}`, workflowType?: string): Promise<ApplicationFailure | undefined> {
  try {
    await new MockActivityEnvironment(asWorkflow(workflowId, workflowType), { logger: quiet }).run(checkSlotRequest, { slotsDir }, request);
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

  it("lets a v1 slot's login and refresh children finish (migration), with the same checks of provider and configuration", async () => {
    await ask({ slotId: 'old', provider: 'claude' });
    expect(await ask({ slotId: 'old', provider: 'claude' }, 'refresh:old:7', 'refreshWorkflow')).toBeUndefined();
    expect(await ask({ slotId: 'old', provider: 'claude' }, 'login:old:2', 'loginWorkflow')).toBeUndefined();
    expect(await ask({ slotId: 'old', provider: 'codex' }, 'refresh:old:7', 'refreshWorkflow')).toMatchObject({ type: 'SlotRequestRefused' });
    // The id alone is not enough (any workflow may take it), nor the type with another slot's id.
    expect(await ask({ slotId: 'old', provider: 'claude' }, 'refresh:old:7', 'slotWorkflow')).toMatchObject({ type: 'SlotRequestRefused' });
    expect(await ask({ slotId: 'old', provider: 'claude' }, 'refresh:older:7', 'refreshWorkflow')).toMatchObject({ type: 'SlotRequestRefused' });
    expect(await ask({ slotId: 'old' }, 'refresh:old:7x', 'refreshWorkflow')).toMatchObject({ type: 'SlotRequestRefused' });
  });

  it('refuses another provider, naming both', async () => {
    await ask({ slotId: 'b', provider: 'claude' });
    const refused = await ask({ slotId: 'b', provider: 'oidc-device', providerConfig: OIDC });
    expect(refused).toMatchObject({ type: 'SlotRequestRefused', nonRetryable: true });
    expect(refused?.message).toMatch(/^refusing a request for slot b: this host pinned the slot to provider claude and its configuration when slot:b created it \(.+\), and the request differs: provider: pinned claude, asked oidc-device\. To change them, retire the slot with --remove-files and provision it again; or provision it with the old configuration$/);
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

  it('starts fresh once the slot home is gone (retire --remove-files)', async () => {
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
