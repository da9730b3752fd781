// A newcomer's first `npm test` builds Temporal for minutes: a build step must say
// it is alive, with the time elapsed, however long its tools stay silent.
import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT, runBuildStep, TemporalSetupError } from '../../workers/temporal-binaries';

describe('build steps show progress', () => {
  it('a silent step prints a line with the elapsed time every interval; its own lines carry the time too', async () => {
    const lines: string[] = [];
    const started = Date.now();
    await runBuildStep('sh', ['-c', 'echo fetching; sleep 2; echo linked'], {
      cwd: PROJECT_ROOT,
      log: (line) => lines.push(`${Date.now() - started} ${line}`),
      what: 'building the thing',
      progressEveryMs: 300,
    });
    const progress = lines.filter((l) => l.includes('… still building the thing: '));
    // 2 s of silence at one line per 0.3 s of silence: at least three, each with its elapsed time.
    expect(progress.length).toBeGreaterThanOrEqual(3);
    for (const line of progress) expect(line).toMatch(/still building the thing: \d+ s elapsed$/);
    expect(lines.find((l) => l.includes('fetching'))).toMatch(/fetching \(0 s\)$/);
    expect(lines.find((l) => l.includes('linked'))).toMatch(/linked \([2-9] s\)$/);
  });

  it('a failing step still says why, and stops its progress lines', async () => {
    const lines: string[] = [];
    await expect(
      runBuildStep('sh', ['-c', 'echo "go: module not found" >&2; exit 4'], { cwd: PROJECT_ROOT, log: (l) => lines.push(l), what: 'x', progressEveryMs: 100 }),
    ).rejects.toThrow(TemporalSetupError);
    const count = lines.length;
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(lines.length).toBe(count);
    expect(lines.join('\n')).toContain('go: module not found');
  });

  it('npm run setup:temporal names both servers and prebuilds the workflow bundles and the compiled entry points', async () => {
    const run = await new Promise<{ code: number; out: string }>((resolve) => {
      execFile('npm', ['run', '--silent', 'setup:temporal'], { cwd: PROJECT_ROOT, timeout: 900_000 }, (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code ?? 1) : 0, out: `${stdout}\n${stderr}` }),
      );
    });
    expect(run.code, run.out).toBe(0);
    expect(run.out).toMatch(/temporal CLI: \S+/);
    expect(run.out).toMatch(/time-skipping test server: \S+/);
    expect(run.out).toMatch(/\[workflow-bundle\] (built \d workflow bundle\(s\)|workflow bundles already built) in [\d.]+ s \(.*workflows-[0-9a-f]{24}\.js, .*workflows-[0-9a-f]{24}\.js\)/);
    // And the compiled entry points `npm start` and `npm run worker` run (bin/run-compiled.mjs).
    expect(run.out).toMatch(/\[compiled\] workers\/main\.ts, workers\/worker\.ts, workers\/codec-server-process\.ts ready in [\d.]+ s/);
  }, 900_000);
});
