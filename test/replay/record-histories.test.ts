// Records the histories that replay.test.ts replays. Runs only when asked:
//   RECORD_HISTORIES=1 npx vitest run test/replay/record-histories.test.ts
// Re-record after an intended change to workflow code, and commit the files.
import { writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { inject } from 'vitest';
import { obtainTemporalCli } from '../../workers/temporal-binaries';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureSlotHome, writeSecretFileAtomic } from '../../activities/credential-store';
import { loginWorkflowId, refreshWorkflowId, slotWorkflowId } from '../../common/slot';
import { startScriptedDeviceServer, type ScriptedDeviceServer } from '../peers/device-server';
import { startTokenServer, type TokenServer } from '../peers/token-server';
import { uniqueName } from '../harness';
import { claudeCode, startSlotRig, stateOf, waitForPhase, waitForPrompt, type SlotRig } from '../slot-fixtures';
import { HISTORIES_DIR } from './histories';

describe.runIf(process.env.RECORD_HISTORIES)('record histories for replay', () => {
  let rig: SlotRig;
  let temporal: string;
  let server: TokenServer;
  let deviceServer: ScriptedDeviceServer;
  beforeAll(async () => {
    server = await startTokenServer({ defaultClientId: '9d1c250a-e61b-44d9-88ed-5944d1962f5e' });
    deviceServer = await startScriptedDeviceServer({ intervalSec: 1 });
    rig = await startSlotRig({ CLAUDE_TOKEN_URL: server.claudeTokenUrl });
    const cli = await obtainTemporalCli();
    if (cli.type !== 'existing-path') throw new Error('recording needs a local temporal CLI');
    temporal = cli.path;
  });
  afterAll(async () => {
    await rig?.close();
    await server?.close();
    await deviceServer?.close();
  });

  async function save(name: string, slotId: string, logins: number, refreshes = 0): Promise<void> {
    const ids: Array<[string, string]> = [
      ['slot', slotWorkflowId(slotId)],
      ...Array.from({ length: logins }, (_, i): [string, string] => [`login-${i + 1}`, loginWorkflowId(slotId, i + 1)]),
      ...Array.from({ length: refreshes }, (_, i): [string, string] => [`refresh-${i + 1}`, refreshWorkflowId(slotId, i + 1)]),
    ];
    for (const [kind, workflowId] of ids) {
      // The temporal CLI writes the proto JSON form that historyFromJSON reads.
      const { stdout } = await promisify(execFile)(
        temporal,
        ['workflow', 'show', '--address', inject('temporalAddress'), '--workflow-id', workflowId, '--output', 'json'],
        { maxBuffer: 64 * 1024 * 1024 },
      );
      await writeFile(`${HISTORIES_DIR}/${name}.${kind}.json`, `${JSON.stringify(JSON.parse(stdout), null, 1)}\n`);
    }
  }

  it('success', async () => {
    const slotId = uniqueName('replay-ok');
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName });
    await rig.slots.submitCode(slotId, claudeCode(await waitForPrompt(rig.slots, slotId)));
    expect((await waitForPhase(rig.slots, slotId, ['active'])).phase).toBe('active');
    await rig.slots.retire(slotId, { removeFiles: true });
    await waitForPhase(rig.slots, slotId, ['retired']);
    await save('login-success', slotId, 1);
  });

  it('bad code, then success', async () => {
    const slotId = uniqueName('replay-bad');
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName });
    const first = await waitForPrompt(rig.slots, slotId);
    await rig.slots.submitCode(slotId, `wrong#${stateOf(first.prompt.url)}`);
    const second = await waitForPrompt(rig.slots, slotId, first.prompt.url);
    await rig.slots.submitCode(slotId, claudeCode(second));
    await waitForPhase(rig.slots, slotId, ['active']);
    await rig.slots.retire(slotId);
    await waitForPhase(rig.slots, slotId, ['retired']);
    await save('login-bad-code-then-success', slotId, 1);
  });

  it('adopted credential, refreshed after a transient failure', async () => {
    const slotId = uniqueName('replay-refresh');
    const issued = server.issue();
    await writeSecretFileAtomic(
      await ensureSlotHome(rig.slotsDir, slotId),
      '.claude/.credentials.json',
      JSON.stringify({ claudeAiOauth: { accessToken: issued.accessToken, refreshToken: issued.refreshToken, expiresAt: Date.now() + 8 * 3600_000, scopes: [] } }),
    );
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName, adoptExisting: true, options: { refresh: { backoff: { initialMs: 200 } } } });
    await waitForPhase(rig.slots, slotId, ['active']);
    server.script([{ status: 503 }]);
    await rig.slots.refreshNow(slotId);
    await rig.slots.waitFor(slotId, (s) => s.lastOutcome?.message.startsWith('refreshed after 2 attempts') === true, { timeoutMs: 20_000, pollMs: 100 });
    await rig.slots.retire(slotId);
    await waitForPhase(rig.slots, slotId, ['retired']);
    await save('refresh-transient-then-success', slotId, 0, 2);
  });

  it('device flow: polled, approved, refreshed, retired with revocation', async () => {
    const slotId = uniqueName('replay-device');
    deviceServer.script(['pending', 'slow_down', 'approve']);
    await rig.slots.provision({ slotId, provider: 'oidc-device', providerConfig: { issuer: deviceServer.issuer, clientId: 'device-client' }, host: rig.workers.hostName });
    expect((await waitForPhase(rig.slots, slotId, ['active'], 40_000)).phase).toBe('active');
    await rig.slots.refreshNow(slotId);
    await rig.slots.waitFor(slotId, (s) => s.lastOutcome?.message.startsWith('refreshed') === true, { timeoutMs: 20_000, pollMs: 100 });
    await rig.slots.retire(slotId);
    await waitForPhase(rig.slots, slotId, ['retired']);
    await save('device-login-refresh-retire', slotId, 1, 2);
  });

  it('timeout', async () => {
    const slotId = uniqueName('replay-timeout');
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName, login: { operatorTimeoutMs: 2000 } });
    await waitForPhase(rig.slots, slotId, ['needs-relogin']);
    await rig.slots.retire(slotId);
    await waitForPhase(rig.slots, slotId, ['retired']);
    await save('login-timeout', slotId, 1);
  });
});
