// The metrics and tracing backends the tests run against: a real Prometheus and a
// real Zipkin on free loopback ports, obtained by test/observability-binaries.ts.
// Missing on a user's machine: the tests skip saying why; with CI set they fail.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { obtainPrometheus, obtainZipkin, type PrometheusBinaries } from '../observability-binaries';

/** The binaries, or why they cannot be had (which throws when CI is set). */
export async function availableOrSkip<T>(what: string, obtain: () => Promise<T>): Promise<{ ok: true; value: T } | { ok: false; reason: string }> {
  try {
    return { ok: true, value: await obtain() };
  } catch (err) {
    const reason = `${what} is not available, so this test is skipped: ${(err as Error).message}`;
    if (process.env.CI) throw new Error(`${reason} (CI is set: failing instead of skipping)`, { cause: err });
    console.warn(reason);
    return { ok: false, reason };
  }
}

export const prometheusBinaries = (): Promise<PrometheusBinaries> => obtainPrometheus();

/** A port nobody listens on right now (for servers that must be told their port up front). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Running {
  readonly url: string;
  output(): string;
  stop(): Promise<void>;
}

function launch(command: string, args: string[], url: string, readyPath: string, dir?: string): Promise<Running> {
  const child: ChildProcess = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer): void => void (output = (output + chunk.toString()).slice(-20_000));
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(10_000).then(() => child.kill('SIGKILL'))]);
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  };
  return (async () => {
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`${command} exited with ${child.exitCode} before it was ready:\n${output}`);
      const ready = await fetch(`${url}${readyPath}`).then((r) => r.ok, () => false);
      if (ready) return { url, output: () => output, stop };
      await sleep(250);
    }
    await stop();
    throw new Error(`${command} was not ready at ${url}${readyPath} within 120 s:\n${output}`);
  })();
}

/** Prometheus scraping `targets` every second, with `ruleFiles` loaded. */
export async function startPrometheus(binaries: PrometheusBinaries, opts: { job: string; targets: string[]; ruleFiles?: string[] }): Promise<Running & { query(expr: string): Promise<Array<{ metric: Record<string, string>; value: number }>> }> {
  const dir = await mkdtemp(join(tmpdir(), 'prometheus-'));
  const port = await freePort();
  const config = join(dir, 'prometheus.yml');
  await writeFile(
    config,
    JSON.stringify({
      global: { scrape_interval: '1s', evaluation_interval: '1s' },
      ...(opts.ruleFiles ? { rule_files: opts.ruleFiles } : {}),
      scrape_configs: [{ job_name: opts.job, static_configs: [{ targets: opts.targets }] }],
    }),
  );
  const url = `http://127.0.0.1:${port}`;
  const running = await launch(
    binaries.prometheus,
    [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    url,
    '/-/ready',
    dir,
  );
  return {
    ...running,
    async query(expr: string) {
      const answer = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
      const body = (await answer.json()) as { status: string; error?: string; data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
      if (body.status !== 'success' || !body.data) throw new Error(`Prometheus refused ${expr}: ${body.error ?? answer.status}`);
      return body.data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
    },
  };
}

/** Zipkin with in-memory storage. */
export async function startZipkin(): Promise<Running & { spansUrl: string }> {
  const { jar, java } = await obtainZipkin();
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const running = await launch(
    java,
    ['-Xmx384m', '-jar', jar, `--server.port=${port}`, '--server.address=127.0.0.1', '--STORAGE_TYPE=mem', '--logging.level.root=WARN'],
    url,
    '/health',
  );
  return { ...running, spansUrl: `${url}/api/v2/spans` };
}
