// Pending device logins cannot starve a host (issue 23, finding 8), on the real dev server
// with a real token endpoint, probe API and device-flow server on 127.0.0.1: a device
// login's wait holds an activity for up to an hour, so with more of them pending than
// the host's queue runs at once, another slot on the same host is still refreshed,
// probed and retired promptly, and the device logins stay pending.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ensureSlotHome, writeSecretFileAtomic } from '../../activities/credential-store';
import { uniqueName } from '../harness';
import { startScriptedDeviceServer, type ScriptedDeviceServer } from '../peers/device-server';
import { startProbeApi, type ProbeApi } from '../peers/probe-api';
import { startTokenServer, type TokenServer } from '../peers/token-server';
import { startSlotRig, waitForPhase, type SlotRig } from '../slot-fixtures';

const CLAUDE_CLIENT_ID = '9d1c250a-e61b-44d9-88ed-5944d1962f5e';
/** Activities the host's queue runs at once in this process: fewer than the pending device logins. */
const HOST_CONCURRENCY = 2;
const DEVICE_LOGINS = 4;
/** What "promptly" means here: an idle host does each of these in well under a second. */
const PROMPTLY_MS = 15_000;

describe('device logins pending on a host', () => {
  let tokens: TokenServer;
  let api: ProbeApi;
  let device: ScriptedDeviceServer;
  let rig: SlotRig;
  beforeAll(async () => {
    tokens = await startTokenServer({ defaultClientId: CLAUDE_CLIENT_ID, accessTtlSec: 8 * 3600 });
    api = await startProbeApi(() => true);
    // Every poll answers authorization_pending: nobody approves these devices during the test.
    device = await startScriptedDeviceServer({ intervalSec: 1, deviceCodeExpiresInSec: 600 });
    rig = await startSlotRig({ CLAUDE_TOKEN_URL: tokens.claudeTokenUrl, CLAUDE_PROBE_BASE_URL: api.url }, { maxConcurrentHostActivities: HOST_CONCURRENCY });
  });
  afterAll(async () => {
    await rig?.close();
    await device?.close();
    await api?.close();
    await tokens?.close();
  });

  it('do not hold up the refresh, probe and retirement of another slot on the same host', async () => {
    // The other slot: a Claude credential the token server issued, valid for six hours.
    const other = uniqueName('busy-host');
    const issued = tokens.issue();
    await writeSecretFileAtomic(
      await ensureSlotHome(rig.slotsDir, other),
      '.claude/.credentials.json',
      JSON.stringify({ claudeAiOauth: { accessToken: issued.accessToken, refreshToken: issued.refreshToken, expiresAt: Date.now() + 6 * 3600_000, scopes: ['user:inference'] } }),
    );
    await rig.slots.provision({ slotId: other, provider: 'claude', host: rig.workers.hostName, adoptExisting: true, options: { probe: { everyMs: 0 } } });
    await waitForPhase(rig.slots, other, ['active']);

    // More device logins waiting for an operator than the host's queue runs at once.
    const waiting = Array.from({ length: DEVICE_LOGINS }, () => uniqueName('device-wait'));
    for (const slotId of waiting) {
      await rig.slots.provision({ slotId, provider: 'oidc-device', providerConfig: { issuer: device.issuer, clientId: 'device-client' }, host: rig.workers.hostName });
    }
    for (const slotId of waiting) await waitForPhase(rig.slots, slotId, ['awaiting-operator']);
    expect(device.deviceCodes).toHaveLength(DEVICE_LOGINS);
    // Every one of them is polling (each wait an activity that runs until approval or expiry).
    await vi.waitFor(() => expect(device.polls.length).toBeGreaterThanOrEqual(2 * DEVICE_LOGINS), { timeout: 20_000 });

    // A refresh of the other slot reaches the token server and the slot says it was refreshed.
    const asked = Date.now();
    await rig.slots.refreshNow(other);
    const { status: refreshed, reached } = await rig.slots.waitFor(other, (s) => s.lastOutcome?.message.startsWith('refreshed') === true, { timeoutMs: PROMPTLY_MS, pollMs: 100 });
    expect({ reached, phase: refreshed.phase, outcome: refreshed.lastOutcome?.message }).toMatchObject({ reached: true, phase: 'active' });
    const seen = tokens.requests.filter((r) => r.refreshToken === issued.refreshToken);
    expect(seen.map((r) => r.status)).toEqual([200]);
    expect(seen[0]?.at).toBeGreaterThanOrEqual(asked);
    const rotated = tokens.grant(issued.grantId)?.accessToken as string;
    const file = JSON.parse(await readFile(join(rig.slotsDir, other, '.claude/.credentials.json'), 'utf8')) as { claudeAiOauth: { accessToken: string } };
    expect(file.claudeAiOauth.accessToken).toBe(rotated);

    // A probe proves the refreshed token at the API, and answers.
    const probed = await Promise.race([
      rig.slots.probe(other),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no probe answer within ${PROMPTLY_MS} ms`)), PROMPTLY_MS)),
    ]);
    expect(probed).toMatchObject({ outcome: 'ok', httpStatus: 200 });
    expect(api.requests.filter((r) => r.headers.authorization === `Bearer ${rotated}`).map((r) => r.status)).toEqual([200]);

    // Retiring it (files moved to the host's trash: the host queue's work) finishes too.
    await rig.slots.retire(other);
    const retired = await waitForPhase(rig.slots, other, ['retired'], PROMPTLY_MS);
    expect(retired.lastOutcome?.message).toMatch(/^retired; .*the slot home was moved to the trash on host /);

    // Meanwhile the device logins are still pending, still polled, their codes still unused.
    const pollsBefore = device.polls.length;
    for (const slotId of waiting) {
      const status = await rig.slots.status(slotId);
      expect({ slotId, phase: status.phase, logins: status.logins, userCode: status.prompt?.userCode !== undefined }).toEqual({ slotId, phase: 'awaiting-operator', logins: 1, userCode: true });
    }
    await vi.waitFor(() => expect(device.polls.length).toBeGreaterThan(pollsBefore), { timeout: 10_000 });
    expect(device.issued).toEqual([]);

    for (const slotId of waiting) await rig.slots.retire(slotId);
    for (const slotId of waiting) await waitForPhase(rig.slots, slotId, ['retired'], 30_000);
  }, 120_000);
});
