// One provision, traced end to end into a real Zipkin: slotctl (its own process)
// starts the slot, the worker (its own process) runs the workflow and its
// activities, our spans cover the login CLI's PTY and the token request. The chain
// is read back through Zipkin's query API, and no span holds a token or the code.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { SlotClient } from '../../client/slot-client';
import { devServerClient, uniqueName } from '../harness';
import { availableOrSkip, startZipkin } from '../peers/observability';
import { startTokenServer, type TokenServer } from '../peers/token-server';
import { stateOf, waitForPhase, waitForPrompt } from '../slot-fixtures';
import { fixtureWorkerEnv, spawnWorkerProcess, stopWorkerProcess, untilPolling, type WorkerProcess } from '../worker-process';

const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLAUDE_CLIENT_ID = '9d1c250a-e61b-44d9-88ed-5944d1962f5e';
const PLANTED = {
  code: 'traces-code-2c8e4a6f1d',
  accessToken: 'sk-ant-oat01-TRACESACCESS-7e1b3d5f9a2c',
  refreshToken: 'sk-ant-ort01-TRACESREFRESH-4a6c8e0b2d1f',
};
const zipkinOk = await availableOrSkip('The Zipkin server (Java, and Maven to fetch io.zipkin:zipkin-server:3.4.2:exec)', async () => {
  const { obtainZipkin } = await import('../observability-binaries');
  return obtainZipkin();
});
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface ZipkinSpan {
  traceId: string;
  id: string;
  parentId?: string;
  name: string;
  kind?: string;
  localEndpoint?: { serviceName?: string };
  tags?: Record<string, string>;
}

describe.skipIf(!zipkinOk.ok)(`traces in a real Zipkin${zipkinOk.ok ? '' : ` (skipped: ${zipkinOk.reason})`}`, () => {
  const host = uniqueName('host');
  const queue = uniqueName('shared');
  let zipkin: Awaited<ReturnType<typeof startZipkin>>;
  let server: TokenServer;
  let slotsDir: string;
  let worker: WorkerProcess;
  let slots: SlotClient;
  let closeConnection: (() => Promise<void>) | undefined;
  const baseEnv = (): Record<string, string> => ({
    TEMPORAL_ADDRESS: inject('temporalAddress'),
    SLOTS_TASK_QUEUE: queue,
    OTEL_EXPORTER_ZIPKIN_ENDPOINT: zipkin.spansUrl,
  });

  beforeAll(async () => {
    if (!zipkinOk.ok) return;
    zipkin = await startZipkin();
    server = await startTokenServer({ defaultClientId: CLAUDE_CLIENT_ID, accessTtlSec: 8 * 3600 });
    slotsDir = await mkdtemp(join(tmpdir(), 'slots-traces-'));
    worker = spawnWorkerProcess({
      ...fixtureWorkerEnv({ temporalAddress: inject('temporalAddress'), host, sharedQueue: queue, slotsDir }),
      ...baseEnv(),
      OTEL_SERVICE_NAME: 'slot-worker',
      CLAUDE_TOKEN_URL: server.claudeTokenUrl,
      FIXTURE_CLAUDE_CODE: PLANTED.code,
      FIXTURE_CLAUDE_ACCESS_TOKEN: PLANTED.accessToken,
      FIXTURE_CLAUDE_REFRESH_TOKEN: PLANTED.refreshToken,
    });
    const { client, connection } = await devServerClient();
    closeConnection = () => connection.close();
    slots = new SlotClient(client, queue);
    // A traced worker builds (once) a bundle with the workflow interceptors: it may take a while.
    await untilPolling(worker, client, host, 120_000);
  });

  afterAll(async () => {
    if (worker) await stopWorkerProcess(worker, 'SIGTERM');
    await closeConnection?.();
    await server?.close();
    await zipkin?.stop();
    if (slotsDir) await rm(slotsDir, { recursive: true, force: true });
  });

  const slotctl = async (...args: string[]): Promise<string> => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'cli/slotctl.ts', ...args], {
      cwd: PROJECT_ROOT,
      env: { ...process.env, ...baseEnv(), OTEL_SERVICE_NAME: 'slotctl' },
    });
    return stdout;
  };

  /** The trace whose root is slotctl's start of the slot, once `complete` says all of it has arrived. */
  async function traceOfProvision(slotId: string, complete: (spans: ZipkinSpan[]) => boolean): Promise<ZipkinSpan[]> {
    const deadline = Date.now() + 60_000;
    let last: ZipkinSpan[] = [];
    while (Date.now() < deadline) {
      const answer = await fetch(`${zipkin.url}/api/v2/traces?serviceName=slotctl&spanName=${encodeURIComponent('startworkflow:slotworkflow')}&limit=50&lookback=3600000`);
      expect(answer.status).toBe(200);
      const traces = (await answer.json()) as ZipkinSpan[][];
      // The start carries the workflow id: the trace of this slot, not another test's.
      const ours = traces.find((t) => t.some((s) => s.name === 'startworkflow:slotworkflow' && s.tags?.temporalWorkflowId === `slot:${slotId}`));
      if (ours) {
        last = ours;
        if (complete(ours)) return ours;
      }
      await sleep(1000);
    }
    throw new Error(`the provision trace of ${slotId} did not complete in Zipkin: ${JSON.stringify(last.map((s) => `${s.localEndpoint?.serviceName}/${s.name}`))}`);
  }

  // Five slotctl processes and a login: minutes on a loaded machine, not a timing target.
  it('carries one trace from slotctl through the slot workflow to its activities, the PTY session and the token request', { timeout: 240_000 }, async () => {
    const slotId = uniqueName('traced');
    const issued = server.issue({ tokens: { accessToken: PLANTED.accessToken, refreshToken: PLANTED.refreshToken } });
    await slotctl('provision', slotId, '--provider', 'claude', '--host', host);
    const prompted = await waitForPrompt(slots, slotId);
    await slotctl('submit-code', slotId, `${PLANTED.code}#${stateOf(prompted.prompt.url)}`);
    expect((await waitForPhase(slots, slotId, ['active', 'needs-relogin'])).phase).toBe('active');
    // A refresh that asks the token endpoint; then retire, which ends the workflow's span.
    await slotctl('refresh', slotId);
    const refreshed = await slots.waitFor(slotId, (s) => s.lastOutcome?.message.startsWith('refreshed') === true, { timeoutMs: 30_000, pollMs: 200 });
    expect(refreshed.reached).toBe(true);
    await slotctl('retire', slotId);
    await waitForPhase(slots, slotId, ['retired']);

    const named = (spans: ZipkinSpan[], name: string): ZipkinSpan[] => spans.filter((s) => s.name === name.toLowerCase());
    const spans = await traceOfProvision(
      slotId,
      (t) => named(t, 'RunWorkflow:slotWorkflow').length > 0 && named(t, 'oauth token endpoint').length > 0 && named(t, 'pty session').length > 0,
    );
    const byId = new Map(spans.map((s) => [s.id, s]));
    const parentOf = (span: ZipkinSpan | undefined): ZipkinSpan | undefined => (span?.parentId ? byId.get(span.parentId) : undefined);
    const service = (span: ZipkinSpan | undefined): string | undefined => span?.localEndpoint?.serviceName;

    // slotctl → the slot workflow: the client's span is the root, in slotctl's own service.
    const [start] = named(spans, 'StartWorkflow:slotWorkflow');
    expect(service(start)).toBe('slotctl');
    expect(start?.parentId).toBeUndefined();
    const [run] = named(spans, 'RunWorkflow:slotWorkflow');
    expect(service(run)).toBe('slot-worker');
    expect(parentOf(run)).toBe(start);

    // → the workflow's activities: scheduled by the workflow, run by the worker.
    for (const activity of ['startLogin', 'watchLogin', 'verifyCredential', 'refreshCredential']) {
      const runs = named(spans, `RunActivity:${activity}`);
      expect(runs.length, `RunActivity:${activity} in ${JSON.stringify(spans.map((s) => s.name))}`).toBeGreaterThan(0);
      for (const r of runs) {
        const scheduled = parentOf(r);
        expect(scheduled?.name).toBe(`startactivity:${activity.toLowerCase()}`);
        expect(parentOf(scheduled)).toBe(run);
      }
    }

    // Our own spans, inside the activities that made them.
    const [pty] = named(spans, 'pty session');
    expect(parentOf(pty)?.name).toBe('runactivity:startlogin');
    expect(pty?.tags).toMatchObject({ 'slot.id': slotId, 'slot.provider': 'claude', 'pty.code_typed': 'true', 'process.exit_code': '0' });
    const tokenRequests = named(spans, 'oauth token endpoint');
    expect(tokenRequests.map((s) => parentOf(s)?.name)).toEqual(['runactivity:refreshcredential']);
    expect(tokenRequests[0]?.tags).toMatchObject({ 'http.response.status_code': '200', 'url.full': server.claudeTokenUrl, 'http.request.method': 'POST' });

    // No span says a token or the operator's code.
    const everything = JSON.stringify(await (await fetch(`${zipkin.url}/api/v2/trace/${start?.traceId}`)).json());
    const grant = server.grant(issued.grantId);
    const secrets = [PLANTED.code, PLANTED.accessToken, PLANTED.refreshToken, grant?.accessToken, grant?.refreshToken].filter((s): s is string => Boolean(s));
    expect(secrets).toHaveLength(5);
    expect(everything).toContain(slotId);
    for (const secret of secrets) expect(everything).not.toContain(secret);
  });
});
