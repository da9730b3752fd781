// What one refresh activity costs the worker process, without Temporal: `refreshCredential`
// runs in this process (the SDK's MockActivityEnvironment) against a real token server on
// 127.0.0.1, one refresh at a time over N seeded Claude slots, each forced and with a status
// (as the slot workflow calls it). Prints one JSON document: CPU (user + system, all threads:
// the libuv pool's file calls included, and the in-process token server's) and wall time per refresh, and, when run under
// `strace -f -c -o FILE`, nothing else changes: the syscall counts are strace's.
// The engine-floor benchmark measures the same activity inside the whole system; this one
// isolates it, so a change to the activity's file work is measured in seconds, not minutes.
// Run: node --import tsx bench/refresh-activity.ts   (BENCH_REFRESH_SLOTS, BENCH_REFRESH_ROUNDS)
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createRefreshActivities } from '../activities/refresh';
import { startTokenServer } from '../test/peers/token-server';
import { distribution, machine } from './report';
import { CLAUDE_CLIENT_ID, param, seedClaudeCredential } from './rig';


const SLOTS = param('BENCH_REFRESH_SLOTS', 50);
const ROUNDS = param('BENCH_REFRESH_ROUNDS', 10);
const WARMUP_ROUNDS = param('BENCH_REFRESH_WARMUP_ROUNDS', 2);
const SLOTS_PARENT = process.env.BENCH_REFRESH_DIR || tmpdir();

const cpuMs = (): number => {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
};

async function main(): Promise<void> {
  const tokens = await startTokenServer({ defaultClientId: CLAUDE_CLIENT_ID });
  const slotsDir = await mkdtemp(join(SLOTS_PARENT, 'bench-refresh-'));
  try {
    const env = { CLAUDE_TOKEN_URL: tokens.claudeTokenUrl, SLOTS_ALLOWED_ENDPOINT_HOSTS: '127.0.0.1' };
    const { refreshCredential } = createRefreshActivities({ slotsDir, env, host: 'bench-host' });
    const ids = Array.from({ length: SLOTS }, (_, i) => `bench-${i}`);
    for (const slotId of ids) await seedClaudeCredential(slotsDir, slotId, tokens.issue(), Date.now() + 3_600_000);
    let now = Date.now();
    const refreshOne = async (slotId: string): Promise<void> => {
      now += 1000;
      const activity = new MockActivityEnvironment({ workflowExecution: { workflowId: `slot:${slotId}`, runId: 'bench-run' } }, { logger: new DefaultLogger('ERROR') });
      const result: { kind: string } = await activity.run(refreshCredential, {
        slotId,
        provider: 'claude',
        now,
        force: true,
        status: { slotId, provider: 'claude', host: 'bench-host', phase: 'refreshing' },
      });
      if (result.kind !== 'refreshed') throw new Error(`${slotId}: ${result.kind}`);
    };
    for (let r = 0; r < WARMUP_ROUNDS; r++) for (const id of ids) await refreshOne(id);
    const walls: number[] = [];
    const cpu0 = cpuMs();
    const wall0 = performance.now();
    for (let r = 0; r < ROUNDS; r++) {
      for (const id of ids) {
        const t = performance.now();
        await refreshOne(id);
        walls.push(performance.now() - t);
      }
    }
    const refreshes = ROUNDS * SLOTS;
    const cpuPerRefresh = (cpuMs() - cpu0) / refreshes;
    const wallTotal = performance.now() - wall0;
    const presentedTwice = tokens.presentedTwice().length;
    process.stdout.write(
      `${JSON.stringify(
        {
          benchmark: 'refresh-activity',
          machine: machine(),
          date: new Date().toISOString(),
          parameters: { slots: SLOTS, rounds: ROUNDS, warmupRounds: WARMUP_ROUNDS, slotsDir: SLOTS_PARENT, provider: 'claude', force: true, withStatus: true },
          results: {
            refreshes,
            cpuMsPerRefresh: Math.round(cpuPerRefresh * 100) / 100,
            wallMsPerRefresh: distribution(walls),
            refreshesPerSecond: Math.round((refreshes / wallTotal) * 1000 * 10) / 10,
            tokenRequests: tokens.requests.length,
            presentedTwice,
          },
        },
        null,
        2,
      )}\n`,
    );
    if (presentedTwice > 0) process.exitCode = 1;
  } finally {
    await tokens.close();
    await rm(slotsDir, { recursive: true, force: true });
  }
}

await main();
