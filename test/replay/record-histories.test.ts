// Records the histories that replay.test.ts replays, from today's workflow code, on the
// run's dev server with the fixture CLIs and the test peers. Runs only when asked:
//   npm run histories:record
// Re-record after an intended change to workflow code (a new patch, a new path), and
// commit test/fixtures/histories/*.json. Every `*.json` there is rewritten; frozen/ and v1/ never are.
// One scenario again: npm run histories:record -- -t 'pool'
import { execFile } from 'node:child_process';
import { readdir, rm, unlink, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { NativeConnection, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createSharedActivities } from '../../activities/index';
import { ensureSlotHome, writeSecretFileAtomic } from '../../activities/credential-store';
import { PoolClient } from '../../client/pool-client';
import { poolWorkflowId } from '../../common/pool';
import { slotWorkflowId } from '../../common/slot';
import type { SlotInput } from '../../common/slot-input';
import { createLogger } from '../../workers/logger';
import { obtainTemporalCli } from '../../workers/temporal-binaries';
import { uniqueName, workflowBundle } from '../harness';
import { startScriptedDeviceServer, type ScriptedDeviceServer } from '../peers/device-server';
import { startProbeApi, type ProbeApi } from '../peers/probe-api';
import { startTokenServer, type TokenServer } from '../peers/token-server';
import { answerDevice, claudeCode, startSlotRig, stateOf, waitForPhase, waitForPrompt, type SlotRig } from '../slot-fixtures';
import { allOld, HISTORIES_DIR, historyFile, SCENARIOS, takesOldBranch, TWINNED, type RecordedKind, type ScenarioName } from './histories';

const CLAUDE_CLIENT_ID = '9d1c250a-e61b-44d9-88ed-5944d1962f5e';
const CODEX_CLIENT_ID = 'app_EMoamEEZ73f0CkXaXp7hrann';
const FIXTURE_TOKENS = { accessToken: 'sk-ant-oat01-fixture-access-0000000000', refreshToken: 'sk-ant-ort01-fixture-refresh-000000000' };
const CODEX_TOKENS = { accessToken: 'codex-fixture-access-000000000000', refreshToken: 'codex-fixture-refresh-00000000000' };
const SETUP_TOKEN = `sk-ant-oat01-${'replayFIXTUREsetup'.repeat(4)}-zzAA`;

describe.runIf(process.env.RECORD_HISTORIES)('record histories for replay', () => {
  let rig: SlotRig;
  let temporal: string;
  let server: TokenServer;
  let codexServer: TokenServer;
  let deviceServer: ScriptedDeviceServer;
  let probeApi: ProbeApi;
  let shared: Worker;
  let sharedRunning: Promise<void>;
  let sharedConnection: NativeConnection;
  let pools: PoolClient;
  /** Access tokens the stand-in provider API refuses (401); it takes any other. */
  const refused = new Set<string>();
  /** Workflow id → the scenario its runs belong to (whose `oldBranches` they take). */
  const scenarioOf = new Map<string, ScenarioName>();

  beforeAll(async () => {
    // A scenario that is gone leaves no file behind (each scenario's own files are replaced when it is saved).
    for (const f of await readdir(HISTORIES_DIR)) if (f.endsWith('.json') && !Object.keys(SCENARIOS).includes(f.split('.')[0] as string)) await unlink(`${HISTORIES_DIR}/${f}`);
    server = await startTokenServer({ defaultClientId: CLAUDE_CLIENT_ID, accessTtlSec: 8 * 3600 });
    codexServer = await startTokenServer({ defaultClientId: CODEX_CLIENT_ID, accessTtlSec: 8 * 3600 });
    deviceServer = await startScriptedDeviceServer({ intervalSec: 1 });
    probeApi = await startProbeApi((token) => !refused.has(token));
    // The host's workers (PTYs, files) from the rig; the shared queue's (workflows) below, so that
    // it can answer `patched()` as a worker from before a patch did, for the scenarios that ask.
    rig = await startSlotRig(
      {
        CLAUDE_TOKEN_URL: server.claudeTokenUrl,
        CODEX_TOKEN_URL: codexServer.codexTokenUrl,
        CLAUDE_PROBE_BASE_URL: probeApi.url,
        CODEX_PROBE_BASE_URL: `${probeApi.url}/backend-api`,
        FIXTURE_CLAUDE_ACCESS_TOKEN: FIXTURE_TOKENS.accessToken,
        FIXTURE_CLAUDE_REFRESH_TOKEN: FIXTURE_TOKENS.refreshToken,
        FIXTURE_CODEX_ACCESS_TOKEN: CODEX_TOKENS.accessToken,
        FIXTURE_CODEX_REFRESH_TOKEN: CODEX_TOKENS.refreshToken,
        FIXTURE_CLAUDE_SETUP_TOKEN: SETUP_TOKEN,
      },
      { roles: ['host'] },
    );
    sharedConnection = await NativeConnection.connect({ address: inject('temporalAddress') });
    shared = await Worker.create({
      connection: sharedConnection,
      namespace: 'default',
      taskQueue: rig.workers.sharedTaskQueue,
      workflowBundle: await workflowBundle(),
      activities: createSharedActivities({ log: createLogger('warn') }),
      patchActivationCallback: ({ workflowInfo, patchId }) => {
        const scenario = scenarioOf.get(workflowInfo.workflowId);
        return scenario === undefined || !takesOldBranch(scenario, patchId);
      },
    });
    sharedRunning = shared.run();
    pools = new PoolClient(rig.slots);
    const cli = await obtainTemporalCli();
    if (cli.type !== 'existing-path') throw new Error('recording needs a local temporal CLI');
    temporal = cli.path;
  }, 120_000);
  afterAll(async () => {
    shared?.shutdown();
    await sharedRunning;
    await sharedConnection?.close();
    await rig?.close();
    await server?.close();
    await codexServer?.close();
    await deviceServer?.close();
    await probeApi?.close();
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

  /** Saves the workflow's latest run, and its earlier runs (continue-as-new) as `.run-<n>`. */
  async function save(scenario: ScenarioName, kind: RecordedKind, id: string): Promise<void> {
    const runs: string[] = [];
    for await (const wf of rig.slots.client.workflow.list({ query: `WorkflowId = '${id}'` })) runs.push(wf.runId);
    const latest = await rig.slots.client.workflow.getHandle(id).describe();
    const earlier = runs.filter((r) => r !== latest.runId).reverse();
    for (const f of await readdir(HISTORIES_DIR)) if (f.startsWith(`${scenario}.${kind}.`)) await unlink(`${HISTORIES_DIR}/${f}`);
    for (const [i, runId] of earlier.entries()) await writeFile(`${HISTORIES_DIR}/${historyFile(scenario, kind, i + 1)}`, await show(id, runId));
    await writeFile(`${HISTORIES_DIR}/${historyFile(scenario, kind)}`, await show(id));
  }

  /** A slot id for `scenario`; its workflows take the old branch of the scenario's `oldBranches`. */
  const slotFor = (scenario: ScenarioName, prefix: string): string => {
    const slotId = uniqueName(prefix);
    scenarioOf.set(slotWorkflowId(slotId), scenario);
    return slotId;
  };
  /** A scenario and its twin with every patch's old branch (histories.ts, TWINNED). */
  const both = <T extends (typeof TWINNED)[number]>(scenario: T): [T, ReturnType<typeof allOld<T>>] => [scenario, allOld(scenario)];

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

  /** A Claude login through the fixture CLI: the code typed, the login probed, the slot active. */
  const loginClaude = async (slotId: string) => {
    server.issue({ tokens: FIXTURE_TOKENS });
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName });
    await rig.slots.submitCode(slotId, claudeCode(await waitForPrompt(rig.slots, slotId)));
    expect((await waitForPhase(rig.slots, slotId, ['active'])).phase).toBe('active');
  };

  it.each(both('login-success'))('login success (%s)', async (scenario) => {
    const slotId = slotFor(scenario, 'replay-ok');
    await loginClaude(slotId);
    await retired(slotId, true);
    await save(scenario, 'slot', slotWorkflowId(slotId));
  });

  it.each(both('login-bad-code-then-success'))('bad code, then success (%s)', async (scenario) => {
    const slotId = slotFor(scenario, 'replay-bad');
    server.issue({ tokens: FIXTURE_TOKENS });
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName });
    const first = await waitForPrompt(rig.slots, slotId);
    await rig.slots.submitCode(slotId, `wrong#${stateOf(first.prompt.url)}`);
    const second = await waitForPrompt(rig.slots, slotId, first.prompt.url);
    await rig.slots.submitCode(slotId, claudeCode(second));
    await waitForPhase(rig.slots, slotId, ['active']);
    await retired(slotId);
    await save(scenario, 'slot', slotWorkflowId(slotId));
  });

  it.each(both('login-timeout'))('timeout (%s)', async (scenario) => {
    const slotId = slotFor(scenario, 'replay-timeout');
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName, login: { operatorTimeoutMs: 2000 } });
    await waitForPhase(rig.slots, slotId, ['needs-relogin']);
    await retired(slotId);
    await save(scenario, 'slot', slotWorkflowId(slotId));
  });

  it.each(both('refresh-transient-then-success'))('adopted credential, refreshed after a transient failure (%s)', async (scenario) => {
    const slotId = slotFor(scenario, 'replay-refresh');
    await adopt(slotId, { refresh: { backoff: { initialMs: 200 } } });
    server.script([{ status: 503 }]);
    await rig.slots.refreshNow(slotId);
    await rig.slots.waitFor(slotId, (s) => s.lastOutcome?.message.startsWith('refreshed after 2 attempts') === true, { timeoutMs: 20_000, pollMs: 100 });
    await retired(slotId);
    await save(scenario, 'slot', slotWorkflowId(slotId));
  });

  it.each(both('permanent-failure-relogin-active'))('permanent failure, relogin, active (%s)', async (scenario) => {
    const slotId = slotFor(scenario, 'replay-revoked');
    const issued = await adopt(slotId);
    server.revoke(issued.refreshToken);
    await rig.slots.refreshNow(slotId);
    const waiting = await waitForPrompt(rig.slots, slotId);
    server.issue({ tokens: FIXTURE_TOKENS });
    await rig.slots.submitCode(slotId, claudeCode(waiting));
    await waitForPhase(rig.slots, slotId, ['active']);
    await retired(slotId);
    await save(scenario, 'slot', slotWorkflowId(slotId));
  });

  it.each(both('continue-as-new'))('continue-as-new (%s)', async (scenario) => {
    const slotId = slotFor(scenario, 'replay-can');
    await adopt(slotId, { maxHistoryEvents: 1 });
    await rig.slots.refreshNow(slotId);
    await rig.slots.waitFor(slotId, (s) => s.lastOutcome?.message.startsWith('refreshed') === true, { timeoutMs: 20_000, pollMs: 100 });
    await retired(slotId);
    await save(scenario, 'slot', slotWorkflowId(slotId));
  });

  it.each(both('retire-during-login'))('retire during login (%s)', async (scenario) => {
    const slotId = slotFor(scenario, 'replay-retire');
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName });
    await waitForPrompt(rig.slots, slotId);
    await retired(slotId, true);
    await save(scenario, 'slot', slotWorkflowId(slotId));
  });

  it('an operator probe: the token is refused, refreshed, and the new one accepted', async () => {
    const slotId = slotFor('probe-refused-then-refreshed', 'replay-probe');
    const issued = await adopt(slotId);
    refused.add(issued.accessToken);
    expect(await rig.slots.probe(slotId)).toMatchObject({ outcome: 'ok' });
    await retired(slotId);
    await save('probe-refused-then-refreshed', 'slot', slotWorkflowId(slotId));
  });

  it.each([...both('credential-lost-needs-login'), 'credential-lost-before-restore'] as const)('the credential file is lost, no backup store: a login is needed (%s)', async (scenario) => {
    const slotId = slotFor(scenario, 'replay-lost');
    await adopt(slotId);
    await rm(`${rig.slotsDir}/${slotId}/.claude/.credentials.json`);
    await rig.slots.refreshNow(slotId);
    await waitForPrompt(rig.slots, slotId);
    await retired(slotId);
    await save(scenario, 'slot', slotWorkflowId(slotId));
  });

  it.each(both('codex-device-login-refresh-retire'))('codex: device login approved, probed, refreshed, retired (%s)', async (scenario) => {
    const slotId = slotFor(scenario, 'replay-codex');
    codexServer.issue({ tokens: CODEX_TOKENS });
    await rig.slots.provision({ slotId, provider: 'codex', host: rig.workers.hostName });
    const waiting = await waitForPrompt(rig.slots, slotId);
    await answerDevice(rig, waiting.prompt.userCode as string, 'approve');
    expect((await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin'])).phase).toBe('active');
    await rig.slots.refreshNow(slotId);
    await rig.slots.waitFor(slotId, (s) => s.lastOutcome?.message.startsWith('refreshed') === true, { timeoutMs: 20_000, pollMs: 100 });
    await retired(slotId, true);
    await save(scenario, 'slot', slotWorkflowId(slotId));
  });

  it.each(both('setup-token-login-retire'))('claude-setup-token: a bad code, then the long-lived token; retired (%s)', async (scenario) => {
    const slotId = slotFor(scenario, 'replay-setup');
    await rig.slots.provision({ slotId, provider: 'claude-setup-token', host: rig.workers.hostName });
    const first = await waitForPrompt(rig.slots, slotId);
    await rig.slots.submitCode(slotId, `not-the-code#${stateOf(first.prompt.url)}`);
    const second = await waitForPrompt(rig.slots, slotId, first.prompt.url);
    await rig.slots.submitCode(slotId, claudeCode(second));
    expect((await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin'])).phase).toBe('active');
    await retired(slotId, true);
    await save(scenario, 'slot', slotWorkflowId(slotId));
  });

  it.each(both('device-login-refresh-retire'))('device flow: approved, refreshed, retired with revocation (%s)', async (scenario) => {
    const slotId = slotFor(scenario, 'replay-device');
    deviceServer.script(['pending', 'slow_down', 'approve']);
    await rig.slots.provision({ slotId, provider: 'oidc-device', providerConfig: { issuer: deviceServer.issuer, clientId: 'device-client' }, host: rig.workers.hostName });
    expect((await waitForPhase(rig.slots, slotId, ['active'], 40_000)).phase).toBe('active');
    await rig.slots.refreshNow(slotId);
    await rig.slots.waitFor(slotId, (s) => s.lastOutcome?.message.startsWith('refreshed') === true, { timeoutMs: 20_000, pollMs: 100 });
    await retired(slotId);
    await save(scenario, 'slot', slotWorkflowId(slotId));
  });

  it.each(both('pool-lease-auth-failure'))('a pool: lease, the provider refuses the token, the slot answers, lease again (%s)', async (scenario) => {
    const slotId = slotFor(scenario, 'replay-member');
    const issued = await adopt(slotId);
    const pool = uniqueName('replay-pool');
    scenarioOf.set(poolWorkflowId(pool), scenario);
    // Every lease asks the slot afresh (no census cache): the second lease sees the slot refreshed.
    await pools.create({ pool, provider: 'claude', slots: [slotId], censusMaxAgeMs: 0 });
    const lease = await pools.lease(pool, { holder: 'replay-runner' });
    expect(lease.slotId).toBe(slotId);
    const before = (await rig.slots.status(slotId)).refreshes;
    // The token was refused: with probes the slot probes (refused, so it refreshes); before them it refreshes.
    refused.add(issued.accessToken);
    await pools.reportAuthFailure(pool, lease.leaseId);
    await rig.slots.waitFor(slotId, (s) => s.refreshes > before && s.phase === 'active', { timeoutMs: 20_000, pollMs: 100 });
    const again = await pools.lease(pool, { holder: 'replay-runner' });
    await pools.release(pool, { leaseId: again.leaseId });
    // A pool runs until it is ended: the recording ends it here.
    await rig.slots.client.workflow.getHandle(poolWorkflowId(pool)).terminate('recorded');
    await retired(slotId);
    await save(scenario, 'pool', poolWorkflowId(pool));
    await save(scenario, 'slot', slotWorkflowId(slotId));
  });

  it('a degraded slot whose host does not answer: the refresh times out (all three at once: a minute each)', async () => {
    // A slot carried over continue-as-new while degraded, on a host with no worker: the refresh's
    // activity is never taken and times out after its minute.
    const record = async (scenario: ScenarioName): Promise<void> => {
      const slotId = slotFor(scenario, 'replay-deadline');
      const now = Date.now();
      const input: SlotInput = {
        slotId,
        provider: 'claude',
        host: uniqueName('host-down'),
        carried: {
          phase: 'degraded',
          expiresAt: now + 10 * 60_000,
          lastRefresh: now - 7 * 3600_000,
          nextRefreshAt: now - 60_000,
          account: 'fixture',
          logins: 0,
          refreshes: 3,
          consecutiveFailures: 1,
          lastError: 'HTTP 503 from the token endpoint',
          runs: 1,
          nextProbeAt: now + 6 * 3600_000,
          pending: { login: false, refresh: false, retire: undefined },
        },
      };
      const id = slotWorkflowId(slotId);
      await rig.slots.client.workflow.start('slotWorkflow', { workflowId: id, taskQueue: rig.workers.sharedTaskQueue, args: [input] });
      const { reached, status } = await rig.slots.waitFor(slotId, (s) => s.lastOutcome?.kind === 'refresh-failed', { timeoutMs: 100_000, pollMs: 250 });
      expect(reached, `${scenario}: ${JSON.stringify(status)}`).toBe(true);
      // Its host is down for good: retiring would wait for it.
      await rig.slots.client.workflow.getHandle(id).terminate('recorded');
      await save(scenario, 'slot', id);
    };
    await Promise.all([...both('refresh-timeout-stays-degraded'), 'refresh-timeout-before-transient-failures' as const].map(record));
  }, 150_000);
});
