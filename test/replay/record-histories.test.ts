// Records the histories that replay.test.ts replays. Runs only when asked:
//   RECORD_HISTORIES=1 npx vitest run test/replay/record-histories.test.ts
// Re-record after an intended change to workflow code, and commit the files.
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ensureSlotHome, writeSecretFileAtomic } from '../../activities/credential-store';
import { slotWorkflowId } from '../../common/slot';
import { obtainTemporalCli } from '../../workers/temporal-binaries';
import { uniqueName } from '../harness';
import { startScriptedDeviceServer, type ScriptedDeviceServer } from '../peers/device-server';
import { startTokenServer, type TokenServer } from '../peers/token-server';
import { claudeCode, startSlotRig, stateOf, waitForPhase, waitForPrompt, type SlotRig } from '../slot-fixtures';
import { HISTORIES_DIR, type SCENARIOS } from './histories';

const FIXTURE_TOKENS = { accessToken: 'sk-ant-oat01-fixture-access-0000000000', refreshToken: 'sk-ant-ort01-fixture-refresh-000000000' };

describe.runIf(process.env.RECORD_HISTORIES)('record histories for replay', () => {
  let rig: SlotRig;
  let temporal: string;
  let server: TokenServer;
  let deviceServer: ScriptedDeviceServer;
  beforeAll(async () => {
    server = await startTokenServer({ defaultClientId: '9d1c250a-e61b-44d9-88ed-5944d1962f5e', accessTtlSec: 8 * 3600 });
    deviceServer = await startScriptedDeviceServer({ intervalSec: 1 });
    rig = await startSlotRig({
      CLAUDE_TOKEN_URL: server.claudeTokenUrl,
      FIXTURE_CLAUDE_ACCESS_TOKEN: FIXTURE_TOKENS.accessToken,
      FIXTURE_CLAUDE_REFRESH_TOKEN: FIXTURE_TOKENS.refreshToken,
    });
    const cli = await obtainTemporalCli();
    if (cli.type !== 'existing-path') throw new Error('recording needs a local temporal CLI');
    temporal = cli.path;
  });
  afterAll(async () => {
    await rig?.close();
    await server?.close();
    await deviceServer?.close();
  });

  const show = async (workflowId: string, runId?: string): Promise<string> => {
    // The temporal CLI writes the proto JSON form that historyFromJSON reads.
    const { stdout } = await promisify(execFile)(
      temporal,
      ['workflow', 'show', '--address', inject('temporalAddress'), '--workflow-id', workflowId, ...(runId ? ['--run-id', runId] : []), '--output', 'json'],
      { maxBuffer: 64 * 1024 * 1024 },
    );
    return `${JSON.stringify(JSON.parse(stdout), null, 1)}\n`;
  };

  /** Saves the slot's latest run, and its earlier runs (continue-as-new) as `.run-<n>`. */
  async function save(name: (typeof SCENARIOS)[number], slotId: string): Promise<void> {
    const id = slotWorkflowId(slotId);
    const runs: string[] = [];
    for await (const wf of rig.slots.client.workflow.list({ query: `WorkflowId = '${id}'` })) runs.push(wf.runId);
    const latest = await rig.slots.client.workflow.getHandle(id).describe();
    const earlier = runs.filter((r) => r !== latest.runId).reverse();
    for (const [i, runId] of earlier.entries()) await writeFile(`${HISTORIES_DIR}/${name}.run-${i + 1}.json`, await show(id, runId));
    await writeFile(`${HISTORIES_DIR}/${name}.slot.json`, await show(id));
  }

  const adopt = async (slotId: string, options: Record<string, unknown> = {}) => {
    const issued = server.issue();
    await writeSecretFileAtomic(
      await ensureSlotHome(rig.slotsDir, slotId),
      '.claude/.credentials.json',
      JSON.stringify({ claudeAiOauth: { accessToken: issued.accessToken, refreshToken: issued.refreshToken, expiresAt: Date.now() + 8 * 3600_000, scopes: [] } }),
    );
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName, adoptExisting: true, options });
    await waitForPhase(rig.slots, slotId, ['active']);
    return issued;
  };

  const retired = async (slotId: string, removeFiles = false) => {
    await rig.slots.retire(slotId, { removeFiles });
    await rig.slots.client.workflow.getHandle(slotWorkflowId(slotId)).result();
  };

  it('login success', async () => {
    const slotId = uniqueName('replay-ok');
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName });
    await rig.slots.submitCode(slotId, claudeCode(await waitForPrompt(rig.slots, slotId)));
    expect((await waitForPhase(rig.slots, slotId, ['active'])).phase).toBe('active');
    await retired(slotId, true);
    await save('login-success', slotId);
  });

  it('bad code, then success', async () => {
    const slotId = uniqueName('replay-bad');
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName });
    const first = await waitForPrompt(rig.slots, slotId);
    await rig.slots.submitCode(slotId, `wrong#${stateOf(first.prompt.url)}`);
    const second = await waitForPrompt(rig.slots, slotId, first.prompt.url);
    await rig.slots.submitCode(slotId, claudeCode(second));
    await waitForPhase(rig.slots, slotId, ['active']);
    await retired(slotId);
    await save('login-bad-code-then-success', slotId);
  });

  it('timeout', async () => {
    const slotId = uniqueName('replay-timeout');
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName, login: { operatorTimeoutMs: 2000 } });
    await waitForPhase(rig.slots, slotId, ['needs-relogin']);
    await retired(slotId);
    await save('login-timeout', slotId);
  });

  it('adopted credential, refreshed after a transient failure', async () => {
    const slotId = uniqueName('replay-refresh');
    await adopt(slotId, { refresh: { backoff: { initialMs: 200 } } });
    server.script([{ status: 503 }]);
    await rig.slots.refreshNow(slotId);
    await rig.slots.waitFor(slotId, (s) => s.lastOutcome?.message.startsWith('refreshed after 2 attempts') === true, { timeoutMs: 20_000, pollMs: 100 });
    await retired(slotId);
    await save('refresh-transient-then-success', slotId);
  });

  it('permanent failure, relogin, active', async () => {
    const slotId = uniqueName('replay-revoked');
    const issued = await adopt(slotId);
    server.revoke(issued.refreshToken);
    await rig.slots.refreshNow(slotId);
    const waiting = await waitForPrompt(rig.slots, slotId);
    server.issue({ tokens: FIXTURE_TOKENS });
    await rig.slots.submitCode(slotId, claudeCode(waiting));
    await waitForPhase(rig.slots, slotId, ['active']);
    await retired(slotId);
    await save('permanent-failure-relogin-active', slotId);
  });

  it('continue-as-new', async () => {
    const slotId = uniqueName('replay-can');
    await adopt(slotId, { maxHistoryEvents: 1 });
    await rig.slots.refreshNow(slotId);
    await rig.slots.waitFor(slotId, (s) => s.lastOutcome?.message.startsWith('refreshed') === true, { timeoutMs: 20_000, pollMs: 100 });
    await retired(slotId);
    await save('continue-as-new', slotId);
  });

  it('retire during login', async () => {
    const slotId = uniqueName('replay-retire');
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName });
    await waitForPrompt(rig.slots, slotId);
    await retired(slotId, true);
    await save('retire-during-login', slotId);
  });

  it('device flow: approved, refreshed, retired with revocation', async () => {
    const slotId = uniqueName('replay-device');
    deviceServer.script(['pending', 'slow_down', 'approve']);
    await rig.slots.provision({ slotId, provider: 'oidc-device', providerConfig: { issuer: deviceServer.issuer, clientId: 'device-client' }, host: rig.workers.hostName });
    expect((await waitForPhase(rig.slots, slotId, ['active'], 40_000)).phase).toBe('active');
    await rig.slots.refreshNow(slotId);
    await rig.slots.waitFor(slotId, (s) => s.lastOutcome?.message.startsWith('refreshed') === true, { timeoutMs: 20_000, pollMs: 100 });
    await retired(slotId);
    await save('device-login-refresh-retire', slotId);
  });
});
