// Planted secrets (an operator's codes, access and refresh tokens) go through a
// whole provision-and-refresh run with payload encryption on; then the raw
// histories (read without the codec), search attributes, query answers, the
// status file and every line the worker logged are searched for them.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client } from '@temporalio/client';
import type { Payload } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { SlotClient } from '../../client/slot-client';
import { slotWorkflowId } from '../../common/slot';
import { AesGcmPayloadCodec, parseEncryptionKeys, slotDataConverter } from '../../client/encryption';
import { obtainTemporalCli } from '../../workers/temporal-binaries';
import { devServerClient, uniqueName } from '../harness';
import { startTokenServer, type TokenServer } from '../peers/token-server';
import { BODY_MARKER, startProbeApi, type ProbeApi } from '../peers/probe-api';
import { FIXTURE_BIN, stateOf, waitForPhase, waitForPrompt } from '../slot-fixtures';
import { spawnWorkerProcess, stopWorkerProcess, untilPolling, type WorkerProcess } from '../worker-process';

const CLAUDE_CLIENT_ID = '9d1c250a-e61b-44d9-88ed-5944d1962f5e';
const KEYS = `k2026:${Buffer.alloc(32, 7).toString('base64')}`;
const PLANTED = {
  code: 'PLANTEDCODE-5b2e9c1d7a',
  wrongCode: 'PLANTEDWRONG-8c4f1e0b3d',
  accessToken: 'sk-ant-oat01-PLANTEDACCESS-3f9a1c7e5b2d',
  refreshToken: 'sk-ant-ort01-PLANTEDREFRESH-7d2b4e6f8a1c',
};
/** Words of the token server's error text, which travel in a failure message (sealed when keys are set). */
const FAILURE_MARKER = 'PLANTEDFAILURE-2c7e9a';

/** Every string in a JSON document, plus what its base64 decodes to: payload bytes are base64 in JSON. */
function readable(json: unknown): string {
  const parts: string[] = [];
  const walk = (value: unknown): void => {
    if (typeof value === 'string') {
      parts.push(value);
      if (/^[A-Za-z0-9+/=_-]{8,}$/.test(value)) parts.push(Buffer.from(value, 'base64').toString('latin1'));
    } else if (Array.isArray(value)) value.forEach(walk);
    else if (value && typeof value === 'object') Object.values(value).forEach(walk);
  };
  walk(json);
  return parts.join('\n');
}

describe('secrets never leave the slot host in clear', () => {
  let server: TokenServer;
  /** Live probes' stand-in: every answer quotes the token it was sent, next to BODY_MARKER. */
  let probeApi: ProbeApi;
  let worker: WorkerProcess;
  let slotsDir: string;
  let slots: SlotClient;
  let plain: Client;
  let closeConnection: () => Promise<void>;
  let temporal: string;
  const host = uniqueName('host');
  const queue = uniqueName('shared');

  beforeAll(async () => {
    server = await startTokenServer({ defaultClientId: CLAUDE_CLIENT_ID, accessTtlSec: 8 * 3600 });
    probeApi = await startProbeApi(() => true);
    slotsDir = await mkdtemp(join(tmpdir(), 'slots-secrets-'));
    const cli = await obtainTemporalCli();
    if (cli.type !== 'existing-path') throw new Error('this test reads histories with a local temporal CLI');
    temporal = cli.path;
    worker = spawnWorkerProcess({
      TEMPORAL_ADDRESS: inject('temporalAddress'),
      SLOT_HOST: host,
      SLOTS_TASK_QUEUE: queue,
      SLOTS_DIR: slotsDir,
      SLOTS_ENCRYPTION_KEYS: KEYS,
      // Everything the worker can say, said.
      LOG_LEVEL: 'trace',
      CLAUDE_BIN: join(FIXTURE_BIN, 'claude'),
      CLAUDE_TOKEN_URL: server.claudeTokenUrl,
      CLAUDE_PROBE_BASE_URL: probeApi.url,
      FIXTURE_SPEED: '0.2',
      FIXTURE_CLAUDE_CODE: PLANTED.code,
      FIXTURE_CLAUDE_ACCESS_TOKEN: PLANTED.accessToken,
      FIXTURE_CLAUDE_REFRESH_TOKEN: PLANTED.refreshToken,
      LOGIN_ENV_PASSTHROUGH: 'FIXTURE_*',
    });
    const { client, connection } = await devServerClient();
    plain = client;
    closeConnection = () => connection.close();
    slots = new SlotClient(new Client({ connection, dataConverter: slotDataConverter(parseEncryptionKeys(KEYS)) }), queue);
    await untilPolling(worker, client, host);
  });

  afterAll(async () => {
    if (worker) await stopWorkerProcess(worker, 'SIGTERM');
    await closeConnection?.();
    await server?.close();
    await probeApi?.close();
    if (slotsDir) await rm(slotsDir, { recursive: true, force: true });
  });

  it('finds no planted secret in histories, search attributes, queries, the status file or logs', async () => {
    const slotId = uniqueName('secret');
    server.issue({ tokens: { accessToken: PLANTED.accessToken, refreshToken: PLANTED.refreshToken } });
    await slots.provision({ slotId, provider: 'claude', host });
    const first = await waitForPrompt(slots, slotId);
    // A wrong code (the CLI rejects it; Claude then restarts), then the right one.
    await slots.submitCode(slotId, `${PLANTED.wrongCode}#${stateOf(first.prompt.url)}`);
    const second = await waitForPrompt(slots, slotId, first.prompt.url);
    await slots.submitCode(slotId, `${PLANTED.code}#${stateOf(second.prompt.url)}`);
    expect((await waitForPhase(slots, slotId, ['active', 'needs-relogin'])).phase).toBe('active');
    await slots.refreshNow(slotId);
    const refreshed = await slots.waitFor(slotId, (s) => s.lastOutcome?.message.startsWith('refreshed') === true, { timeoutMs: 20_000, pollMs: 100 });
    expect(refreshed.reached).toBe(true);
    // A live probe with the refreshed token (the login was probed with the first one).
    expect((await slots.probe(slotId)).outcome).toBe('ok');
    const grant = server.grant('g1');
    const secrets = [PLANTED.code, PLANTED.wrongCode, PLANTED.accessToken, PLANTED.refreshToken, grant?.accessToken, grant?.refreshToken].filter(
      (s): s is string => typeof s === 'string',
    );
    expect(secrets).toHaveLength(6);
    // The rotated tokens really are on the slot's disk: they exist to be found, if leaked.
    const onDisk = await readFile(join(slotsDir, slotId, '.claude', '.credentials.json'), 'utf8');
    expect(onDisk).toContain(grant?.refreshToken);

    // A refresh the server refuses, quoting the refresh token it was sent in its error text:
    // the activity's failure carries the server's words into history.
    server.script([
      {
        status: 400,
        body: JSON.stringify({ error: 'invalid_grant', error_description: `${FAILURE_MARKER}: refresh token ${grant?.refreshToken} was revoked` }),
      },
    ]);
    await slots.refreshNow(slotId);
    const failed = await slots.waitFor(slotId, (s) => s.lastOutcome?.message.startsWith('refresh failed permanently') === true, { timeoutMs: 20_000, pollMs: 100 });
    expect(failed.reached).toBe(true);

    // One workflow holds the slot's whole life: login, code, refreshes.
    const ids = [slotWorkflowId(slotId)];
    const places: Record<string, string> = {};
    for (const workflowId of ids) {
      // Raw history as the server stores it: the temporal CLI has no codec here.
      const { stdout } = await promisify(execFile)(
        temporal,
        ['workflow', 'show', '--address', inject('temporalAddress'), '--workflow-id', workflowId, '--output', 'json'],
        { maxBuffer: 64 * 1024 * 1024 },
      );
      places[`history of ${workflowId}`] = readable(JSON.parse(stdout));
      // Raw, as the server stores them (the memo is sealed by the codec like any payload).
      const description = await plain.workflowService.describeWorkflowExecution({ namespace: 'default', execution: { workflowId } });
      places[`search attributes of ${workflowId}`] = readable(description.workflowExecutionInfo?.searchAttributes ?? {});
      places[`memo of ${workflowId}`] = readable(description.workflowExecutionInfo?.memo ?? {});
    }
    places['status query'] = JSON.stringify(await slots.status(slotId));
    places['status file'] = await readFile(join(slotsDir, slotId, 'slot-status.json'), 'utf8');
    places['worker log'] = worker.output();

    for (const [place, content] of Object.entries(places)) {
      for (const secret of secrets) {
        expect(content.includes(secret), `${place} holds a planted secret (${secret.slice(0, 14)}…)`).toBe(false);
      }
    }
    // The probes sent the tokens and got them quoted back; none of the answers' bodies went anywhere.
    expect(probeApi.requests.map((r) => r.headers.authorization)).toEqual([`Bearer ${PLANTED.accessToken}`, `Bearer ${grant?.accessToken ?? ''}`]);
    for (const [place, content] of Object.entries(places)) expect(content.includes(BODY_MARKER), `${place} holds a probe answer's body`).toBe(false);
    // The search is not blind: the worker did log at trace level, and the histories are there.
    expect(places['worker log']?.length).toBeGreaterThan(10_000);
    expect(places[`history of ${slotWorkflowId(slotId)}`]).toContain('binary/encrypted');

    // Failure messages and stacks are sealed like payloads: the raw history has only "Encoded failure"
    // and an encrypted `encodedAttributes`; the server's words are not readable there.
    const raw = await plain.workflowService.getWorkflowExecutionHistory({ namespace: 'default', execution: { workflowId: slotWorkflowId(slotId) } });
    const failures = (raw.history?.events ?? []).flatMap((e) => (e.activityTaskFailedEventAttributes?.failure ? [e.activityTaskFailedEventAttributes.failure] : []));
    expect(failures.length).toBeGreaterThan(0);
    for (const failure of failures) {
      expect(failure.message).toBe('Encoded failure');
      expect(failure.stackTrace ?? '').toBe('');
      expect(Buffer.from(failure.encodedAttributes?.metadata?.encoding ?? new Uint8Array()).toString()).toBe('binary/encrypted');
    }
    expect(places[`history of ${slotWorkflowId(slotId)}`]).not.toContain(FAILURE_MARKER);
    // Opened with the keys, the failure says what the server said, with the token scrubbed from it.
    const [attributes] = await new AesGcmPayloadCodec(parseEncryptionKeys(KEYS)).decode(failures.map((f) => f.encodedAttributes as Payload).slice(-1));
    const opened = JSON.parse(Buffer.from(attributes?.data ?? new Uint8Array()).toString('utf8')) as { message: string; stack_trace: string };
    expect(opened.message).toContain(FAILURE_MARKER);
    expect(opened.stack_trace.length).toBeGreaterThan(0);
    for (const secret of secrets) expect(opened.message.includes(secret) || opened.stack_trace.includes(secret)).toBe(false);
    // The workflow (its worker holds the keys) read the message as the server put it, and told the operator.
    expect(failed.status.lastOutcome?.message).toContain(FAILURE_MARKER);

    // With the codec, the same history decodes, and the operator's code is in it (in the update to the slot).
    const decoded = await slots.client.workflow.getHandle(slotWorkflowId(slotId)).fetchHistory();
    const codec = new AesGcmPayloadCodec(parseEncryptionKeys(KEYS));
    const payloads = (decoded.events ?? []).flatMap((e) => e.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest?.input?.args?.payloads ?? []);
    const clear = await codec.decode(payloads);
    expect(clear.map((p) => Buffer.from(p.data ?? new Uint8Array()).toString('utf8')).join('\n')).toContain(PLANTED.code);
  });
});
