// Replays recorded histories against the workflow code: a change that would
// break running workflows (non-determinism) fails here, not in production.
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode, Worker, type WorkflowBundle } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { workflowBundle } from '../harness';
import { WORKFLOWS_PATH } from '../../workers/worker';
import { cachedWorkflowBundle } from '../../workers/workflow-bundle';
import { WORKFLOW_TRACING_MODULE } from '../../workers/tracing';
import { HISTORIES_DIR, SCENARIOS, V1_HISTORIES_DIR } from './histories';

const jsonFiles = async (dir: string): Promise<string[]> => (await readdir(dir)).filter((f) => f.endsWith('.json')).sort();
const files = await jsonFiles(HISTORIES_DIR);
const v1Files = await jsonFiles(V1_HISTORIES_DIR);
const LEGACY_WORKFLOWS = fileURLToPath(new URL('../fixtures/legacy-v1/workflows/index.ts', import.meta.url));

const replay = async (bundle: WorkflowBundle, dir: string, file: string): Promise<void> => {
  // The worker takes the JSON form as the temporal CLI writes it.
  const history = JSON.parse(await readFile(`${dir}/${file}`, 'utf8')) as { events: unknown[] };
  expect(history.events.length).toBeGreaterThan(5);
  await Worker.runReplayHistory({ workflowBundle: bundle }, history, file);
};

describe('recorded histories of the slot workflow replay without non-determinism', () => {
  it('has a history for every scenario, and continue-as-new recorded both runs', () => {
    for (const scenario of SCENARIOS) expect(files).toContain(`${scenario}.slot.json`);
    expect(files.some((f) => f.startsWith('continue-as-new.run-'))).toBe(true);
  });

  it.each(files)('%s', async (file) => {
    await replay(await workflowBundle(), HISTORIES_DIR, file);
  });

  it('a refresh cycle costs at most 12 history events', async () => {
    // Two refreshes in this history: the events between the adopt check and the retire, per cycle.
    const history = JSON.parse(await readFile(`${HISTORIES_DIR}/refresh-transient-then-success.slot.json`, 'utf8')) as { events: Array<{ eventType: string }> };
    const types = history.events.map((e) => e.eventType.replace(/^EVENT_TYPE_/, ''));
    const scheduled = types.flatMap((t, i) => (t === 'ACTIVITY_TASK_SCHEDULED' ? [i] : []));
    expect(scheduled.length).toBeGreaterThanOrEqual(2);
    const timerStarted = types.indexOf('TIMER_STARTED');
    // From the timer the slot sleeps on to the one after the refresh it woke for; the operator's
    // refreshNow signal is not the cycle's cost (a due timer fires instead of being cancelled).
    const nextTimer = types.indexOf('TIMER_STARTED', timerStarted + 1);
    expect(nextTimer).toBeGreaterThan(timerStarted);
    const cycle = types.slice(timerStarted, nextTimer).filter((t) => t !== 'WORKFLOW_EXECUTION_SIGNALED');
    expect(cycle.length).toBeLessThanOrEqual(12);
  });
});

describe.runIf(existsSync(LEGACY_WORKFLOWS))('histories of the child-workflow design (v1) replay against the frozen v1 code', () => {
  let legacy: Promise<WorkflowBundle> | undefined;
  const legacyBundle = (): Promise<WorkflowBundle> =>
    (legacy ??= bundleWorkflowCode({ workflowsPath: LEGACY_WORKFLOWS, logger: { log: () => undefined, trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: (m) => console.error(m) } }));
  it.each(v1Files)('%s', async (file) => {
    await replay(await legacyBundle(), V1_HISTORIES_DIR, file);
  });
});

describe('the workflow bundle', () => {
  it('carries no schema library: every cached workflow would hold its own copy', async () => {
    const { code } = await workflowBundle();
    expect(code).not.toMatch(/node_modules\/zod\//);
    expect(code.length).toBeLessThan(4_000_000);
  });
});

describe('with the tracing interceptors in the bundle (OTEL_EXPORTER_* set), the recorded histories still replay', () => {
  let traced: Promise<WorkflowBundle> | undefined;
  // The workflow side of @temporalio/interceptors-opentelemetry adds spans, never commands.
  const tracedBundle = (): Promise<WorkflowBundle> =>
    (traced ??= cachedWorkflowBundle({
      workflowsPath: WORKFLOWS_PATH,
      workflowInterceptorModules: [WORKFLOW_TRACING_MODULE],
      logger: { log: () => undefined, trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: (m) => console.error(m) },
    }).then((c) => c.bundle));
  it.each(files)('%s', async (file) => {
    const bundle = await tracedBundle();
    expect(bundle.code).toContain('OpenTelemetryInboundInterceptor');
    await replay(bundle, HISTORIES_DIR, file);
  });
});
