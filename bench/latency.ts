// Submit → PTY latency: from an operator's SlotClient.submitCode to the code's
// bytes arriving in the login CLI (the fixture logs each input chunk with its
// epoch ms; one machine, one clock). Baseline, in the same run: the scripts'
// way, a 2 s polling loop that fetches the code from an HTTP endpoint and types
// it into the CLI's terminal, timed from the operator's POST to the same bytes.
import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { spawn as spawnPty, type IPty } from 'node-pty';
import type { Client } from '@temporalio/client';
import type { SlotClient } from '../client/slot-client';
import { SlotPhaseKey, SlotPromptKey } from '../common/search-attributes';
import { slotWorkflowId } from '../common/slot';
import { historyOf, timeline, updateActivitySteps, UpdateStepTally } from './history';
import { distribution, round, type Target } from './report';
import { FIXTURE_BIN, PROJECT_ROOT, cpuBetween, cpuSnapshot, inPool, param, runBenchmark, sleep, type Rig } from './rig';

const LOGINS = param('BENCH_LATENCY_LOGINS', 200);
const CONCURRENCY = param('BENCH_LATENCY_CONCURRENCY', 4);
/** How often the driver reads the slots' phases and prompts from visibility. */
const WATCH_MS = param('BENCH_LATENCY_WATCH_MS', 100);
const BASELINE_LOGINS = param('BENCH_LATENCY_BASELINE_LOGINS', 200);
const BASELINE_CONCURRENCY = param('BENCH_LATENCY_BASELINE_CONCURRENCY', 20);
const FIXTURE_SPEED = process.env.BENCH_FIXTURE_SPEED || '0.1';
const POLL_SECONDS = 2;

interface Submission {
  readonly slotId: string;
  /** The code's last characters: unique per login (they end the URL's state). */
  readonly tail: string;
  /** Epoch ms just before the operator's call (submitCode, or the POST of the baseline). */
  readonly calledAt: number;
  /** Epoch ms when submitCode returned (the update completed); the baseline POST's answer. */
  readonly returnedAt: number;
  readonly completed: boolean;
  /** The update's answer: the CLI's verdict on the code (Temporal only). */
  readonly answer?: string;
}

interface InputChunk {
  readonly t: number;
  readonly data: string;
}

async function readInputLog(file: string): Promise<InputChunk[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as InputChunk);
}

/** When the code's last bytes reached the CLI, per submission; missing ones are reported, not guessed. */
function arrivals(submissions: readonly Submission[], chunks: readonly InputChunk[]): { fromCall: number[]; fromReturn: number[]; missing: number } {
  const fromCall: number[] = [];
  const fromReturn: number[] = [];
  let missing = 0;
  for (const s of submissions) {
    const chunk = chunks.find((c) => c.data.includes(s.tail) && c.t >= s.calledAt - 5);
    if (!chunk) {
      missing++;
      continue;
    }
    fromCall.push(chunk.t - s.calledAt);
    fromReturn.push(chunk.t - s.returnedAt);
  }
  return { fromCall, fromReturn, missing };
}

/** When each submission's bytes arrived, by slot. */
function arrivalTimes(submissions: readonly Submission[], chunks: readonly InputChunk[]): Map<string, number> {
  const times = new Map<string, number>();
  for (const s of submissions) {
    const chunk = chunks.find((c) => c.data.includes(s.tail) && c.t >= s.calledAt - 5);
    if (chunk) times.set(s.slotId, chunk.t);
  }
  return times;
}

/**
 * Cuts the path into steps with the server's event times, all from the slot's
 * own history: the call, the workflow task that runs the update (started), the
 * update accepted (that task completed), the activity that types the code
 * scheduled (by the same task, if the design holds), that activity started by
 * the worker holding the PTY, the bytes in the CLI.
 */
async function breakdown(
  client: Client,
  submissions: readonly Submission[],
  bytesAt: ReadonlyMap<string, number>,
): Promise<{ steps: Record<string, ReturnType<typeof distribution>>; scheduledInAcceptingTask: number; stickyTasks: number; examined: number; waitedForTask: Record<string, number>; stepsWhenNotWaiting: ReturnType<typeof distribution>; callToTaskWhenWaiting: ReturnType<typeof distribution> }> {
  const tally = new UpdateStepTally();
  let examined = 0;
  const waited: string[] = [];
  const notWaiting: number[] = [];
  const waitedCallToTask: number[] = [];
  await inPool(submissions, 8, async (s) => {
    const bytes = bytesAt.get(s.slotId);
    if (bytes === undefined) return;
    const cut = updateActivitySteps(await historyOf(client, slotWorkflowId(s.slotId)), 'submitLoginCode', s.calledAt);
    if (!cut) return;
    examined++;
    tally.add(cut, {
      activityStartedToBytes: bytes - cut.activityStartedAt,
      /** The call → ActivityTaskStarted: the part of the path the engine floor's interval also covers, cut at the same event. */
      callToActivityStarted: cut.activityStartedAt - s.calledAt,
    });
    if (cut.waitedForTask) {
      waited.push(cut.waitedForTask.cause);
      waitedCallToTask.push(cut.callToUpdateTaskStarted);
    } else notWaiting.push(bytes - s.calledAt);
  });
  return {
    steps: tally.distributions(),
    scheduledInAcceptingTask: tally.scheduledInAcceptingTask,
    stickyTasks: tally.stickyTasks,
    examined,
    waitedForTask: countValues(waited),
    stepsWhenNotWaiting: distribution(notWaiting),
    callToTaskWhenWaiting: distribution(waitedCallToTask),
  };
}

const countValues = (values: readonly string[]): Record<string, number> =>
  values.reduce<Record<string, number>>((acc, v) => ((acc[v] = (acc[v] ?? 0) + 1), acc), {});

const stateOf = (url: string): string => new URL(url).searchParams.get('state') ?? '';

/**
 * Follows many slots at once through visibility (SlotPhase, SlotPrompt), one
 * list call per period, instead of a status query per slot: queries are answered
 * by the worker, and a hundred of them a second would load the very worker whose
 * latency is measured.
 */
class SlotWatcher {
  private readonly seen = new Map<string, { phase: string; prompt: string | undefined }>();
  private readonly waiters = new Set<() => void>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly client: Client,
    private readonly host: string,
    private readonly everyMs: number,
  ) {}

  start(): void {
    const tick = async (): Promise<void> => {
      try {
        const query = `WorkflowType = 'slotWorkflow' AND SlotHost = '${this.host}' AND ExecutionStatus = 'Running'`;
        for await (const wf of this.client.workflow.list({ query })) {
          const phase = wf.typedSearchAttributes.get(SlotPhaseKey) ?? 'unknown';
          const prompt = wf.typedSearchAttributes.get(SlotPromptKey) ?? undefined;
          this.seen.set(wf.workflowId.replace(/^slot:/, ''), { phase, prompt });
        }
        for (const w of [...this.waiters]) w();
      } finally {
        this.timer = setTimeout(() => void tick(), this.everyMs);
      }
    };
    void tick();
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  until(slotId: string, check: (s: { phase: string; prompt: string | undefined }) => boolean, timeoutMs: number): Promise<{ phase: string; prompt: string | undefined }> {
    return new Promise((resolve, reject) => {
      const test = (): void => {
        const s = this.seen.get(slotId);
        if (s && check(s)) {
          this.waiters.delete(test);
          clearTimeout(timer);
          resolve(s);
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(test);
        reject(new Error(`${slotId}: still ${JSON.stringify(this.seen.get(slotId))} after ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.waiters.add(test);
      test();
    });
  }
}

async function temporalLogins(rig: Rig, client: Client, slots: SlotClient, host: string): Promise<{ submissions: Submission[]; failures: string[]; wallMs: number }> {
  const failures: string[] = [];
  const started = Date.now();
  const watcher = new SlotWatcher(client, host, WATCH_MS);
  watcher.start();
  let done = 0;
  try {
    const submissions = await inPool(
      Array.from({ length: LOGINS }, (_, i) => `lat-${i}`),
      CONCURRENCY,
      async (slotId): Promise<Submission | undefined> => {
        try {
          await slots.provision({ slotId, provider: 'claude', host });
          const waiting = await watcher.until(slotId, (s) => s.phase === 'awaiting-operator' && s.prompt !== undefined, 60_000);
          // An operator takes a moment to copy the code; it also keeps the slots out of step.
          await sleep(Math.random() * 500);
          const code = `valid-code#${stateOf(waiting.prompt as string)}`;
          const calledAt = Date.now();
          const result = await slots.submitCode(slotId, code);
          const returnedAt = Date.now();
          const end = await watcher.until(slotId, (s) => s.phase === 'active' || s.phase === 'needs-relogin', 60_000);
          if (end.phase !== 'active') failures.push(`${slotId}: ended ${end.phase}`);
          await slots.retire(slotId, { removeFiles: true });
          if (++done % 50 === 0) rig.note(`temporal: ${done}/${LOGINS} logins`);
          return { slotId, tail: code.slice(-16), calledAt, returnedAt, completed: end.phase === 'active', answer: result.answer };
        } catch (err) {
          failures.push(`${slotId}: ${String(err)}`);
          return undefined;
        }
      },
    );
    return { submissions: submissions.filter((s): s is Submission => s !== undefined), failures, wallMs: Date.now() - started };
  } finally {
    watcher.stop();
  }
}

/** The endpoint the scripts' operators post codes to, and their loops poll. */
async function startCodeEndpoint(rig: Rig): Promise<{ url: string; server: Server }> {
  const codes = new Map<string, string>();
  const server = createServer((req, res) => {
    const id = decodeURIComponent((req.url ?? '').replace(/^\/code\//, ''));
    if (req.method === 'POST') {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        codes.set(id, body);
        res.writeHead(204).end();
      });
      return;
    }
    const code = codes.get(id);
    if (code === undefined) res.writeHead(404).end();
    else res.writeHead(200, { 'content-type': 'text/plain' }).end(code);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  rig.defer(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/code/`, server };
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** One login the scripts' way: the CLI under a PTY, a polling loop typing what it fetches. */
async function scriptLogin(slotId: string, dir: string, endpoint: string, inputLog: string, useCurl: boolean): Promise<Submission> {
  const home = join(dir, slotId);
  await mkdir(join(home, '.claude'), { recursive: true, mode: 0o700 });
  let output = '';
  const pty: IPty = spawnPty(join(FIXTURE_BIN, 'claude'), ['auth', 'login'], {
    name: 'xterm-256color',
    cols: 200,
    rows: 50,
    cwd: home,
    env: { PATH: process.env.PATH ?? '', HOME: home, CLAUDE_CONFIG_DIR: join(home, '.claude'), FIXTURE_SPEED, FIXTURE_INPUT_LOG: inputLog },
  });
  const waiters = new Set<() => void>();
  pty.onData((data) => {
    output += data;
    for (const w of waiters) w();
  });
  const until = (pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray | undefined> =>
    new Promise((resolve) => {
      const check = (): void => {
        const m = pattern.exec(output);
        if (m) {
          waiters.delete(check);
          clearTimeout(timer);
          resolve(m);
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        resolve(undefined);
      }, timeoutMs);
      waiters.add(check);
      check();
    });
  let loopPid: number | undefined;
  let stopLoop = (): void => undefined;
  try {
    const prompt = await until(/visit: (https:\/\/\S+)\r?\n[^]*Paste code here/, 30_000);
    if (!prompt) throw new Error(`${slotId}: no prompt from the fixture: ${JSON.stringify(output.slice(-300))}`);
    const code = `valid-code#${stateOf(prompt[1] as string)}`;
    const url = `${endpoint}${encodeURIComponent(slotId)}`;
    if (useCurl) {
      const loop = spawn('bash', [join(PROJECT_ROOT, 'bench', 'baseline', 'poll-code.sh'), url], { stdio: ['ignore', 'pipe', 'ignore'], detached: true });
      loopPid = loop.pid;
      loop.stdout.on('data', (chunk: Buffer) => pty.write(chunk.toString('utf8')));
      stopLoop = () => killGroup(loopPid);
    } else {
      // No curl: the same loop in this process.
      let stopped = false;
      stopLoop = () => void (stopped = true);
      void (async () => {
        for (let i = 0; i < 60 && !stopped; i++) {
          await sleep(POLL_SECONDS * 1000);
          const res = await fetch(url).catch(() => undefined);
          if (res?.status === 200) {
            pty.write(`${await res.text()}\r`);
            return;
          }
        }
      })();
    }
    // The operator answers at a random moment of the loop's 2 s period, as a person would.
    await sleep(Math.random() * POLL_SECONDS * 1000);
    const calledAt = Date.now();
    await fetch(url, { method: 'POST', body: code });
    const returnedAt = Date.now();
    const ok = await until(/Login successful/, 30_000);
    return { slotId, tail: code.slice(-16), calledAt, returnedAt, completed: ok !== undefined };
  } finally {
    stopLoop();
    killGroup(pty.pid);
    pty.kill();
  }
}

await runBenchmark('latency', 15 * 60_000, async (rig) => {
  const useCurl = spawnSync('curl', ['--version'], { stdio: 'ignore' }).status === 0;
  const slotsDir = await rig.tempDir('latency-slots');
  const inputLog = join(slotsDir, '.input.log');
  const { server, client, slots: slotClient, pid: serverPid } = await rig.startServer();
  const host = `bench-${randomUUID().slice(0, 8)}`;
  const taskQueue = `bench-latency-${randomUUID().slice(0, 8)}`;
  const worker = await rig.startWorker(client, {
    address: server.address,
    host,
    taskQueue,
    slotsDir,
    env: { FIXTURE_SPEED, FIXTURE_INPUT_LOG: inputLog, BENCH_LOOP_DELAY: '1' },
  });
  const slots = slotClient(taskQueue);

  rig.note(`temporal: ${LOGINS} logins, ${CONCURRENCY} at a time`);
  const cpu0 = await cpuSnapshot(worker.pid, serverPid);
  await worker.stats(); // starts the worker's event-loop delay afresh
  const temporal = await temporalLogins(rig, client, slots, host);
  const { eventLoopDelayMs } = await worker.stats();
  const cpu = cpuBetween(cpu0, await cpuSnapshot(worker.pid, serverPid));
  const chunks = await readInputLog(inputLog);
  const measured = arrivals(temporal.submissions, chunks);
  const bytesAt = arrivalTimes(temporal.submissions, chunks);
  const steps = await breakdown(client, temporal.submissions, bytesAt);
  // BENCH_LATENCY_TIMELINE=k prints the event timeline of k logins on stderr.
  for (const s of temporal.submissions.slice(0, param('BENCH_LATENCY_TIMELINE', 0))) {
    const lines = await timeline(client, { slot: slotWorkflowId(s.slotId) }, s.calledAt, 400);
    rig.note(`timeline of ${s.slotId} from the submitCode call (bytes at ${(bytesAt.get(s.slotId) ?? NaN) - s.calledAt} ms):\n${lines.join('\n')}`);
  }
  rig.note(`temporal: p99 ${distribution(measured.fromCall).p99} ms from the call (${temporal.failures.length} failures)`);

  rig.note(`baseline: ${BASELINE_LOGINS} logins, ${BASELINE_CONCURRENCY} at a time, ${useCurl ? 'bash + curl' : 'a node loop (no curl)'} polling every ${POLL_SECONDS} s`);
  const baselineDir = await rig.tempDir('latency-baseline');
  const baselineLog = join(baselineDir, '.input.log');
  const endpoint = await startCodeEndpoint(rig);
  const baselineFailures: string[] = [];
  const baselineStart = Date.now();
  const baselineSubs = (
    await inPool(Array.from({ length: BASELINE_LOGINS }, (_, i) => `base-${i}`), BASELINE_CONCURRENCY, (slotId) =>
      scriptLogin(slotId, baselineDir, endpoint.url, baselineLog, useCurl).catch((err: unknown) => {
        baselineFailures.push(String(err));
        return undefined;
      }),
    )
  ).filter((s): s is Submission => s !== undefined);
  const baselineWallMs = Date.now() - baselineStart;
  const base = arrivals(baselineSubs, await readInputLog(baselineLog));
  rig.note(`baseline: p50 ${distribution(base.fromCall).p50} ms, p99 ${distribution(base.fromCall).p99} ms`);

  const ours = distribution(measured.fromCall);
  const theirs = distribution(base.fromCall);
  const targets: Record<string, Target> = {
    p99: { target: 'p99 <= 100 ms from submitCode to the code\'s bytes in the CLI', measured: ours.p99, met: measured.fromCall.length >= 200 ? ours.p99 <= 100 : null },
  };
  return {
    parameters: {
      logins: LOGINS,
      concurrency: CONCURRENCY,
      provider: 'claude fixture (test/fixtures/bin/claude auth login)',
      fixtureSpeed: Number(FIXTURE_SPEED),
      slotsWatchedThrough: `visibility (SlotPhase, SlotPrompt), one list call every ${WATCH_MS} ms`,
      operatorThinkTimeMs: 'uniform in [0, 500)',
      interval: 'from just before SlotClient.submitCode is called to the epoch ms the fixture logged the input chunk holding the code\'s last bytes',
      server: 'temporal server start-dev, in memory',
      worker: 'bench/worker-entry.ts → workers/worker.ts runWorker, own process',
      workerVariant: process.env.BENCH_PRELOAD_MODULES ? `experiment: preloadModules ${process.env.BENCH_PRELOAD_MODULES}` : 'production',
    },
    results: {
      submitToPtyMs: ours,
      /** submitCode returns when the update completes, i.e. after the CLI's verdict on the code: the bytes arrive before it (negative). */
      submitReturnedToPtyMs: distribution(measured.fromReturn),
      /** submitCode call → the update's answer (the CLI's verdict), as the operator waits for it. */
      submitCallToAnswerMs: distribution(temporal.submissions.map((s) => s.returnedAt - s.calledAt)),
      answers: countValues(temporal.submissions.map((s) => s.answer ?? 'none')),
      /** Where the time goes, from the slot's history (server event times). */
      stepsMs: steps.steps,
      /** Logins whose submitLoginCode was scheduled by the very workflow task that accepted the update (of those examined). */
      activityScheduledInAcceptingTask: { count: steps.scheduledInAcceptingTask, of: steps.examined },
      /** Updates whose task went to the worker's sticky queue (the slot workflow still cached, no replay). */
      updateTaskOnStickyQueue: { count: steps.stickyTasks, of: steps.examined },
      /** Updates that arrived while a task of the same workflow was scheduled or running (they wait for it), by what that task was for. */
      updateWaitedForAnotherTask: steps.waitedForTask,
      /** callToUpdateTaskStarted of those updates. */
      callToUpdateTaskStartedWhenWaiting: steps.callToTaskWhenWaiting,
      /** submit → PTY of the others: the path the engine floor's (idle) workflows always take. */
      submitToPtyMsWhenNotWaiting: steps.stepsWhenNotWaiting,
      measuredLogins: measured.fromCall.length,
      loginsCompleted: temporal.submissions.filter((s) => s.completed).length,
      missingArrivals: measured.missing,
      failures: temporal.failures.slice(0, 10),
      failureCount: temporal.failures.length,
      wallSeconds: round(temporal.wallMs / 1000, 1),
      /** CPU seconds while the logins ran: the machine has 2 cores. */
      cpuSeconds: cpu,
      /** The worker's main thread while the logins ran: how long a ready task (an activation, an activity) waited for it. */
      workerEventLoopDelayMs: eventLoopDelayMs,
    },
    baseline: {
      what: `a ${POLL_SECONDS} s polling loop per login (bench/baseline/poll-code.sh: ${useCurl ? 'bash + curl' : 'node fetch, curl missing'}) fetching the code from a local HTTP endpoint; the driver holds the CLI's PTY and types what the loop prints`,
      operatorThinkTime: `uniform in [0, ${POLL_SECONDS} s) after the prompt, so the POST lands at a random phase of the loop`,
      postToPtyMs: theirs,
      measuredLogins: base.fromCall.length,
      loginsCompleted: baselineSubs.filter((s) => s.completed).length,
      missingArrivals: base.missing,
      failures: baselineFailures.slice(0, 10),
      failureCount: baselineFailures.length,
      wallSeconds: round(baselineWallMs / 1000, 1),
      speedup: { p50: round(theirs.p50 / ours.p50, 1), p99: round(theirs.p99 / ours.p99, 1) },
    },
    targets,
  };
});
