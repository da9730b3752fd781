// Replays recorded histories against the workflow code: a change that would
// break running workflows (non-determinism) fails here, not in production. And
// every `patched()` in workflows/ has both its branches replayed by some history.
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode, Worker, type WorkflowBundle } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { workflowBundle } from '../harness';
import { WORKFLOWS_PATH } from '../../workers/worker';
import { cachedWorkflowBundle } from '../../workers/workflow-bundle';
import { WORKFLOW_TRACING_MODULE } from '../../host/tracing';
import { FROZEN_HISTORIES_DIR, HISTORIES_DIR, historyFile, SCENARIOS, takesOldBranch, V1_HISTORIES_DIR, type RecordedKind, type Scenario, type ScenarioName } from './histories';
import type { PatchSinks } from './patch-probe';

const jsonFiles = async (dir: string): Promise<string[]> => (await readdir(dir)).filter((f) => f.endsWith('.json')).sort();
const files = await jsonFiles(HISTORIES_DIR);
const frozenFiles = await jsonFiles(FROZEN_HISTORIES_DIR);
const v1Files = await jsonFiles(V1_HISTORIES_DIR);
/** Today's histories and the frozen ones, replayed against today's code. */
const current = [...files.map((f) => join(HISTORIES_DIR, f)), ...frozenFiles.map((f) => join(FROZEN_HISTORIES_DIR, f))];
const LEGACY_WORKFLOWS = fileURLToPath(new URL('../fixtures/legacy-v1/workflows/index.ts', import.meta.url));
const WORKFLOWS_DIR = fileURLToPath(new URL('../../workflows', import.meta.url));
const PATCH_PROBE = fileURLToPath(new URL('./patch-probe.ts', import.meta.url));
const name = (path: string): string => relative(HISTORIES_DIR, path);

type JsonHistory = { events: Array<{ eventType: string; markerRecordedEventAttributes?: { markerName?: string; details?: Record<string, { payloads?: Array<{ data?: string }> }> } }> };
const readHistory = async (path: string): Promise<JsonHistory> => JSON.parse(await readFile(path, 'utf8')) as JsonHistory;

const replay = async (bundle: WorkflowBundle, path: string): Promise<void> => {
  // The worker takes the JSON form as the temporal CLI writes it.
  const history = await readHistory(path);
  expect(history.events.length).toBeGreaterThan(5);
  await Worker.runReplayHistory({ workflowBundle: bundle }, history, name(path));
};

const quiet = { log: () => undefined, trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: (m: string) => console.error(m) };

/** The patch ids `patched('…')` / `deprecatePatch('…')` name in workflows/ (literals, or constants of this file). */
async function patchIdsInWorkflows(): Promise<Map<string, { file: string; deprecated: boolean }>> {
  const ids = new Map<string, { file: string; deprecated: boolean }>();
  for (const entry of await readdir(WORKFLOWS_DIR, { recursive: true })) {
    if (!entry.endsWith('.ts')) continue;
    const source = await readFile(join(WORKFLOWS_DIR, entry), 'utf8');
    const constants = new Map([...source.matchAll(/const\s+([A-Za-z_$][\w$]*)\s*=\s*'([^']+)'/g)].map((m) => [m[1] as string, m[2] as string]));
    for (const call of source.matchAll(/\b(patched|deprecatePatch)\(\s*(?:'([^']+)'|"([^"]+)"|([A-Za-z_$][\w$]*))\s*\)/g)) {
      const id = call[2] ?? call[3] ?? constants.get(call[4] as string);
      if (id === undefined) throw new Error(`workflows/${entry}: ${call[0]} names no string constant of its file; name a patch with a literal or a const in the same file`);
      ids.set(id, { file: `workflows/${entry}`, deprecated: call[1] === 'deprecatePatch' });
    }
  }
  return ids;
}

/** The ids of the patch markers a history recorded (a marker: the new branch was taken when it was recorded). */
const markersOf = (history: JsonHistory): string[] =>
  history.events.flatMap((e) => {
    const attrs = e.markerRecordedEventAttributes;
    if (!e.eventType.endsWith('MARKER_RECORDED') || attrs?.markerName !== 'core_patch') return [];
    const data = (attrs.details?.['patch-data'] ?? attrs.details?.patch_data)?.payloads?.[0]?.data;
    return data ? [(JSON.parse(Buffer.from(data, 'base64').toString('utf8')) as { id: string }).id] : [];
  });

describe('recorded histories of the slot and pool workflows replay without non-determinism', () => {
  it('has a history for every scenario, every workflow type and provider', async () => {
    for (const [scenario, { saves }] of Object.entries(SCENARIOS)) {
      for (const kind of saves as readonly RecordedKind[]) expect(files, 'run `npm run histories:record`').toContain(historyFile(scenario as ScenarioName, kind));
    }
    expect(files.some((f) => f.startsWith('continue-as-new.slot.run-'))).toBe(true);
    // Every provider's slot, and the pool, from today's code.
    const started = await Promise.all(
      files.map(async (f) => {
        const first = (await readHistory(join(HISTORIES_DIR, f))).events[0] as { workflowExecutionStartedEventAttributes?: { workflowType?: { name?: string }; input?: { payloads?: Array<{ data?: string }> } } };
        const attrs = first.workflowExecutionStartedEventAttributes;
        const input = JSON.parse(Buffer.from(attrs?.input?.payloads?.[0]?.data ?? '', 'base64').toString('utf8')) as { provider?: string };
        return `${attrs?.workflowType?.name}:${input.provider}`;
      }),
    );
    expect(new Set(started)).toEqual(new Set(['slotWorkflow:claude', 'slotWorkflow:codex', 'slotWorkflow:claude-setup-token', 'slotWorkflow:oidc-device', 'poolWorkflow:claude']));
  });

  it.each(current.map(name))('%s', async (file) => {
    await replay(await workflowBundle(), join(HISTORIES_DIR, file));
  });

  it('a refresh cycle costs at most 12 history events', async () => {
    // Two refreshes in this history: the events between the adopt check and the retire, per cycle.
    const history = await readHistory(join(HISTORIES_DIR, historyFile('refresh-transient-then-success', 'slot')));
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

describe('every patch in workflows/ has both branches replayed', () => {
  // The replay reports each patch decision through a sink (test/replay/patch-probe.ts): the exact
  // branch each history takes in today's code, not a guess from its markers.
  let probed: Promise<WorkflowBundle> | undefined;
  const probeBundle = async (): Promise<WorkflowBundle> =>
    (probed ??= cachedWorkflowBundle(
      { workflowsPath: WORKFLOWS_PATH, workflowInterceptorModules: [PATCH_PROBE], logger: quiet },
      { extraKey: await readFile(PATCH_PROBE, 'utf8') },
    ).then((c) => c.bundle));

  /** history file → patch id → the branches it took (true: new). */
  const decisions = async (): Promise<Map<string, Map<string, Set<boolean>>>> => {
    const taken = new Map<string, Map<string, Set<boolean>>>();
    const sinks = {
      patches: {
        decided: {
          fn: (info: { workflowId: string }, patchId: string, used: boolean) => {
            const perFile = taken.get(info.workflowId) ?? new Map<string, Set<boolean>>();
            taken.set(info.workflowId, perFile.set(patchId, (perFile.get(patchId) ?? new Set()).add(used)));
          },
          callDuringReplay: true,
        },
      },
    } satisfies { [K in keyof PatchSinks]: Record<keyof PatchSinks[K], { fn: (info: { workflowId: string }, ...args: never[]) => void; callDuringReplay: boolean }> };
    const histories = await Promise.all(current.map(async (path) => ({ workflowId: name(path), history: await readHistory(path) })));
    for await (const result of Worker.runReplayHistories({ workflowBundle: await probeBundle(), sinks }, histories)) {
      if (result.error) throw result.error;
    }
    return taken;
  };

  it('a patch no history exercises (either branch) fails this test; markers agree with the branches taken', async () => {
    const ids = await patchIdsInWorkflows();
    // The patches of today's code (a new one appears here by itself).
    expect([...ids.keys()].sort()).toEqual(expect.arrayContaining(['auth-failure-probes', 'credential-restore', 'lease-agent-plan', 'live-probes', 'operator-notices', 'transient-refresh-failures']));
    const taken = await decisions();
    const missing: string[] = [];
    for (const [id, { file, deprecated }] of ids) {
      const newBranch = [...taken].filter(([, d]) => d.get(id)?.has(true)).map(([f]) => f);
      const oldBranch = [...taken].filter(([, d]) => d.get(id)?.has(false)).map(([f]) => f);
      if (newBranch.length === 0) missing.push(`${id} (${file}): no history takes its new branch; run \`npm run histories:record\` with a scenario that reaches it (test/replay/histories.ts)`);
      // A deprecated patch has no old branch left.
      if (!deprecated && oldBranch.length === 0) missing.push(`${id} (${file}): no history takes its old branch; add a scenario with oldBranches: ['${id}'] (test/replay/histories.ts)`);
    }
    expect(missing).toEqual([]);
    // What the probe saw agrees with the histories' own markers: a new branch taken is a marker recorded.
    for (const path of current) {
      const markers = new Set(markersOf(await readHistory(path)));
      for (const [id, branches] of taken.get(name(path)) ?? []) {
        if (!ids.has(id)) continue;
        expect(branches.has(true), `${name(path)}: ${id}`).toBe(markers.has(id));
      }
    }
  });

  it('the scenarios recorded with old branches did take them, and the others the new ones', async () => {
    const taken = await decisions();
    const ids = await patchIdsInWorkflows();
    for (const [scenario, spec] of Object.entries(SCENARIOS) as Array<[ScenarioName, Scenario]>) {
      for (const kind of spec.saves) {
        for (const [id, branches] of taken.get(historyFile(scenario, kind)) ?? []) {
          if (!ids.has(id)) continue;
          expect([...branches], `${scenario}.${kind}: ${id}`).toEqual([!takesOldBranch(scenario, id)]);
        }
      }
    }
  });
});

describe.runIf(existsSync(LEGACY_WORKFLOWS))('histories of the child-workflow design (v1) replay against the frozen v1 code', () => {
  let legacy: Promise<WorkflowBundle> | undefined;
  const legacyBundle = (): Promise<WorkflowBundle> => (legacy ??= bundleWorkflowCode({ workflowsPath: LEGACY_WORKFLOWS, logger: quiet }));
  it.each(v1Files)('%s', async (file) => {
    await replay(await legacyBundle(), join(V1_HISTORIES_DIR, file));
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
    (traced ??= cachedWorkflowBundle({ workflowsPath: WORKFLOWS_PATH, workflowInterceptorModules: [WORKFLOW_TRACING_MODULE], logger: quiet }).then((c) => c.bundle));
  const isPool = (file: string): boolean => file.includes('.pool.');
  it.each(current.map(name).filter((f) => !isPool(f)))('%s', async (file) => {
    const bundle = await tracedBundle();
    expect(bundle.code).toContain('OpenTelemetryInboundInterceptor');
    await replay(bundle, join(HISTORIES_DIR, file));
  });
  // KNOWN DEFECT, found by these histories: a pool's update handler that publishes (upserts search
  // attributes) in the activation that accepts the update replays in another order with the tracing
  // interceptors ("Update machine does not handle this event: UpsertWorkflowSearchAttributes").
  // Turning tracing on or off under running pools breaks them at their next replay. When fixed, this
  // fails: make it a plain `it.each` like the one above.
  it.fails.each(current.map(name).filter(isPool))('%s (pools do NOT replay with tracing: known defect)', async (file) => {
    await replay(await tracedBundle(), join(HISTORIES_DIR, file));
  });
});
