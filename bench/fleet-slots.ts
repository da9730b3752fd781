// A fleet of adopted Claude slots on one worker: seeded with the token server's
// tokens, provisioned with adoptExisting, and waited for until all are active.
// The fleet and idle-cost benchmarks both start from here.
import type { Client } from '@temporalio/client';
import type { SlotClient } from '../client/slot-client';
import type { TokenServer } from '../test/peers/token-server';
import { inPool, seedClaudeCredential, untilCount, type Rig } from './rig';

export const HOUR = 3600_000;

export interface Fleet {
  readonly slotIds: readonly string[];
  /** Grant of each slot at the token server, to check rotations. */
  readonly grants: ReadonlyMap<string, string>;
  readonly seedMs: number;
  readonly provisionMs: number;
  /** From the first start to all slots `active` (visibility). */
  readonly untilActiveMs: number;
}

export const activeSlotsQuery = (host: string): string =>
  `WorkflowType = 'slotWorkflow' AND ExecutionStatus = 'Running' AND SlotHost = '${host}' AND SlotPhase = 'active'`;

/**
 * Seeds and provisions `count` slots named `<prefix>-<i>` whose credentials
 * expire in `expiresInMs` (fresh: adoption makes no token request).
 */
export async function provisionFleet(
  rig: Rig,
  opts: {
    readonly client: Client;
    readonly slots: SlotClient;
    readonly tokens: TokenServer;
    readonly slotsDir: string;
    readonly host: string;
    readonly prefix: string;
    readonly count: number;
    readonly firstIndex?: number;
    readonly expiresInMs?: number;
    readonly concurrency?: number;
    readonly timeoutMs: number;
  },
): Promise<Fleet> {
  const first = opts.firstIndex ?? 0;
  const slotIds = Array.from({ length: opts.count }, (_, i) => `${opts.prefix}-${first + i}`);
  const grants = new Map<string, string>();
  const concurrency = opts.concurrency ?? 32;

  const seedStart = Date.now();
  await inPool(slotIds, concurrency, async (slotId) => {
    const issued = opts.tokens.issue({ accessTtlSec: 8 * 3600 });
    grants.set(slotId, issued.grantId);
    await seedClaudeCredential(opts.slotsDir, slotId, issued, Date.now() + (opts.expiresInMs ?? 8 * HOUR));
  });
  const seedMs = Date.now() - seedStart;
  rig.note(`seeded ${slotIds.length} credentials in ${(seedMs / 1000).toFixed(1)} s`);

  const before = await opts.client.workflow.count(activeSlotsQuery(opts.host));
  const provisionStart = Date.now();
  await inPool(slotIds, concurrency, (slotId) => opts.slots.provision({ slotId, provider: 'claude', host: opts.host, adoptExisting: true }));
  const provisionMs = Date.now() - provisionStart;
  rig.note(`started ${slotIds.length} slot workflows in ${(provisionMs / 1000).toFixed(1)} s`);

  let lastNote = 0;
  const want = before.count + slotIds.length;
  const reached = await untilCount(opts.client, activeSlotsQuery(opts.host), want, {
    timeoutMs: opts.timeoutMs,
    everyMs: 500,
    onCount: (n) => {
      if (Date.now() - lastNote > 5000) {
        lastNote = Date.now();
        rig.note(`${n - before.count}/${slotIds.length} active`);
      }
    },
  });
  if (reached < want) throw new Error(`only ${reached - before.count} of ${slotIds.length} slots became active within ${opts.timeoutMs / 1000} s`);
  const untilActiveMs = Date.now() - provisionStart;
  rig.note(`all ${slotIds.length} active ${(untilActiveMs / 1000).toFixed(1)} s after the first start`);
  return { slotIds, grants, seedMs, provisionMs, untilActiveMs };
}
