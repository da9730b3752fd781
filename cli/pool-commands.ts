// `slotctl pool …`: create a pool over slots, add and remove them, see it, lease from it.
// Each returns its Output (text and JSON side by side), as the rest of slotctl.
import { Option, type Command } from 'commander';
import { SlotInputError } from '../common/failures';
import { POOL_POLICIES, type LeaseGrant, type PoolPolicy, type PoolStatus } from '../common/pool';
import { secondsOption } from './options';
import { PoolClient } from '../client/pool-client';
import { jsonOption, when, type CommandContext, type Output } from './output';

function poolOutput(s: PoolStatus): Output {
  const rows = [['SLOT', 'PHASE', 'LEASES', 'LEASABLE'], ...s.slots.map((x) => [x.slotId, x.phase, String(x.leases), x.eligible ? 'yes' : `no: ${x.why ?? ''}`])];
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i]?.length ?? 0)));
  const text = [
    `pool      ${s.pool} (${s.provider}, ${s.policy})`,
    `available ${s.available} of ${s.slots.length}; ${s.leases.length} lease${s.leases.length === 1 ? '' : 's'} held; ${s.leasesGranted} granted, ${s.leasesRefused ?? 0} refused; slots asked ${when(s.censusAt)}`,
    '',
    ...rows.map((r) => r.map((cell, i) => (i < 3 ? cell.padEnd(widths[i] ?? 0) : cell)).join('  ')),
  ].join('\n');
  return { text, json: s };
}

const leaseOutput = (lease: LeaseGrant): Output => ({
  text: `leased ${lease.slotId} (${lease.provider} on ${lease.host}) until ${when(lease.expiresAt)}; lease ${lease.leaseId}`,
  json: lease,
});

const poolDoneOutput = (pool: string, message: string, slots?: readonly string[]): Output => ({ text: message, json: { ok: true, pool, message, ...(slots ? { slots } : {}) } });

/** Adds `pool` to slotctl's program (subcommands inherit its output and exit handling). */
export function addPoolCommands(program: Command, ctx: CommandContext): void {
  const pools = async (): Promise<PoolClient> => new PoolClient(await ctx.connect());
  const json = jsonOption;
  const pool = program.command('pool').description('pools of slots of one provider, leased to runtimes with rotation on 429');

  pool
    .command('create <pool>')
    .description('create a pool (slots must exist and be of the provider)')
    .requiredOption('--provider <name>', 'the provider of every slot in the pool')
    .option('--slot <slot>', 'a slot to put in the pool (repeat for more)', (v: string, prev: string[]) => [...prev, v], [])
    .addOption(new Option('--policy <policy>', 'which slot goes next').choices(POOL_POLICIES).default('least-recently-leased'))
    .addOption(secondsOption('--lease-ttl <seconds>', 'a lease lasts this long unless renewed', 600))
    .option('--max-leases-per-slot <n>', 'leases one slot holds at once (0: unlimited)', '0')
    .addOption(json())
    .action(
      ctx.act(async (name: string, opts: { provider: string; slot: string[]; policy: PoolPolicy; leaseTtl: number; maxLeasesPerSlot: string }) => {
        // Checked before connecting (the connection is what `await pools()` makes); --lease-ttl was, when the command line was read.
        const max = Number(opts.maxLeasesPerSlot);
        if (!Number.isInteger(max) || max < 0) throw new SlotInputError(`--max-leases-per-slot must be a whole number ≥ 0, got ${JSON.stringify(opts.maxLeasesPerSlot)}`);
        await (await pools()).create({ pool: name, provider: opts.provider, slots: opts.slot, policy: opts.policy, leaseTtlMs: opts.leaseTtl, maxLeasesPerSlot: max });
        return poolDoneOutput(name, `pool ${name} created with ${opts.slot.length} slot${opts.slot.length === 1 ? '' : 's'}; see it with: slotctl pool status ${name}`, opts.slot);
      }),
    );

  for (const [verb, description] of [['add', 'add slots to a pool'], ['remove', 'remove slots from a pool']] as const) {
    pool
      .command(`${verb} <pool> <slot...>`)
      .description(description)
      .addOption(json())
      .action(
        ctx.act(async (name: string, slots: string[]) => {
          const client = await pools();
          const members = verb === 'add' ? await client.add(name, slots) : await client.remove(name, slots);
          return poolDoneOutput(name, `pool ${name} now has ${members.length} slot${members.length === 1 ? '' : 's'}: ${members.join(', ') || '(none)'}`, members);
        }),
      );
  }

  pool
    .command('status <pool>')
    .description('the slots of a pool, which can be leased and why not, and the leases held')
    .addOption(json())
    .action(ctx.act(async (name: string) => poolOutput(await (await pools()).status(name))));

  pool
    .command('lease <pool>')
    .description('lease a slot (exit 1 when the pool has none to lease now)')
    .option('--holder <name>', 'who holds the lease, shown in status')
    .addOption(secondsOption('--ttl <seconds>', "how long the lease lasts unless renewed (default: the pool's)"))
    .addOption(json())
    .action(
      ctx.act(async (name: string, opts: { holder?: string; ttl?: number }) =>
        leaseOutput(await (await pools()).lease(name, { ...(opts.holder ? { holder: opts.holder } : {}), ...(opts.ttl !== undefined ? { ttlMs: opts.ttl } : {}) })),
      ),
    );

  pool
    .command('release <pool> <lease>')
    .description('give a lease back')
    .addOption(json())
    .action(
      ctx.act(async (name: string, leaseId: string) => {
        await (await pools()).release(name, { leaseId });
        return poolDoneOutput(name, `lease ${leaseId} released`);
      }),
    );
}
