// Replays recorded histories against today's workflow code: a change that
// would break running workflows (non-determinism) fails here, not in production.
import { readdir, readFile } from 'node:fs/promises';
import { Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { workflowBundle } from '../harness';
import { HISTORIES_DIR } from './histories';

const files = (await readdir(HISTORIES_DIR)).filter((f) => f.endsWith('.json')).sort();

describe('recorded histories replay without non-determinism', () => {
  it('has histories for every recorded scenario', () => {
    const scenarios = new Set(files.map((f) => f.split('.')[0]));
    expect([...scenarios].sort()).toEqual(
      expect.arrayContaining(['device-login-refresh-retire', 'login-bad-code-then-success', 'login-success', 'login-timeout', 'refresh-transient-then-success']),
    );
    for (const scenario of scenarios) expect(files).toContain(`${scenario}.slot.json`);
    expect(files.filter((f) => f.includes('.login-'))).toHaveLength(4);
    expect(files.filter((f) => f.includes('.refresh-'))).toHaveLength(4);
  });

  it.each(files)('%s', async (file) => {
    // The worker takes the JSON form as the temporal CLI writes it.
    const history = JSON.parse(await readFile(`${HISTORIES_DIR}/${file}`, 'utf8')) as { events: unknown[] };
    expect(history.events.length).toBeGreaterThan(5);
    await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history, file);
  });
});

describe('the workflow bundle', () => {
  it('carries no schema library: every cached workflow would hold its own copy', async () => {
    const { code } = await workflowBundle();
    expect(code).not.toMatch(/node_modules\/zod\//);
    expect(code.length).toBeLessThan(4_000_000);
  });
});
