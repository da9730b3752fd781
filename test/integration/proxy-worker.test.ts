// A slot host behind an operator's proxy: the worker process runs with HTTPS_PROXY and
// NODE_EXTRA_CA_CERTS, its provider's hosts are public addresses only the proxy reaches
// (routed to local TLS stand-ins with a per-run CA), and a whole login → probe → refresh →
// probe, and the operator's notice, go through the proxy. A proxy that starts asking
// for credentials makes the refresh fail transiently, naming the proxy, never the slot's login.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { SlotClient } from '../../client/slot-client';
import { FailureType } from '../../common/failures';
import { slotWorkflowId } from '../../common/slot';
import { devServerClient, uniqueName } from '../harness';
import { makeHostPki, startConnectProxy, startTlsRelay, type ConnectProxy, type TlsRelay } from '../peers/connect-proxy';
import { startScriptedDeviceServer, type ScriptedDeviceServer } from '../peers/device-server';
import { startProbeApi, type ProbeApi } from '../peers/probe-api';
import { startTokenServer, type TokenServer } from '../peers/token-server';
import { startWebhookReceiver, type WebhookReceiver } from '../peers/webhook-receiver';
import { FIXTURE_BIN, stateOf, waitForPhase, waitForPrompt } from '../slot-fixtures';
import { spawnWorkerProcess, stopWorkerProcess, untilPolling, type WorkerProcess } from '../worker-process';

const CLAUDE_CLIENT_ID = '9d1c250a-e61b-44d9-88ed-5944d1962f5e';
/** Public addresses: the endpoint guard lets them through; only the proxy knows where they lead. */
const TOKEN_HOST = '93.184.216.34';
const PROBE_HOST = '93.184.216.35';
const ISSUER_HOST = '93.184.216.40';
const PLANTED = { accessToken: 'sk-ant-oat01-PROXYACCESS-1b9e7c', refreshToken: 'sk-ant-ort01-PROXYREFRESH-6d3a8f', proxyPassword: 'PROXYPASS-4c2e9a' };

describe('a slot host behind a proxy', () => {
  let dir: string;
  let tokens: TokenServer;
  let probes: ProbeApi;
  let hook: WebhookReceiver;
  let issuer: ScriptedDeviceServer;
  const notices: { kind?: string }[] = [];
  let relays: Record<string, TlsRelay>;
  let proxy: ConnectProxy;
  let worker: WorkerProcess;
  let slots: SlotClient;
  let closeConnection: () => Promise<void>;
  let client: Client;
  const host = uniqueName('host');
  const queue = uniqueName('shared');
  const route = (authority: string): number | undefined => relays[authority]?.port;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'proxy-worker-'));
    const pki = makeHostPki(dir, [TOKEN_HOST, PROBE_HOST, ISSUER_HOST, 'hooks.example']);
    issuer = await startScriptedDeviceServer({ issuer: `https://${ISSUER_HOST}` });
    tokens = await startTokenServer({ defaultClientId: CLAUDE_CLIENT_ID, accessTtlSec: 8 * 3600 });
    probes = await startProbeApi((token) => token === PLANTED.accessToken || tokens.grant('g1')?.accessToken === token);
    hook = await startWebhookReceiver(notices);
    relays = {
      [`${TOKEN_HOST}:443`]: await startTlsRelay(pki, Number(new URL(tokens.url).port)),
      [`${PROBE_HOST}:443`]: await startTlsRelay(pki, Number(new URL(probes.url).port)),
      'hooks.example:443': await startTlsRelay(pki, hook.port),
      [`${ISSUER_HOST}:443`]: await startTlsRelay(pki, issuer.port),
    };
    proxy = await startConnectProxy({ route });
    const slotsDir = join(dir, 'slots');
    worker = spawnWorkerProcess({
      TEMPORAL_ADDRESS: inject('temporalAddress'),
      SLOT_HOST: host,
      SLOTS_TASK_QUEUE: queue,
      SLOTS_DIR: slotsDir,
      LOG_LEVEL: 'info',
      // Nothing local is allowed: every endpoint of this host is "public".
      SLOTS_ALLOWED_ENDPOINT_HOSTS: '',
      // The host's own list of OAuth servers its oidc-device slots may use.
      SLOTS_OIDC_SERVERS: `https://${ISSUER_HOST}`,
      HTTPS_PROXY: `http://ops:${PLANTED.proxyPassword}@127.0.0.1:${proxy.port}`,
      NODE_EXTRA_CA_CERTS: pki.caFile,
      CLAUDE_TOKEN_URL: `https://${TOKEN_HOST}/v1/oauth/token`,
      CLAUDE_PROBE_BASE_URL: `https://${PROBE_HOST}`,
      NOTIFY_WEBHOOK_URL: 'https://hooks.example/notify',
      CLAUDE_BIN: join(FIXTURE_BIN, 'claude'),
      FIXTURE_SPEED: '0.2',
      FIXTURE_CLAUDE_ACCESS_TOKEN: PLANTED.accessToken,
      FIXTURE_CLAUDE_REFRESH_TOKEN: PLANTED.refreshToken,
      LOGIN_ENV_PASSTHROUGH: 'FIXTURE_*',
      AGENT_TOKEN_SERVICE: 'off',
    });
    const connected = await devServerClient();
    client = connected.client;
    const connection = connected.connection;
    closeConnection = () => connection.close();
    slots = new SlotClient(client, queue);
    await untilPolling(worker, client, host);
  });

  afterAll(async () => {
    if (worker) await stopWorkerProcess(worker, 'SIGTERM');
    await closeConnection?.();
    await proxy?.close();
    for (const relay of Object.values(relays ?? {})) await relay.close();
    await tokens?.close();
    await probes?.close();
    await issuer?.close();
    hook?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('logs in, probes, refreshes and notifies through the proxy; a proxy wanting other credentials is a transient, named failure', async () => {
    const slotId = uniqueName('proxied');
    tokens.issue({ tokens: { accessToken: PLANTED.accessToken, refreshToken: PLANTED.refreshToken } });
    await slots.provision({ slotId, provider: 'claude', host });
    const prompt = await waitForPrompt(slots, slotId);
    await slots.submitCode(slotId, `valid-code#${stateOf(prompt.prompt.url)}`);
    expect((await waitForPhase(slots, slotId, ['active', 'needs-relogin', 'degraded'])).phase).toBe('active');
    await slots.refreshNow(slotId);
    const refreshed = await slots.waitFor(slotId, (s) => s.lastOutcome?.message.startsWith('refreshed') === true, { timeoutMs: 30_000, pollMs: 100 });
    expect(refreshed.reached, JSON.stringify(refreshed.status)).toBe(true);

    // Every request went through the tunnel, with the proxy's credentials, to the addresses the guard checked.
    expect(tokens.requests.length).toBeGreaterThanOrEqual(1);
    expect(probes.requests.length).toBeGreaterThanOrEqual(1);
    expect(notices.some((n) => n.kind === 'awaiting-operator')).toBe(true);
    const tunnels = new Set(proxy.connects.filter((c) => c.status === 200).map((c) => c.authority));
    expect(tunnels).toEqual(new Set([`${TOKEN_HOST}:443`, `${PROBE_HOST}:443`, 'hooks.example:443']));
    expect(proxy.connects.every((c) => c.credentials === `ops:${PLANTED.proxyPassword}`)).toBe(true);

    // The proxy now wants other credentials: the refresh is retried (the Web UI shows the
    // pending activity's last failure), and the slot keeps its login.
    proxy.configure({ route, credentials: 'ops:rotated' });
    const sentBefore = tokens.requests.length;
    await slots.refreshNow(slotId);
    const deadline = Date.now() + 30_000;
    let failure: { message?: string | null; type?: string | null; attempt?: number | null } | undefined;
    while (Date.now() < deadline) {
      const { pendingActivities } = await client.workflowService.describeWorkflowExecution({ namespace: 'default', execution: { workflowId: slotWorkflowId(slotId) } });
      const refresh = pendingActivities?.find((a) => a.activityType?.name === 'refreshCredential' && a.lastFailure);
      if (refresh && (refresh.attempt ?? 0) >= 2) {
        failure = { message: refresh.lastFailure?.message, type: refresh.lastFailure?.applicationFailureInfo?.type, attempt: refresh.attempt };
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(failure?.type).toBe(FailureType.refreshTransient);
    expect(failure?.message).toBe(`token endpoint https://${TOKEN_HOST}/v1/oauth/token: proxy ${proxy.url} (HTTPS_PROXY) refused the credentials in HTTPS_PROXY (HTTP 407)`);
    const during = await slots.status(slotId);
    expect(['refreshing', 'active']).toContain(during.phase);
    expect(tokens.requests.length).toBe(sentBefore);
    expect(JSON.stringify(failure) + JSON.stringify(during)).not.toContain(PLANTED.proxyPassword);

    // Back to the old credentials: the next retry refreshes.
    proxy.configure({ route });
    const recovered = await slots.waitFor(slotId, (s) => s.phase === 'active' && (s.lastOutcome?.at ?? 0) > (during.lastOutcome?.at ?? 0) && s.lastOutcome?.message.startsWith('refreshed') === true, { timeoutMs: 60_000, pollMs: 200 });
    expect(recovered.reached, JSON.stringify(recovered.status)).toBe(true);
    expect(worker.output()).not.toContain(PLANTED.proxyPassword);
  });

  it('runs an OAuth device flow through the proxy: discovery, device authorization, polls, refresh, revocation', async () => {
    const slotId = uniqueName('proxied-device');
    proxy.connects.length = 0;
    issuer.script(['approve']);
    await slots.provision({ slotId, provider: 'oidc-device', providerConfig: { issuer: issuer.issuer, clientId: 'device-client' }, host });
    expect((await waitForPhase(slots, slotId, ['active', 'needs-relogin'], 40_000)).phase).toBe('active');
    await slots.refreshNow(slotId);
    const refreshed = await slots.waitFor(slotId, (s) => s.lastOutcome?.message.startsWith('refreshed') === true, { timeoutMs: 30_000, pollMs: 100 });
    expect(refreshed.reached, JSON.stringify(refreshed.status)).toBe(true);
    expect(issuer.issued).toHaveLength(2);
    await slots.retire(slotId);
    const retired = await waitForPhase(slots, slotId, ['retired']);
    expect(retired.lastOutcome?.message, JSON.stringify(retired)).not.toMatch(/failed/);
    expect(issuer.revocations).toEqual(['refresh_token', 'access_token']);
    const tunnels = proxy.connects.filter((c) => c.authority === `${ISSUER_HOST}:443`);
    // Discovery, device authorization, at least one poll, the refresh and two revocations, each its own tunnel.
    expect(tunnels.length).toBeGreaterThanOrEqual(6);
    expect(tunnels.every((c) => c.status === 200)).toBe(true);
  });

  it('a worker whose proxy variable is not a proxy URL stops at start, naming it and never its password', async () => {
    const bad = spawnWorkerProcess({
      TEMPORAL_ADDRESS: inject('temporalAddress'),
      SLOT_HOST: uniqueName('host'),
      SLOTS_DIR: join(dir, 'bad-slots'),
      HTTPS_PROXY: 'socks5://ops:PROXYPASS-bad-7e1d@127.0.0.1:1080',
      AGENT_TOKEN_SERVICE: 'off',
    });
    const code = await new Promise<number | null>((resolve) => bad.child.once('exit', (c) => resolve(c)));
    expect(code).toBe(2);
    expect(bad.output()).toContain('HTTPS_PROXY: only http:// and https:// proxies are supported, not socks5://');
    expect(bad.output()).not.toContain('PROXYPASS-bad-7e1d');
  });
});

