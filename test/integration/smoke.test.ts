import { Worker } from '@temporalio/worker';
import { NativeConnection } from '@temporalio/worker';
import { fileURLToPath } from 'node:url';
import { hostname } from 'node:os';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { devServerClient, timeSkippingEnv, uniqueName } from '../harness';
import { greetFromActivity, sleepForDays } from '../fixtures/smoke-workflows';

const smokeWorkflows = fileURLToPath(new URL('../fixtures/smoke-workflows.ts', import.meta.url));

describe('Temporal servers', () => {
  const closers: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const close of closers.reverse()) await close();
  });

  it('runs a workflow with an activity on the real dev server', async () => {
    const { client, connection } = await devServerClient();
    closers.push(() => connection.close());
    const native = await NativeConnection.connect({ address: inject('temporalAddress') });
    closers.push(() => native.close());
    const taskQueue = uniqueName('smoke');
    const worker = await Worker.create({
      connection: native,
      taskQueue,
      workflowsPath: smokeWorkflows,
      activities: { describeHost: async (name: string) => `hello ${name} from ${hostname()} pid ${process.pid}` },
    });
    const result = await worker.runUntil(
      client.workflow.execute(greetFromActivity, { taskQueue, workflowId: uniqueName('smoke'), args: ['slot-a'] }),
    );
    expect(result).toBe(`hello slot-a from ${hostname()} pid ${process.pid}`);
    // The run is in the server's history, not just in memory.
    const listed = [];
    for await (const wf of client.workflow.list({ query: `TaskQueue = "${taskQueue}"` })) listed.push(wf);
    expect(listed.map((wf) => wf.status.name)).toEqual(['COMPLETED']);
  });

  it('finishes a workflow that sleeps for days in seconds under time skipping', async () => {
    const env = await timeSkippingEnv();
    closers.push(() => env.teardown());
    const taskQueue = uniqueName('skip');
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowsPath: smokeWorkflows });
    const started = Date.now();
    const slept = await worker.runUntil(
      env.client.workflow.execute(sleepForDays, { taskQueue, workflowId: uniqueName('sleep'), args: [5] }),
    );
    expect(slept).toBeGreaterThanOrEqual(5 * 24 * 3600_000);
    expect(Date.now() - started).toBeLessThan(60_000);
  });
});
