// Test plumbing: a client on the shared dev server, a cached workflow bundle,
// and workers on task queues unique to each test.
import { Client, Connection } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { NativeConnection, type WorkflowBundle } from '@temporalio/worker';
import { randomUUID } from 'node:crypto';
import { inject } from 'vitest';
import { createSlotWorkers, registerSearchAttributes, WORKFLOWS_PATH, type SlotWorkerOptions, type SlotWorkers } from '../workers/worker';
import { cachedWorkflowBundle } from '../workers/workflow-bundle';
import { TEST_ALLOWED_ENDPOINT_HOSTS, TEST_OIDC_SERVERS } from './worker-process';

let bundle: Promise<WorkflowBundle> | undefined;
/** Bundling takes seconds; every worker in a test file shares one bundle. */
export const workflowBundle = (): Promise<WorkflowBundle> =>
  // Built once per set of sources for all test files (and workers), then read from the cache.
  (bundle ??= cachedWorkflowBundle({ workflowsPath: WORKFLOWS_PATH, logger: quietBundlerLogger }).then((c) => c.bundle));

let encodedFailuresBundle: Promise<WorkflowBundle> | undefined;
/** The bundle for workers whose data converter seals failures (keys set): workflow code converts its own failures. */
const workflowBundleFor = (dataConverter: SlotWorkerOptions['dataConverter']): Promise<WorkflowBundle> => {
  const failureConverterPath = dataConverter?.failureConverterPath;
  if (!failureConverterPath) return workflowBundle();
  return (encodedFailuresBundle ??= cachedWorkflowBundle({ workflowsPath: WORKFLOWS_PATH, failureConverterPath, logger: quietBundlerLogger }).then((c) => c.bundle));
};

const quietBundlerLogger = {
  log: () => undefined, trace: () => undefined, debug: () => undefined, info: () => undefined,
  warn: (m: string) => console.warn(m), error: (m: string) => console.error(m),
};

/** A client on the run's dev server, or on `address`, bound to `namespace` (@default "default"). */
export async function devServerClient(address = inject('temporalAddress'), namespace = 'default'): Promise<{ client: Client; connection: Connection }> {
  const connection = await Connection.connect({ address });
  return { client: new Client({ connection, namespace }), connection };
}

export const uniqueName = (prefix: string): string => `${prefix}-${randomUUID().slice(0, 8)}`;

export interface RunningWorkers extends SlotWorkers {
  readonly host: SlotWorkers['host'];
  readonly hostName: string;
  readonly sharedTaskQueue: string;
  stop(): Promise<void>;
}

/** Starts slot workers on the run's dev server (or at `address`) with a fresh host name and shared queue. */
export async function startWorkers(
  opts: Omit<SlotWorkerOptions, 'connection' | 'namespace' | 'host' | 'sharedTaskQueue'> & {
    hostName?: string;
    sharedTaskQueue?: string;
    address?: string;
    /** @default "default" */
    namespace?: string;
  },
): Promise<RunningWorkers> {
  const { address = inject('temporalAddress'), namespace = 'default', ...workerOptions } = opts;
  const connection = await NativeConnection.connect({ address });
  const hostName = opts.hostName ?? uniqueName('host');
  const sharedTaskQueue = opts.sharedTaskQueue ?? uniqueName('shared');
  const workers = await createSlotWorkers({
    ...workerOptions,
    // The test peers listen on loopback; a test may name its own list.
    env: { SLOTS_ALLOWED_ENDPOINT_HOSTS: TEST_ALLOWED_ENDPOINT_HOSTS, SLOTS_OIDC_SERVERS: TEST_OIDC_SERVERS, ...(workerOptions.env ?? process.env) },
    connection,
    namespace,
    host: hostName,
    sharedTaskQueue,
    workflowBundle: await workflowBundleFor(workerOptions.dataConverter),
  });
  const running = workers.run();
  return {
    ...workers,
    hostName,
    sharedTaskQueue,
    async stop() {
      workers.shutdown();
      await running;
      await connection.close();
    },
  };
}

/** A time-skipping environment on the project's own test server build. */
export async function timeSkippingEnv(): Promise<TestWorkflowEnvironment> {
  const path = inject('testServerPath');
  const env = await TestWorkflowEnvironment.createTimeSkipping(
    path ? { server: { executable: { type: 'existing-path', path } } } : {},
  );
  await registerSearchAttributes(env.connection, 'default');
  return env;
}
