// The workflow bundle is built once per set of sources and then reused.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cachedWorkflowBundle } from '../../workers/workflow-bundle';
import { WORKFLOWS_PATH } from '../../workers/worker';

const quiet = { log: () => undefined, trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: (m: string) => console.error(m) };

describe('cachedWorkflowBundle', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it('builds once, then serves the same bundle from the cache; other options make another bundle', { timeout: 240_000 }, async () => {
    const cacheDir = await mkdtemp(join(tmpdir(), 'bundles-'));
    dirs.push(cacheDir);
    const first = await cachedWorkflowBundle({ workflowsPath: WORKFLOWS_PATH, logger: quiet }, { cacheDir });
    expect(first.built).toBe(true);
    expect(first.bundle.code).toContain('slotWorkflow');
    const second = await cachedWorkflowBundle({ workflowsPath: WORKFLOWS_PATH, logger: quiet }, { cacheDir });
    expect(second.built).toBe(false);
    expect(second.file).toBe(first.file);
    expect(second.bundle.code).toBe(first.bundle.code);
    const other = await cachedWorkflowBundle({ workflowsPath: WORKFLOWS_PATH, logger: quiet }, { cacheDir, extraKey: 'another build' });
    expect(other.built).toBe(true);
    expect(other.file).not.toBe(first.file);
    // No temp file is left behind.
    expect((await readdir(cacheDir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});
