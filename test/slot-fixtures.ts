// What login tests share: fixture CLIs on a worker, a slot client on the same
// queues, and ways to see what a user would see (files, processes, status).
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SlotStatus } from '../common/messages';
import { SlotClient } from '../client/slot-client';
import type { SlotWorkerOptions } from '../workers/worker';
import { devServerClient, startWorkers, type RunningWorkers } from './harness';
import { TEST_ALLOWED_ENDPOINT_HOSTS, TEST_OIDC_SERVERS } from './worker-process';

export const FIXTURE_BIN = fileURLToPath(new URL('./fixtures/bin/', import.meta.url));

export interface SlotRig {
  readonly slotsDir: string;
  readonly approvals: string;
  readonly inputLog: string;
  readonly workers: RunningWorkers;
  readonly slots: SlotClient;
  /** The environment a worker process for this rig needs (for tests that run one as a child). */
  readonly workerEnv: Record<string, string>;
  close(): Promise<void>;
}

/** A worker whose providers run the fixture CLIs, plus a client on its queues. */
export async function startSlotRig(
  fixtureEnv: Record<string, string> = {},
  options: {
    notifyWebhookUrl?: string;
    /** Another Temporal server than the run's. */
    address?: string;
    /** Workers and client in this namespace. @default "default" */
    namespace?: string;
    /** Counts what the workers' activities observe (workers/metrics.ts). */
    metrics?: SlotWorkerOptions['metrics'];
    /** What the rig's workers serve. @default both (workflows and host) */
    roles?: SlotWorkerOptions['roles'];
    /** Each provider's pace on the rig's host (workers/pacing.ts). */
    pace?: SlotWorkerOptions['pace'];
    /** When failing slots make a provider incident. */
    incidents?: SlotWorkerOptions['incidents'];
    /** Activities the rig's process runs at once on the host's queue. @default the SDK's */
    maxConcurrentHostActivities?: SlotWorkerOptions['maxConcurrentHostActivities'];
  } = {},
): Promise<SlotRig> {
  const slotsDir = await mkdtemp(join(tmpdir(), 'slots-'));
  const approvals = join(slotsDir, '.approvals');
  const inputLog = join(slotsDir, '.input.log');
  const env: Record<string, string> = {
    CLAUDE_BIN: join(FIXTURE_BIN, 'claude'),
    CODEX_BIN: join(FIXTURE_BIN, 'codex'),
    FIXTURE_SPEED: '0.2',
    FIXTURE_CODEX_APPROVALS: approvals,
    FIXTURE_INPUT_LOG: inputLog,
    SLOTS_ALLOWED_ENDPOINT_HOSTS: TEST_ALLOWED_ENDPOINT_HOSTS,
    SLOTS_OIDC_SERVERS: TEST_OIDC_SERVERS,
    ...fixtureEnv,
  };
  const workers = await startWorkers({
    slotsDir,
    env: { ...process.env, ...env },
    envPassthrough: ['FIXTURE_*'],
    heartbeatMs: 500,
    // The scripted device servers ask for 1 s polls; production clamps to at least 5 s.
    minPollIntervalMs: 1000,
    ...options,
  });
  const { client, connection } = await devServerClient(options.address, options.namespace);
  const slots = new SlotClient(client, workers.sharedTaskQueue);
  return {
    slotsDir,
    approvals,
    inputLog,
    workers,
    slots,
    workerEnv: { ...env, LOGIN_ENV_PASSTHROUGH: 'FIXTURE_*', SLOTS_DIR: slotsDir },
    async close() {
      await workers.stop();
      await connection.close();
      await rm(slotsDir, { recursive: true, force: true });
    },
  };
}

export const waitForPhase = async (
  slots: SlotClient,
  slotId: string,
  phases: SlotStatus['phase'][],
  timeoutMs = 30_000,
): Promise<SlotStatus> => {
  const { status, reached } = await slots.waitFor(slotId, (s) => phases.includes(s.phase), { timeoutMs, pollMs: 100 });
  if (!reached) throw new Error(`slot ${slotId} stayed ${status.phase} (wanted ${phases.join('/')}): ${JSON.stringify(status)}`);
  return status;
};

/** Waits for the operator prompt of the login after `previousUrl` (a restart shows a new URL). */
export const waitForPrompt = async (slots: SlotClient, slotId: string, previousUrl?: string): Promise<SlotStatus & { prompt: NonNullable<SlotStatus['prompt']> }> => {
  const { status, reached } = await slots.waitFor(
    slotId,
    (s) => s.phase === 'awaiting-operator' && s.prompt !== undefined && s.prompt.url !== previousUrl,
    { timeoutMs: 30_000, pollMs: 100 },
  );
  if (!reached || !status.prompt) throw new Error(`no prompt for ${slotId}: ${JSON.stringify(status)}`);
  return status as SlotStatus & { prompt: NonNullable<SlotStatus['prompt']> };
};

export const stateOf = (url: string): string => new URL(url).searchParams.get('state') ?? '';

/** The code the Claude fixture accepts for this prompt. */
export const claudeCode = (status: { prompt: { url: string } }): string => `valid-code#${stateOf(status.prompt.url)}`;

/** Approves (or denies) a Codex device code, as the operator would in the browser. */
export async function answerDevice(rig: SlotRig, userCode: string, answer: 'approve' | 'deny'): Promise<void> {
  await mkdir(rig.approvals, { recursive: true });
  await writeFile(join(rig.approvals, userCode), answer);
}

/** Pids of live processes whose HOME is the slot's home: a login CLI or anything it left behind. */
export async function processesOfSlot(slotsDir: string, slotId: string): Promise<number[]> {
  const home = `HOME=${join(slotsDir, slotId)}\0`;
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const environ = await readFile(`/proc/${entry}/environ`, 'utf8').catch(() => '');
    const state = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // Zombies have no environment and hold nothing; only count the living.
    if (environ.includes(home) && !/\) Z /.test(state)) pids.push(Number(entry));
  }
  return pids;
}

/** Every process of the slot is gone (the CLI and its process group die shortly after the login ends). */
export async function expectNoProcesses(slotsDir: string, slotId: string, withinMs = 5000): Promise<void> {
  const deadline = Date.now() + withinMs;
  let left: number[] = [];
  while (Date.now() < deadline) {
    left = await processesOfSlot(slotsDir, slotId);
    if (left.length === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`processes of slot ${slotId} still running: ${left.join(', ')}`);
}
