// The codec server of `npm start` as a child process (this file is also its entry point):
// a process of its own can end, be seen to end and be started again by the supervisor on
// the same port, which the Web UI was told at its start (`--ui-codec-endpoint`). The child
// reads the same environment as `npm start` (the keys, CODEC_SERVER_TOKEN, CODEC_PORT …),
// says on stdout where it listens, and exits on SIGINT/SIGTERM or when `npm start` is gone
// (its stdin closes), so it never outlives the process that supervises it.
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../common/failures';
import { assertCodecToken, startCodecServer } from './codec-server';
import { loadConfigOrExit } from '../host/config';
import { AesGcmPayloadCodec } from '../client/encryption';
import { watchChild } from './supervised-child';
import type { SupervisedRun } from './supervisor';
import { PROJECT_ROOT } from './temporal-binaries';

export interface CodecServerRun extends SupervisedRun {
  readonly pid: number;
  /** `http://127.0.0.1:8234`: where the child listens. */
  readonly url: string;
}

const READY = /^codec server listening (http:\/\/\S+)$/m;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Starts the codec server process and resolves once it listens; rejects with its last
 * words when it ends first (a port in use, a bad key). A missing or malformed token is
 * the ConfigError naming CODEC_SERVER_TOKEN, thrown before anything starts.
 */
export async function startCodecServerProcess(opts: { token: string | undefined; env?: NodeJS.ProcessEnv; readyTimeoutMs?: number }): Promise<CodecServerRun> {
  assertCodecToken(opts.token);
  // Through the compiled-entry launcher whatever runs `npm start` (tsx or compiled JavaScript).
  const child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'run-compiled.mjs'), fileURLToPath(import.meta.url)], {
    cwd: PROJECT_ROOT,
    env: opts.env ?? process.env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
  const { ended, exited, lastWords, stop } = watchChild(child, process.execPath, [child.stderr]);
  const timeoutMs = opts.readyTimeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ready = READY.exec(out);
    if (ready) return { pid: child.pid ?? -1, url: ready[1] as string, ended, stop };
    if (exited() !== undefined) throw new Error(`the codec server ended before it listened (${exited()})`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the codec server did not listen within ${timeoutMs / 1000} s; it said: ${lastWords()}`);
    }
    await sleep(50);
  }
}

/** The child: the codec server `npm start` configures, until a signal or the end of stdin. */
async function serve(): Promise<void> {
  const config = loadConfigOrExit();
  if (!config.encryptionKeys) throw new ConfigError(['SLOTS_ENCRYPTION_KEYS: the codec server needs the keys it decodes with']);
  const server = await startCodecServer({
    codec: new AesGcmPayloadCodec(config.encryptionKeys),
    corsOrigins: config.codec.uiOrigins,
    host: config.devServer.ip,
    port: config.codec.port,
    bearerToken: config.codec.bearerToken ?? '',
    enableEncode: config.codec.enableEncode,
    ...(config.codec.allowedHosts ? { allowedHosts: config.codec.allowedHosts } : {}),
  });
  process.stdout.write(`codec server listening ${server.url}\n`);
  const stopped = new Promise<string>((resolveStop) => {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => resolveStop(signal));
    process.stdin.once('end', () => resolveStop('npm start is gone'));
    process.stdin.resume();
  });
  const why = await Promise.race([stopped, server.ended]);
  await server.close();
  if (!['SIGINT', 'SIGTERM', 'npm start is gone'].includes(why)) {
    process.stderr.write(`codec server stopped: ${why}\n`);
    process.exit(1);
  }
  process.exit(0);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await serve().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(err instanceof ConfigError ? 2 : 1);
  });
}
