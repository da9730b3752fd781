// Test-only: one refresh attempt of a slot in a process that kills itself with
// SIGKILL right after the token answer is spooled, before the credential is written
// (a worker dying between the answer and the write). Run with `node --import tsx`.
// Input from the environment: SLOTS_DIR, SLOT_ID, PROVIDER, NOW, and the worker's
// variables the refresh needs (CLAUDE_TOKEN_URL, SLOTS_ALLOWED_ENDPOINT_HOSTS).
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createRefreshActivities } from '../activities/refresh';

const need = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`refresh-crash: ${name} is required`);
  return value;
};

const slotId = need('SLOT_ID');
const { refreshCredential } = createRefreshActivities({
  slotsDir: need('SLOTS_DIR'),
  env: process.env,
  afterSpool: () => process.kill(process.pid, 'SIGKILL'),
});
const env = new MockActivityEnvironment({ workflowExecution: { workflowId: `slot:${slotId}`, runId: 'crash-run' } }, { logger: new DefaultLogger('ERROR') });
env.run(refreshCredential, { slotId, provider: need('PROVIDER'), now: Number(need('NOW')), force: true }).then(
  () => {
    process.stderr.write('refresh-crash: the refresh finished without reaching the spool hook\n');
    process.exit(3);
  },
  (err: unknown) => {
    process.stderr.write(`refresh-crash: the refresh failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(4);
  },
);
