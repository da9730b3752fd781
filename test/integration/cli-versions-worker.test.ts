// A slot host whose `claude` is not the version the project was checked against: the
// worker still starts, logs a warning naming both versions and how to install the checked
// one, and its metrics endpoint shows the CLI's version and status to an operator.
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { devServerClient, uniqueName } from '../harness';
import { freePort } from '../peers/observability';
import { fixtureWorkerEnv, spawnWorkerProcess, stopWorkerProcess, untilPolling, type WorkerProcess } from '../worker-process';
import PINS from '../../providers/cli-versions.json';

describe('a worker whose login CLI is another version', () => {
  let dir: string;
  let worker: WorkerProcess;
  let metricsUrl: string;
  let closeConnection: (() => Promise<void>) | undefined;
  const host = uniqueName('host');

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cli-versions-worker-'));
    const claude = join(dir, 'claude');
    await writeFile(claude, "#!/bin/sh\n[ \"$1\" = --version ] && echo '9.9.9 (Claude Code)'\n");
    await chmod(claude, 0o755);
    const [metricsPort, corePort] = [await freePort(), await freePort()];
    metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    worker = spawnWorkerProcess({
      ...fixtureWorkerEnv({ temporalAddress: inject('temporalAddress'), host, sharedQueue: uniqueName('shared'), slotsDir: join(dir, 'slots') }),
      CLAUDE_BIN: claude,
      LOG_LEVEL: 'info',
      METRICS_PORT: String(metricsPort),
      TEMPORAL_METRICS_PORT: String(corePort),
    });
    const { client, connection } = await devServerClient();
    closeConnection = () => connection.close();
    await untilPolling(worker, client, host);
  });

  afterAll(async () => {
    if (worker) await stopWorkerProcess(worker, 'SIGTERM');
    await closeConnection?.();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('starts, warns and exports the version found', async () => {
    let text = '';
    for (let i = 0; i < 100 && !text.includes('status="other"'); i++) {
      text = await (await fetch(metricsUrl)).text();
      if (!text.includes('status="other"')) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(text).toContain(`slot_provisioner_login_cli_info{provider="claude",version="9.9.9",checked_version="${PINS.claude}",status="other"} 1`);
    expect(text).toContain(`slot_provisioner_login_cli_info{provider="claude-setup-token",version="9.9.9",checked_version="${PINS.claude}",status="other"} 1`);
    expect(text).toContain(`slot_provisioner_login_cli_info{provider="codex",version="${PINS.codex}",checked_version="${PINS.codex}",status="checked"} 1`);
    const warning = worker.output().split('\n').find((line) => line.includes('"event":"login-cli-version"') && line.includes('"status":"other"'));
    expect(warning, worker.output().slice(-3000)).toBeDefined();
    expect(JSON.parse(warning ?? '{}')).toMatchObject({ level: 40, version: '9.9.9', checked: PINS.claude, providers: ['claude', 'claude-setup-token'] });
    expect(warning).toContain(`npm install -g @anthropic-ai/claude-code@${PINS.claude}`);
  });
});
