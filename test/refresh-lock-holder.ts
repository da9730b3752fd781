// Test-only: a worker-like process that holds a live login CLI under a PTY and runs one
// refresh attempt of a slot, then stays up until told to go (stdin closes). It reports on
// stdout, one JSON line per event: {"event":"cli","pid"} then {"event":"refresh",…}.
// Run with `node --import tsx`. Input from the environment: SLOTS_DIR, SLOT_ID, NOW,
// CLI_BIN (the login CLI: `<bin> auth login`), and the worker's variables the refresh
// needs (CLAUDE_TOKEN_URL, SLOTS_ALLOWED_ENDPOINT_HOSTS).
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node-pty';
import { createRefreshActivities } from '../activities/refresh';

const need = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`refresh-lock-holder: ${name} is required`);
  return value;
};
const say = (event: Record<string, unknown>): void => void process.stdout.write(`${JSON.stringify(event)}\n`);

const configDir = mkdtempSync(join(tmpdir(), 'lock-holder-cli-'));
const cli = spawn(need('CLI_BIN'), ['auth', 'login'], {
  name: 'xterm-256color',
  cols: 200,
  rows: 50,
  cwd: configDir,
  env: { PATH: process.env.PATH ?? '', HOME: configDir, CLAUDE_CONFIG_DIR: configDir, DISABLE_AUTOUPDATER: '1', FIXTURE_SPEED: '0.1' },
});
cli.onData(() => undefined);
say({ event: 'cli', pid: cli.pid });

const slotId = need('SLOT_ID');
const { refreshCredential } = createRefreshActivities({ slotsDir: need('SLOTS_DIR'), env: process.env });
const env = new MockActivityEnvironment({ workflowExecution: { workflowId: `slot:${slotId}`, runId: 'lock-run' } }, { logger: new DefaultLogger('ERROR') });
env.run(refreshCredential, { slotId, provider: 'claude', now: Number(need('NOW')), force: true }).then(
  (result) => say({ event: 'refresh', ok: true, kind: (result as { kind: string }).kind }),
  (err: unknown) => say({ event: 'refresh', ok: false, type: (err as { type?: string }).type, message: err instanceof Error ? err.message : String(err) }),
);
process.stdin.resume();
process.stdin.on('end', () => {
  cli.kill('SIGTERM');
  process.exit(0);
});
