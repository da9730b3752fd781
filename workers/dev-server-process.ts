// The Temporal dev server as a child process of `npm start` (not through the SDK's
// ephemeral server, which gives no exit event): its supervisor sees it end and starts it
// again on the same port and SQLite file, so the worker and clients simply reconnect.
import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Connection } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import { ALL_SEARCH_ATTRIBUTES } from '../common/search-attributes';
import { assertPortFree } from './dev-server';
import { watchChild } from './supervised-child';
import type { SupervisedRun } from './supervisor';
import { devServerDynamicConfigArgs } from './dev-server-config';

export interface DevServerProcessOptions {
  /** The `temporal` CLI. */
  readonly path: string;
  readonly ip: string;
  readonly port: number;
  /** Web UI port; no UI when omitted. */
  readonly uiPort?: number;
  /** The SQLite file that keeps state across restarts. */
  readonly dbFile: string;
  readonly namespace: string;
  readonly uiCodecEndpoint?: string;
  /** How long the server may take to answer. @default 60000 */
  readonly readyTimeoutMs?: number;
}

export interface DevServerRun extends SupervisedRun {
  readonly pid: number;
  readonly address: string;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The arguments the SDK's ephemeral server gives `temporal server start-dev`, plus ours. */
function devServerArgs(opts: DevServerProcessOptions): string[] {
  return [
    'server', 'start-dev',
    '--ip', opts.ip,
    '--port', String(opts.port),
    '--namespace', opts.namespace,
    '--db-filename', opts.dbFile,
    '--log-format', 'pretty',
    '--log-level', 'warn',
    ...devServerDynamicConfigArgs(),
    ...(opts.uiPort !== undefined ? ['--ui-port', String(opts.uiPort)] : ['--headless']),
    ...ALL_SEARCH_ATTRIBUTES.flatMap((key) => ['--search-attribute', `${key.name}=${TypedSearchAttributes.toMetadataType(key.type)}`]),
    ...(opts.uiCodecEndpoint ? ['--ui-codec-endpoint', opts.uiCodecEndpoint] : []),
  ];
}

/** Starts the dev server and resolves once its namespace answers; rejects with its last words if it ends first. */
export async function startDevServerProcess(opts: DevServerProcessOptions): Promise<DevServerRun> {
  await assertPortFree(opts.ip, opts.port, 'TEMPORAL_PORT');
  if (opts.uiPort !== undefined) await assertPortFree(opts.ip, opts.uiPort, 'TEMPORAL_UI_PORT');
  await mkdir(dirname(opts.dbFile), { recursive: true });
  // Same process group as `npm start`: Ctrl-C reaches it too, and nothing outlives a killed group.
  const child = spawn(opts.path, devServerArgs(opts), { stdio: ['ignore', 'pipe', 'pipe'] });
  const { ended, exited, lastWords, stop } = watchChild(child, opts.path, [child.stdout, child.stderr]);
  const address = `${opts.ip === '0.0.0.0' ? '127.0.0.1' : opts.ip}:${opts.port}`;

  const deadline = Date.now() + (opts.readyTimeoutMs ?? 60_000);
  for (;;) {
    if (exited() !== undefined) throw new Error(`the Temporal dev server ended before it was ready (${exited()})`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the Temporal dev server did not answer on ${address} within ${(opts.readyTimeoutMs ?? 60_000) / 1000} s; it said: ${lastWords()}`);
    }
    try {
      const connection = await Connection.connect({ address, connectTimeout: '1 second' });
      try {
        await connection.workflowService.describeNamespace({ namespace: opts.namespace });
      } finally {
        await connection.close();
      }
      break;
    } catch {
      await sleep(250);
    }
  }
  return { pid: child.pid ?? -1, address, ended, stop };
}
