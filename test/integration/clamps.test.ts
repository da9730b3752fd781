// Issue 11, end to end on the real dev server: a device server that says its code and
// its tokens live 1e13 seconds and asks for polls every 0.0001 s. Before the clamps the
// slot's workflow threw on an invalid date at every retry; now the slot ends active
// with a usable expiry, and the server was not polled in a tight loop.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_TOKEN_EXPIRES_IN_S } from '../../providers/oauth';
import { uniqueName } from '../harness';
import { startScriptedDeviceServer, type ScriptedDeviceServer } from '../peers/device-server';
import { startSlotRig, waitForPhase, type SlotRig } from '../slot-fixtures';

describe('server values clamped before any date is made of them', () => {
  let rig: SlotRig;
  let server: ScriptedDeviceServer;
  beforeAll(async () => {
    rig = await startSlotRig();
    server = await startScriptedDeviceServer({ intervalSec: 0.0001, deviceCodeExpiresInSec: 1e13, tokenExpiresInSec: 1e13 });
  });
  afterAll(async () => {
    await rig?.close();
    await server?.close();
  });

  it('expires_in 1e13 and interval 0.0001: the slot ends active with an expiry a year ahead at most, polled at the floor', async () => {
    server.script(['pending', 'approve']);
    const slotId = uniqueName('clamp');
    await rig.slots.provision({ slotId, provider: 'oidc-device', providerConfig: { issuer: server.issuer, clientId: 'device-client' }, host: rig.workers.hostName });
    const status = await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin', 'degraded'], 40_000);
    expect(status.phase).toBe('active');
    expect(status.expiresAt).toBeDefined();
    expect(() => new Date(status.expiresAt as number).toISOString()).not.toThrow();
    expect(status.expiresAt).toBeLessThanOrEqual(Date.now() + MAX_TOKEN_EXPIRES_IN_S * 1000);
    // The rig's floor is 1 s (production's 5 s): not a tight loop.
    expect(server.polls).toHaveLength(2);
    expect((server.polls[1] as number) - (server.polls[0] as number)).toBeGreaterThanOrEqual(950);
    const tokens = JSON.parse(await readFile(join(rig.slotsDir, slotId, '.oidc/tokens.json'), 'utf8')) as { refresh_token: string };
    expect(tokens.refresh_token).toBe(server.issued[0]?.refresh_token);
    await rig.slots.retire(slotId);
    await waitForPhase(rig.slots, slotId, ['retired']);
  }, 90_000);
});
