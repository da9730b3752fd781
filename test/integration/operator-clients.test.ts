// The operator's three ways in, end to end on fixture CLIs: slotctl (in process
// and as the `npx slotctl` bin), the `temporal` CLI, and the Web UI's HTTP API
// (what its "Send a Signal" form posts). Each one must bring a waiting slot to `active`.
import { execFile, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { SlotClient } from '../../client/slot-client';
import { slotctl } from '../../cli/slotctl';
import type { SlotStatus } from '../../common/messages';
import { startDevServer, type DevServer } from '../../workers/dev-server';
import { obtainTemporalCli, PROJECT_ROOT } from '../../workers/temporal-binaries';
import { uniqueName } from '../harness';
import { claudeCode, startSlotRig, waitForPrompt, type SlotRig } from '../slot-fixtures';

type Io = NonNullable<Parameters<typeof slotctl>[1]>;
interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Everything any client printed in this file: no submitted code may ever appear in it. */
const printed: string[] = [];
const submittedCodes = new Set<string>();

/** Runs slotctl in this process with a fake terminal. */
async function runSlotctl(
  argv: string[],
  env: NodeJS.ProcessEnv,
  stdin = '',
  /** Pass arrays to watch the output while the command runs. */
  live: { out: string[]; err: string[] } = { out: [], err: [] },
): Promise<Run> {
  const { out, err } = live;
  const io: Io = {
    out: (text) => out.push(text),
    err: (text) => err.push(text),
    readStdin: async () => stdin,
    stdinIsTTY: false,
  };
  const code = await slotctl(argv, io, env);
  const run = { code, stdout: out.join('\n'), stderr: err.join('\n') };
  printed.push(run.stdout, run.stderr);
  return run;
}

/** Runs a real process; stdin (if given) is piped in and closed, like `echo code | …`. */
function runProcess(command: string, args: string[], opts: { env?: NodeJS.ProcessEnv; stdin?: string } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: PROJECT_ROOT, env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      printed.push(stdout, stderr);
      resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr });
    });
    child.stdin.end(opts.stdin ?? '');
  });
}

/** The `temporal` CLI with its arguments; never throws on a non-zero exit. */
function runTemporal(binary: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(binary, [...args, '--color', 'never'], { cwd: PROJECT_ROOT, timeout: 30_000 }, (error, stdout, stderr) => {
      printed.push(stdout, stderr);
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * Waits until the login is over and the slot has come to rest: a check of the
 * new credential (`refreshing`) may follow a login, so one `active` is not enough.
 */
async function waitSettled(slots: SlotClient, slotId: string, timeoutMs = 30_000): Promise<SlotStatus> {
  const settled: readonly SlotStatus['phase'][] = ['active', 'needs-relogin', 'degraded', 'retired'];
  const deadline = Date.now() + timeoutMs;
  let same = 0;
  let last: SlotStatus | undefined;
  for (;;) {
    const status = await slots.status(slotId);
    same = settled.includes(status.phase) && status.phase === last?.phase ? same + 1 : 0;
    last = status;
    if (same >= 3) return status;
    if (Date.now() > deadline) throw new Error(`slot ${slotId} did not settle: ${JSON.stringify(status)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The slot logged in and is `active` (with the reason in the failure message when not). */
async function expectActive(slots: SlotClient, slotId: string): Promise<SlotStatus> {
  const status = await waitSettled(slots, slotId);
  expect(status.phase, `slot ${slotId}: ${JSON.stringify(status.lastOutcome)}`).toBe('active');
  expect(status.prompt).toBeUndefined();
  return status;
}

const parseOneJson = (stdout: string): unknown => JSON.parse(stdout);

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

const temporalCliPath = async (): Promise<string> => {
  const cli = await obtainTemporalCli({ build: false });
  if (cli.type !== 'existing-path') throw new Error(`no temporal CLI binary found (${cli.source}); run npm run setup:temporal`);
  return cli.path;
};

afterAll(() => {
  // The operator's code is a one-time secret: no client may echo it back, on success or failure.
  const all = printed.join('\n');
  for (const code of submittedCodes) expect(all, 'a submitted code was printed').not.toContain(code);
});

describe('slotctl (in process)', () => {
  let rig: SlotRig;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    rig = await startSlotRig();
    env = { TEMPORAL_ADDRESS: inject('temporalAddress'), SLOTS_TASK_QUEUE: rig.workers.sharedTaskQueue, SLOT_HOST: rig.workers.hostName };
  });
  afterAll(async () => rig?.close());

  it('provisions, shows the prompt, lists the slot, takes the code from stdin and reports active', async () => {
    const slotId = uniqueName('ctl');
    const provisioned = await runSlotctl(['provision', slotId, '--provider', 'claude', '--json'], env);
    expect(provisioned.stderr).toBe('');
    expect(provisioned.code).toBe(0);
    const first = parseOneJson(provisioned.stdout) as SlotStatus;
    expect(first).toMatchObject({ slotId, provider: 'claude', host: rig.workers.hostName });
    expect(['logging-in', 'awaiting-operator']).toContain(first.phase);

    const waiting = await waitForPrompt(rig.slots, slotId);
    const shown = await runSlotctl(['status', slotId, '--json'], env);
    expect(shown.code).toBe(0);
    const status = parseOneJson(shown.stdout) as SlotStatus;
    expect(status.phase).toBe('awaiting-operator');
    expect(status.prompt?.url).toBe(waiting.prompt.url);
    expect(status.prompt?.instructions).toContain(waiting.prompt.url);

    // The list comes from search attributes, which follow the workflow a moment later.
    let table = '';
    for (let i = 0; i < 50; i++) {
      const listed = await runSlotctl(['status'], env);
      expect(listed.code).toBe(0);
      table = listed.stdout;
      if (table.split('\n').some((row) => row.startsWith(`${slotId} `) && row.includes('awaiting-operator'))) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(table.split('\n')[0]).toMatch(/^SLOT\s+PROVIDER\s+HOST\s+PHASE\s+PROMPT$/);
    const row = table.split('\n').find((line) => line.startsWith(`${slotId} `));
    expect(row).toMatch(new RegExp(`^${slotId}\\s+claude\\s+${rig.workers.hostName}\\s+awaiting-operator\\s+https://claude\\.com/`));

    const code = claudeCode(waiting);
    submittedCodes.add(code);
    const submitted = await runSlotctl(['submit-code', slotId], env, `${code}\n`);
    expect(submitted.stderr).toBe('');
    expect(submitted.code).toBe(0);
    expect(submitted.stdout).toMatch(new RegExp(`code accepted by ${slotId}:[0-9a-f-]{8}:1\\.0: Login successful`));

    await expectActive(rig.slots, slotId);
    const done = await runSlotctl(['status', slotId, '--json'], env);
    expect(done.code).toBe(0);
    const active = parseOneJson(done.stdout) as SlotStatus;
    expect(active.phase).toBe('active');
    expect(active.prompt).toBeUndefined();
    // The login's outcome, or that of the credential check that may follow it.
    expect(['login-succeeded', 'refresh-succeeded']).toContain(active.lastOutcome?.kind);
    expect(active.logins).toBe(1);
    expect(active.consecutiveFailures).toBe(0);
  });

  it('provision --wait --json: the prompt goes to stderr, one final JSON document to stdout', async () => {
    const slotId = uniqueName('ctl-wait');
    const live = { out: [] as string[], err: [] as string[] };
    const waitingRun = runSlotctl(['provision', slotId, '--provider', 'claude', '--wait', '--timeout', '30', '--json'], env, '', live);
    // The operator reads the URL from what `provision --wait` prints, and answers from another terminal.
    let shownUrl: string | undefined;
    for (let i = 0; i < 300 && !shownUrl; i++) {
      shownUrl = /URL: {2}(\S+)/.exec(live.err.join('\n'))?.[1];
      if (!shownUrl) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(shownUrl, 'provision --wait showed the login URL on stderr').toBeDefined();
    expect(live.out).toEqual([]);
    const waiting = await waitForPrompt(rig.slots, slotId);
    expect(shownUrl).toBe(waiting.prompt.url);
    const code = claudeCode({ prompt: { url: shownUrl as string } });
    submittedCodes.add(code);
    const submitted = await runSlotctl(['submit-code', slotId, '--json'], env, `${code}\n`);
    expect(submitted.code).toBe(0);
    expect(parseOneJson(submitted.stdout)).toMatchObject({ ok: true, slotId });

    const finished = await waitingRun;
    expect(finished.code).toBe(0);
    const final = parseOneJson(finished.stdout) as SlotStatus;
    expect(final.phase).toBe('active');
    expect(finished.stdout).not.toContain(waiting.prompt.url);
    expect(finished.stderr).toContain(`URL:  ${waiting.prompt.url}`);
    expect(finished.stderr).toContain(waiting.prompt.instructions.split('\n')[0] ?? '');
  });

  it('answers bad input, missing slots, refused codes, a dead server and bad config with the right exit codes', async () => {
    for (const bad of ['../x', 'UPPER']) {
      const run = await runSlotctl(['provision', bad, '--provider', 'claude'], env);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain(`invalid slot id ${JSON.stringify(bad)}`);
      expect(run.stderr).toMatch(/lowercase letters, digits and dashes/);
      const status = await runSlotctl(['status', bad, '--json'], env);
      expect(status.code).toBe(2);
      expect(status.stdout).toBe('');
    }

    const provider = await runSlotctl(['provision', uniqueName('ctl-gem'), '--provider', 'gemini'], env);
    expect(provider.code).toBe(2);
    expect(provider.stderr).toMatch(/unknown provider "gemini"; known providers: claude, codex, oidc-device, claude-setup-token/);

    const missing = await runSlotctl(['status', 'nosuchslot', '--json'], env);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain('slot nosuchslot does not exist');
    expect(missing.stdout).toBe('');

    // A code of the wrong form: refused by the update validator, and never echoed.
    const slotId = uniqueName('ctl-bad');
    expect((await runSlotctl(['provision', slotId, '--provider', 'claude'], env)).code).toBe(0);
    const waiting = await waitForPrompt(rig.slots, slotId);
    const wrongForm = `wrongform-${uniqueName('secret')}`;
    submittedCodes.add(wrongForm);
    const refused = await runSlotctl(['submit-code', slotId], env, `${wrongForm}\n`);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/code not accepted: code does not have the expected form: <code>#<state>/);
    expect(refused.stderr).not.toContain(wrongForm);
    expect((await rig.slots.status(slotId)).prompt?.url).toBe(waiting.prompt.url);

    const started = Date.now();
    const unreachable = await runSlotctl(['status', slotId], { ...env, TEMPORAL_ADDRESS: '127.0.0.1:1' });
    expect(unreachable.code).toBe(3);
    expect(unreachable.stderr).toContain('cannot reach Temporal at 127.0.0.1:1');
    expect(Date.now() - started).toBeLessThan(15_000);

    const config = await runSlotctl(['status'], { ...env, TEMPORAL_PORT: 'abc' });
    expect(config.code).toBe(2);
    expect(config.stderr).toMatch(/invalid configuration:\n\s+- TEMPORAL_PORT="abc"/);

    const usage = await runSlotctl(['provision', slotId], env);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/required option '--provider <name>'/);
    await rig.slots.cancelLogin(slotId);
  });
});

describe('slotctl (the npx bin, as a real process)', () => {
  let rig: SlotRig;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    rig = await startSlotRig();
    env = {
      ...process.env,
      TEMPORAL_ADDRESS: inject('temporalAddress'),
      SLOTS_TASK_QUEUE: rig.workers.sharedTaskQueue,
      SLOT_HOST: rig.workers.hostName,
    };
  });
  afterAll(async () => rig?.close());

  it('npx slotctl status --json and `echo code | npx slotctl submit-code` bring the slot to active', async () => {
    const slotId = uniqueName('npx');
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName });
    const waiting = await waitForPrompt(rig.slots, slotId);

    const shown = await runProcess('npx', ['slotctl', 'status', slotId, '--json'], { env });
    expect(shown.code, shown.stderr).toBe(0);
    const status = parseOneJson(shown.stdout) as SlotStatus;
    expect(status.phase).toBe('awaiting-operator');
    expect(status.prompt?.url).toBe(waiting.prompt.url);

    const code = claudeCode(waiting);
    submittedCodes.add(code);
    const submitted = await runProcess('npx', ['slotctl', 'submit-code', slotId], { env, stdin: `${code}\n` });
    expect(submitted.code, submitted.stderr).toBe(0);
    expect(submitted.stdout).toMatch(new RegExp(`code accepted by ${slotId}:[0-9a-f-]{8}:1\\.0: Login successful`));

    await expectActive(rig.slots, slotId);
    const done = await runProcess('npx', ['slotctl', 'status', slotId, '--json'], { env });
    expect(done.code, done.stderr).toBe(0);
    expect((parseOneJson(done.stdout) as SlotStatus).phase).toBe('active');

    const missing = await runProcess('npx', ['slotctl', 'status', 'nosuchslot'], { env });
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain('slot nosuchslot does not exist');
  });
});

describe('the temporal CLI', () => {
  let rig: SlotRig;
  let temporal: string;
  let address: string;
  beforeAll(async () => {
    rig = await startSlotRig();
    temporal = await temporalCliPath();
    address = inject('temporalAddress');
  });
  afterAll(async () => rig?.close());

  const query = async (slotId: string): Promise<SlotStatus> => {
    const run = await runTemporal(temporal, [
      'workflow', 'query', '--address', address, '--workflow-id', `slot:${slotId}`, '--type', 'status', '--output', 'json',
    ]);
    expect(run.code, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout) as { queryResult: [SlotStatus] };
    return result.queryResult[0];
  };

  it('query shows the prompt; a malformed signal is explained in status; a good signal logs in', async () => {
    const slotId = uniqueName('tcli-sig');
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName });
    const waiting = await waitForPrompt(rig.slots, slotId);

    const text = await runTemporal(temporal, ['workflow', 'query', '--address', address, '--workflow-id', `slot:${slotId}`, '--type', 'status']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^Query result:\n\s+QueryResult\s+\{/);
    expect(text.stdout).toContain('"phase":"awaiting-operator"');
    // Text output is Go's JSON, which writes `&` in the URL as \u0026; `--output json` is the one to parse.
    expect(text.stdout).toContain(waiting.prompt.url.replaceAll('&', '\\u0026'));
    const before = await query(slotId);
    expect(before.phase).toBe('awaiting-operator');
    expect(before.prompt?.url).toBe(waiting.prompt.url);

    // What the Web UI's workflow page shows: the current details (the URL, what to do) and
    // the operator's handlers with descriptions; no internal plumbing among them.
    const metadata = (await rig.slots.client.workflow.getHandle(`slot:${slotId}`).query('__temporal_workflow_metadata')) as {
      currentDetails?: string;
      definition?: { signalDefinitions?: Array<{ name: string; description?: string }>; updateDefinitions?: Array<{ name: string }>; queryDefinitions?: Array<{ name: string }> };
    };
    expect(metadata.currentDetails).toContain(waiting.prompt.url);
    expect(metadata.currentDetails).toContain('awaiting-operator');
    expect(metadata.currentDetails).toMatch(/submitCode/);
    const signals = metadata.definition?.signalDefinitions ?? [];
    expect(signals.map((d) => d.name).sort()).toEqual(['cancelLogin', 'probeNow', 'refreshNow', 'relogin', 'retire', 'submitCode']);
    for (const signal of signals) expect(signal.description?.length ?? 0, signal.name).toBeGreaterThan(20);
    expect(metadata.definition?.updateDefinitions?.map((d) => d.name).sort()).toEqual(['move', 'probeNow', 'submitCode']);

    // A signal cannot answer: the refusal shows up in status, without the code.
    submittedCodes.add('no-hash');
    const malformed = await runTemporal(temporal, [
      'workflow', 'signal', '--address', address, '--workflow-id', `slot:${slotId}`, '--name', 'submitCode', '--input', '{"code":"no-hash"}',
    ]);
    expect(malformed.code, malformed.stderr).toBe(0);
    let refused = await query(slotId);
    for (let i = 0; i < 50 && !refused.lastError; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      refused = await query(slotId);
    }
    expect(refused.phase).toBe('awaiting-operator');
    expect(refused.prompt?.url).toBe(waiting.prompt.url);
    expect(refused.lastError).toMatch(/^a submitted code was not used: code does not have the expected form: <code>#<state>/);
    expect(refused.lastError).not.toContain('no-hash');

    const code = claudeCode(waiting);
    submittedCodes.add(code);
    const signalled = await runTemporal(temporal, [
      'workflow', 'signal', '--address', address, '--workflow-id', `slot:${slotId}`, '--name', 'submitCode', '--input', JSON.stringify({ code }),
    ]);
    expect(signalled.code, signalled.stderr).toBe(0);
    const active = await expectActive(rig.slots, slotId);
    expect(active.lastError).toBeUndefined();
    expect((await query(slotId)).phase).toBe('active');
  });

  it('update execute: the validator refuses a bad code at once; a good code logs in', async () => {
    const slotId = uniqueName('tcli-upd');
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName });
    const waiting = await waitForPrompt(rig.slots, slotId);
    const update = (input: string): Promise<Run> =>
      runTemporal(temporal, [
        'workflow', 'update', 'execute', '--address', address, '--workflow-id', `slot:${slotId}`, '--name', 'submitCode', '--input', input,
      ]);

    const wrong = `wrongform-${uniqueName('secret')}`;
    submittedCodes.add(wrong);
    const refused = await update(JSON.stringify({ code: wrong }));
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/unable to update workflow: code does not have the expected form: <code>#<state>/);
    const notObject = await update('"just-a-string"');
    expect(notObject.code).not.toBe(0);
    expect(notObject.stderr).toContain('unable to update workflow: input must be an object like {\\"code\\": \\"…\\"}');
    expect((await rig.slots.status(slotId)).phase).toBe('awaiting-operator');

    const code = claudeCode(waiting);
    submittedCodes.add(code);
    const accepted = await update(JSON.stringify({ code }));
    expect(accepted.code, accepted.stderr).toBe(0);
    expect(accepted.stdout).toMatch(new RegExp(`${slotId}:[0-9a-f-]{8}:1\\.0`));
    await expectActive(rig.slots, slotId);
  });
});


interface UiPayload {
  metadata?: Record<string, string>;
  data?: string;
}
interface UiExecution {
  execution: { workflowId: string; runId: string };
  searchAttributes?: { indexedFields?: Record<string, UiPayload> };
}

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');
const unb64 = (text: string | undefined): string => Buffer.from(text ?? '', 'base64').toString('utf8');

describe('the Web UI', () => {
  let server: DevServer;
  let rig: SlotRig;
  let ui: string;
  beforeAll(async () => {
    server = await startDevServer({ executable: await obtainTemporalCli({ build: false }), uiPort: await freePort() });
    ui = server.uiUrl as string;
    rig = await startSlotRig({}, { address: server.address });
  });
  afterAll(async () => {
    await rig?.close();
    await server?.stop();
  });

  /**
   * The UI's workflow list, as its list page fetches it. A 503 is the UI server's answer when
   * its gRPC call to the frontend is `Unavailable` (seen once on a loaded CI machine): the list
   * page retries it, so this does too, and says so if it never stops.
   */
  const listWorkflows = async (query: string): Promise<UiExecution[] | 'unavailable'> => {
    const response = await fetch(`${ui}/api/v1/namespaces/default/workflows?${new URLSearchParams({ query })}`);
    if (response.status === 503) return 'unavailable';
    expect(response.status, await response.clone().text()).toBe(200);
    return ((await response.json()) as { executions?: UiExecution[] }).executions ?? [];
  };
  const slotPhaseInList = async (workflowId: string, phase: string): Promise<UiExecution | undefined> => {
    let unavailable = 0;
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const rows = await listWorkflows(`WorkflowType = 'slotWorkflow' AND SlotPhase = '${phase}'`);
      if (rows === 'unavailable') unavailable++;
      else {
        const row = rows.find((r) => r.execution.workflowId === workflowId);
        if (row) return row;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect.fail(`the UI list never showed ${workflowId} as ${phase} (${unavailable} answers were 503)`);
  };

  it('lists the slot with its SlotPhase, and its signal form route (with CSRF) logs the slot in', async () => {
    const home = await fetch(`${ui}/`);
    expect(home.status).toBe(200);
    expect(home.headers.get('content-type')).toContain('text/html');
    // The UI server hands every page a double-submit CSRF token in the `_csrf` cookie.
    const cookie = home.headers.getSetCookie().find((c) => c.startsWith('_csrf='));
    expect(cookie).toBeDefined();
    const csrf = (cookie as string).slice('_csrf='.length).split(';')[0] as string;
    expect(csrf).toMatch(/^\w{16,}$/);

    const slotId = uniqueName('ui');
    const workflowId = `slot:${slotId}`;
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName });
    const waiting = await waitForPrompt(rig.slots, slotId);

    const row = await slotPhaseInList(workflowId, 'awaiting-operator');
    expect(row, 'the UI list shows the slot as awaiting-operator').toBeDefined();
    const fields = row?.searchAttributes?.indexedFields ?? {};
    expect(JSON.parse(unb64(fields.SlotPhase?.data))).toBe('awaiting-operator');
    expect(unb64(fields.SlotPhase?.metadata?.type)).toBe('Keyword');
    expect(JSON.parse(unb64(fields.SlotProvider?.data))).toBe('claude');
    expect(JSON.parse(unb64(fields.SlotPrompt?.data))).toBe(waiting.prompt.url);

    // What the "Send a Signal" form posts (ui 2.42: workflow-service.ts signalWorkflow).
    const code = claudeCode(waiting);
    submittedCodes.add(code);
    const url = `${ui}/api/v1/namespaces/default/workflows/${encodeURIComponent(workflowId)}/signal/submitCode`;
    const body = JSON.stringify({
      signalName: 'submitCode',
      workflowExecution: { workflowId, runId: row?.execution.runId },
      input: { payloads: [{ metadata: { encoding: b64('json/plain') }, data: b64(JSON.stringify({ code })) }] },
    });
    const headers = { 'content-type': 'application/json', 'caller-type': 'operator' };

    const noToken = await fetch(url, { method: 'POST', headers, body });
    expect(noToken.status).toBe(400);
    expect(await noToken.json()).toEqual({ message: 'missing csrf token in request header' });
    const wrongToken = await fetch(url, { method: 'POST', headers: { ...headers, cookie: `_csrf=${csrf}`, 'x-csrf-token': 'not-the-token' }, body });
    expect(wrongToken.status).toBe(403);
    expect(await wrongToken.json()).toEqual({ message: 'invalid csrf token' });
    expect((await rig.slots.status(slotId)).phase).toBe('awaiting-operator');

    const sent = await fetch(url, { method: 'POST', headers: { ...headers, cookie: `_csrf=${csrf}`, 'x-csrf-token': csrf }, body });
    const answer = await sent.text();
    printed.push(answer);
    expect(sent.status, answer).toBe(200);
    expect(JSON.parse(answer)).toEqual({});

    const active = await expectActive(rig.slots, slotId);
    expect(active.lastError).toBeUndefined();
    expect(await slotPhaseInList(workflowId, 'active'), 'the UI list shows the slot as active').toBeDefined();
  });
});
