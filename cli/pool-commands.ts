// `slotctl pool …`: create a pool over slots, add and remove them, see it, lease from it.
// One data model, two renderers (human, --json), as the rest of slotctl.
import { Option, type Command } from 'commander';
import { SlotInputError } from '../common/failures';
import { POOL_POLICIES, type LeaseGrant, type PoolPolicy, type PoolStatus } from '../common/pool';
import { seconds } from './options';
import { PoolClient } from '../client/pool-client';
import type { SlotClient } from '../client/slot-client';

type PoolView = { kind: 'pool'; status: PoolStatus } | { kind: 'lease'; lease: LeaseGrant } | { kind: 'pool-done'; pool: string; message: string; slots?: readonly string[] };

const when = (ms: number | undefined): string => (ms === undefined ? '—' : new Date(ms).toISOString());

function human(view: PoolView): string {
  switch (view.kind) {
    case 'pool': {
      const s = view.status;
      const rows = [['SLOT', 'PHASE', 'LEASES', 'LEASABLE'], ...s.slots.map((x) => [x.slotId, x.phase, String(x.leases), x.eligible ? 'yes' : `no: ${x.why ?? ''}`])];
      const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i]?.length ?? 0)));
      return [
        `pool      ${s.pool} (${s.provider}, ${s.policy})`,
        `available ${s.available} of ${s.slots.length}; ${s.leases.length} lease${s.leases.length === 1 ? '' : 's'} held; ${s.leasesGranted} granted, ${s.leasesRefused ?? 0} refused; slots asked ${when(s.censusAt)}`,
        '',
        ...rows.map((r) => r.map((cell, i) => (i < 3 ? cell.padEnd(widths[i] ?? 0) : cell)).join('  ')),
      ].join('\n');
    }
    case 'lease':
      return `leased ${view.lease.slotId} (${view.lease.provider} on ${view.lease.host}) until ${when(view.lease.expiresAt)}; lease ${view.lease.leaseId}`;
    case 'pool-done':
      return view.message;
  }
}

/** Adds `pool` to slotctl's program (subcommands inherit its output and exit handling). */
export function addPoolCommands(program: Command, ctx: { connect: () => Promise<SlotClient>; out: (text: string) => void }): void {
  const pools = async (): Promise<PoolClient> => new PoolClient(await ctx.connect());
  let asJson = false;
  const show = (view: PoolView): void => ctx.out(asJson ? JSON.stringify(view.kind === 'pool' ? view.status : view.kind === 'lease' ? view.lease : { ok: true, pool: view.pool, message: view.message, ...(view.slots ? { slots: view.slots } : {}) }, null, 2) : human(view));
  const json = (): Option => new Option('--json', 'print exactly one JSON document on stdout');
  const pool = program.command('pool').description('pools of slots of one provider, leased to runtimes with rotation on 429');

  pool
    .command('create <pool>')
    .description('create a pool (slots must exist and be of the provider)')
    .requiredOption('--provider <name>', 'the provider of every slot in the pool')
    .option('--slot <slot>', 'a slot to put in the pool (repeat for more)', (v: string, prev: string[]) => [...prev, v], [])
    .addOption(new Option('--policy <policy>', 'which slot goes next').choices(POOL_POLICIES).default('least-recently-leased'))
    .option('--lease-ttl <seconds>', 'a lease lasts this long unless renewed', '600')
    .option('--max-leases-per-slot <n>', 'leases one slot holds at once (0: unlimited)', '0')
    .addOption(json())
    .action(async (name: string, opts: { provider: string; slot: string[]; policy: PoolPolicy; leaseTtl: string; maxLeasesPerSlot: string; json?: boolean }) => {
      asJson = Boolean(opts.json);
      const max = Number(opts.maxLeasesPerSlot);
      if (!Number.isInteger(max) || max < 0) throw new SlotInputError(`--max-leases-per-slot must be a whole number ≥ 0, got ${JSON.stringify(opts.maxLeasesPerSlot)}`);
      // Checked before connecting (the connection is what `await pools()` makes).
      const leaseTtlMs = seconds(opts.leaseTtl, '--lease-ttl');
      await (await pools()).create({ pool: name, provider: opts.provider, slots: opts.slot, policy: opts.policy, leaseTtlMs, maxLeasesPerSlot: max });
      show({ kind: 'pool-done', pool: name, message: `pool ${name} created with ${opts.slot.length} slot${opts.slot.length === 1 ? '' : 's'}; see it with: slotctl pool status ${name}`, slots: opts.slot });
    });

  for (const [verb, description] of [['add', 'add slots to a pool'], ['remove', 'remove slots from a pool']] as const) {
    pool
      .command(`${verb} <pool> <slot...>`)
      .description(description)
      .addOption(json())
      .action(async (name: string, slots: string[], opts: { json?: boolean }) => {
        asJson = Boolean(opts.json);
        const client = await pools();
        const members = verb === 'add' ? await client.add(name, slots) : await client.remove(name, slots);
        show({ kind: 'pool-done', pool: name, message: `pool ${name} now has ${members.length} slot${members.length === 1 ? '' : 's'}: ${members.join(', ') || '(none)'}`, slots: members });
      });
  }

  pool
    .command('status <pool>')
    .description('the slots of a pool, which can be leased and why not, and the leases held')
    .addOption(json())
    .action(async (name: string, opts: { json?: boolean }) => {
      asJson = Boolean(opts.json);
      show({ kind: 'pool', status: await (await pools()).status(name) });
    });

  pool
    .command('lease <pool>')
    .description('lease a slot (exit 1 when the pool has none to lease now)')
    .option('--holder <name>', 'who holds the lease, shown in status')
    .option('--ttl <seconds>', "how long the lease lasts unless renewed (default: the pool's)")
    .addOption(json())
    .action(async (name: string, opts: { holder?: string; ttl?: string; json?: boolean }) => {
      asJson = Boolean(opts.json);
      const ttlMs = seconds(opts.ttl, '--ttl');
      show({ kind: 'lease', lease: await (await pools()).lease(name, { ...(opts.holder ? { holder: opts.holder } : {}), ...(ttlMs !== undefined ? { ttlMs } : {}) }) });
    });

  pool
    .command('release <pool> <lease>')
    .description('give a lease back')
    .addOption(json())
    .action(async (name: string, leaseId: string, opts: { json?: boolean }) => {
      asJson = Boolean(opts.json);
      await (await pools()).release(name, { leaseId });
      show({ kind: 'pool-done', pool: name, message: `lease ${leaseId} released` });
    });
}
