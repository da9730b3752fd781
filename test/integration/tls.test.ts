// Every connection made from configuration goes through TLS, presents the team's client
// certificate (mTLS) and its API key: the worker process (its NativeConnection and the
// Connection that registers search attributes), slotctl, and the client API. The dev
// server has no TLS flags, so a TLS front (test/peers/tls-frontend.ts) stands before it.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { SlotClient } from '../../client/slot-client';
import { EXIT, slotctl } from '../../cli/slotctl';
import { loadConfig, temporalConnectionOptions } from '../../host/config';
import { devServerClient, uniqueName } from '../harness';
import { makePki, startTlsFrontend, type Pki, type TlsFrontend } from '../peers/tls-frontend';
import { claudeCode, waitForPhase, waitForPrompt } from '../slot-fixtures';
import { fixtureWorkerEnv, spawnWorkerProcess, stopWorkerProcess, untilPolling, type WorkerProcess } from '../worker-process';

const haveOpenssl = ((): boolean => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

type Io = NonNullable<Parameters<typeof slotctl>[1]>;
async function runSlotctl(argv: string[], env: NodeJS.ProcessEnv, stdin = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (t) => out.push(t), err: (t) => err.push(t), readStdin: async () => stdin, stdinIsTTY: false };
  const code = await slotctl(argv, io, env);
  return { code, stdout: out.join('\n'), stderr: err.join('\n') };
}

describe.skipIf(!haveOpenssl)('Temporal over TLS with a client certificate and an API key', () => {
  let dir: string;
  let pki: Pki;
  let front: TlsFrontend;
  let worker: WorkerProcess | undefined;
  let slotsDir: string;
  const apiKey = `tmprl-test-${randomBytes(16).toString('hex')}`;
  const host = uniqueName('tls-host');
  const sharedQueue = uniqueName('tls-shared');
  /** What a team's operators and workers are given: CA, client certificate, API key file. */
  let teamEnv: Record<string, string>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tls-'));
    slotsDir = await mkdtemp(join(tmpdir(), 'tls-slots-'));
    pki = makePki(dir);
    await writeFile(join(dir, 'api-key'), `${apiKey}\n`, { mode: 0o600 });
    front = await startTlsFrontend({
      target: inject('temporalAddress'),
      key: await readFile(pki.serverKeyFile),
      cert: await readFile(pki.serverCertFile),
      ca: await readFile(pki.caFile),
      apiKey,
    });
    teamEnv = {
      ...fixtureWorkerEnv({ temporalAddress: front.address, host, sharedQueue, slotsDir }),
      TEMPORAL_TLS_CA_FILE: pki.caFile,
      TEMPORAL_TLS_CERT_FILE: pki.clientCertFile,
      TEMPORAL_TLS_KEY_FILE: pki.clientKeyFile,
      // The address is an IP; the certificate is checked against this name.
      TEMPORAL_TLS_SERVER_NAME: 'localhost',
      TEMPORAL_API_KEY_FILE: join(dir, 'api-key'),
    };
    worker = spawnWorkerProcess(teamEnv);
    // Plumbing only: whether the worker polls is read on the dev server directly.
    const { client, connection } = await devServerClient();
    try {
      await untilPolling(worker, client, host, 60_000);
    } finally {
      await connection.close();
    }
  }, 90_000);
  afterAll(async () => {
    if (worker) await stopWorkerProcess(worker, 'SIGTERM');
    await front?.close();
    await rm(dir, { recursive: true, force: true });
    await rm(slotsDir, { recursive: true, force: true });
  });

  it('the worker, slotctl and the client API log a slot in through the TLS front only', async () => {
    const slotId = uniqueName('tls-slot');
    const provisioned = await runSlotctl(['provision', slotId, '--provider', 'claude', '--host', host, '--json'], teamEnv);
    expect(provisioned.stderr).toBe('');
    expect(provisioned.code).toBe(0);

    const slots = await SlotClient.connect({ ...temporalConnectionOptions(loadConfig(teamEnv)), taskQueue: sharedQueue });
    try {
      const waiting = await waitForPrompt(slots, slotId);
      const submitted = await runSlotctl(['submit-code', slotId], teamEnv, `${claudeCode(waiting)}\n`);
      expect(submitted.stderr).toBe('');
      expect(submitted.code).toBe(0);
      await waitForPhase(slots, slotId, ['active']);
      await slots.retire(slotId);
      await waitForPhase(slots, slotId, ['retired']);
    } finally {
      await slots.close();
    }

    // Each kind of client reached Temporal through the front, with the team's certificate.
    const calls = new Set(front.calls);
    for (const method of [
      'ListSearchAttributes', // the worker's Connection (search attributes)
      'PollWorkflowTaskQueue', // the worker's NativeConnection
      'PollActivityTaskQueue',
      'RespondActivityTaskCompleted',
      'StartWorkflowExecution', // slotctl provision
      'UpdateWorkflowExecution', // slotctl submit-code
      'QueryWorkflow', // the client API's status
      'SignalWorkflowExecution', // the client API's retire
    ]) {
      expect(calls, `${method} went through the front`).toContain(`team-worker ${method}`);
    }
    expect([...calls].filter((call) => !call.startsWith('team-worker '))).toEqual([]);
    // The API key is a secret: the worker never logs it.
    expect(worker?.output()).not.toContain(apiKey);
  }, 120_000);

  it('a client that does not trust the CA, or has no or a foreign client certificate, or no API key, is refused with a clear error', async () => {
    const { TEMPORAL_TLS_CA_FILE: _ca, ...withoutCa } = teamEnv;
    const untrusting = await runSlotctl(['status', '--json'], { ...withoutCa, TEMPORAL_TLS: 'true' });
    expect(untrusting.code).toBe(EXIT.notFound);
    expect(untrusting.stdout).toBe('');
    expect(untrusting.stderr).toBe(
      `slotctl: TLS to Temporal at ${front.address} failed: the server's certificate is not signed by a CA this client trusts ` +
        `(self-signed certificate in certificate chain); set TEMPORAL_TLS_CA_FILE to the CA that signed it`,
    );
    // The worker says the same and stops.
    const untrustingWorker = spawnWorkerProcess({ ...withoutCa, TEMPORAL_TLS: 'true', SLOT_HOST: uniqueName('untrusting') });
    const exitCode = await new Promise<number | null>((resolve) => untrustingWorker.child.once('exit', resolve));
    expect(exitCode).toBe(2);
    expect(untrustingWorker.output()).toContain(`TLS to Temporal at ${front.address} failed: the server's certificate is not signed by a CA this client trusts`);

    const { TEMPORAL_TLS_CERT_FILE: _c, TEMPORAL_TLS_KEY_FILE: _k, ...withoutCert } = teamEnv;
    const anonymous = await runSlotctl(['status', '--json'], withoutCert);
    expect(anonymous.code).toBe(EXIT.notFound);
    expect(anonymous.stderr).toMatch(/failed: the server wants a client certificate \(.*certificate required\); set TEMPORAL_TLS_CERT_FILE and TEMPORAL_TLS_KEY_FILE$/);
    const stranger = await runSlotctl(['status', '--json'], { ...teamEnv, TEMPORAL_TLS_CERT_FILE: pki.strangerCertFile, TEMPORAL_TLS_KEY_FILE: pki.strangerKeyFile });
    expect(stranger.code).toBe(EXIT.notFound);
    // A Go frontend answers a foreign certificate with an alert (`the server refused this client's certificate`); Node's TLS hangs up.
    expect(stranger.stderr).toMatch(/failed: the server hung up right after the handshake: it does not accept this client's certificate.*; TEMPORAL_TLS_CERT_FILE must be signed by a CA the server trusts$/);
    expect(front.refusedHandshakes.length, 'the front refused the handshakes without the team certificate').toBeGreaterThanOrEqual(2);

    const { TEMPORAL_API_KEY_FILE: _a, ...withoutKey } = teamEnv;
    const keyless = await runSlotctl(['status', '--json'], withoutKey);
    expect(keyless.code, keyless.stderr).toBe(EXIT.failed);
    expect(keyless.stderr).toMatch(/refused this client \(.*UNAUTHENTICATED: missing or wrong API key\); check TEMPORAL_API_KEY\(_FILE\)/);

    const plain = await runSlotctl(['status', '--json'], { TEMPORAL_ADDRESS: front.address, SLOTS_TASK_QUEUE: sharedQueue });
    expect(plain.code).toBe(EXIT.notFound);
    expect(plain.stderr).toMatch(/slotctl: cannot reach Temporal/);
    // Nothing refused got through to Temporal.
    expect(front.calls.filter((call) => !call.startsWith('team-worker '))).toEqual([]);
  }, 90_000);
});
