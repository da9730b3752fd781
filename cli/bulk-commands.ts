// slotctl relogin, refresh and retire: one slot, or (--where) every running slot a
// visibility query selects, listed (--dry-run) or sent the message after a confirmation.
import type { Command } from 'commander';
import { SlotInputError } from '../common/failures';
import { parseSlotId, type SlotClient } from '../client/slot-client';
import { confirmed, DEFAULT_BULK_CONCURRENCY, runBulk, selectSlots, summarize, type BulkAction, type BulkSlotResult } from './bulk';
import { jsonOption, type CommandContext, type Output } from './output';
import { bulkOutput, doneOutput } from './slot-views';
import { readAnswer } from './terminal';

interface BulkFlags {
  where?: string;
  dryRun?: boolean;
  yes?: boolean;
  concurrency: string;
}

export function addBulkCommands(program: Command, ctx: CommandContext): void {
  for (const [name, description, run, message] of [
    ['relogin', 'start a new login (new URL)', (s: SlotClient, id: string) => s.relogin(id), 'new login requested'],
    ['refresh', 'refresh the credential now', (s: SlotClient, id: string) => s.refreshNow(id), 'refresh requested'],
  ] as const) {
    bulkOptions(program.command(`${name} [slot]`).description(`${description}; --where for every slot a query selects`))
      .addOption(jsonOption())
      .action(
        ctx.act(async (slot: string | undefined, opts: BulkFlags) => {
          if (oneOrWhere(slot, opts)) return bulk(ctx, name, opts);
          await run(await ctx.connect(), slot as string);
          return doneOutput(slot as string, `${message}; follow with: slotctl status ${slot as string}`);
        }),
      );
  }

  bulkOptions(program.command('retire [slot]').description("end the slot (--where: every slot a query selects): revoke its tokens where the provider can, move its home to the host's trash; the id stays retired on that host"))
    .option('--remove-files', "note in the tombstone that the files are to go (the host's operator empties the trash: slotctl host empty-trash)")
    .addOption(jsonOption())
    .action(
      ctx.act(async (slot: string | undefined, opts: BulkFlags & { removeFiles?: boolean }) => {
        if (oneOrWhere(slot, opts)) return bulk(ctx, 'retire', opts);
        await (await ctx.connect()).retire(slot as string, { removeFiles: Boolean(opts.removeFiles) });
        return doneOutput(slot as string, `retirement requested${opts.removeFiles ? " (files to be removed: the host's operator empties its trash)" : ''}`);
      }),
    );
}

const bulkOptions = (command: Command): Command =>
  command
    .option('--where <query>', "every running slot this visibility query selects, e.g. \"SlotProvider='codex' AND SlotPhase='active'\"")
    .option('--dry-run', 'with --where: list the slots, change nothing')
    .option('--yes', 'with --where: do not ask for confirmation')
    .option('--concurrency <n>', 'with --where: slots messaged at a time', String(DEFAULT_BULK_CONCURRENCY));

/** One slot, or --where; never both, never neither. True for --where. */
function oneOrWhere(slot: string | undefined, opts: BulkFlags): boolean {
  if (slot !== undefined && opts.where !== undefined) throw new SlotInputError('give a slot or --where, not both');
  if (slot === undefined && opts.where === undefined) throw new SlotInputError('give a slot, or --where "<visibility query>" for many');
  if (slot === undefined) return true;
  if (opts.dryRun || opts.yes) throw new SlotInputError('--dry-run and --yes go with --where');
  parseSlotId(slot);
  return false;
}

/** `--where`: the slots a visibility query selects, listed (--dry-run) or sent the action after a confirmation. */
async function bulk(ctx: CommandContext, action: BulkAction, opts: BulkFlags & { removeFiles?: boolean }): Promise<Output> {
  const where = opts.where as string;
  const slots = await ctx.connect();
  const targets = await selectSlots(slots, where);
  const planned = targets.map((t): BulkSlotResult => ({ slotId: t.slotId, provider: t.provider, host: t.host, phase: t.phase, outcome: 'planned' }));
  if (opts.dryRun || targets.length === 0) return bulkOutput(summarize(action, where, true, planned));
  if (!opts.yes) {
    ctx.io.err(`${action} ${targets.length} slot${targets.length === 1 ? '' : 's'} (${targets.slice(0, 5).map((t) => t.slotId).join(', ')}${targets.length > 5 ? ', …' : ''})? [y/N]`);
    if (!confirmed(await readAnswer(ctx.io))) return { notes: ['slotctl: not confirmed; nothing was done (pass --yes to skip the question)'], outcome: 'failed' };
  }
  const results = await runBulk(slots, action, targets, {
    concurrency: Number(opts.concurrency),
    ...(action === 'retire' ? { retire: { removeFiles: Boolean(opts.removeFiles) } } : {}),
    // Progress goes to stderr: in --json mode stdout carries only the summary.
    onResult: (r, finished, total) => ctx.io.err(`[${finished}/${total}] ${action} ${r.slotId}: ${r.outcome === 'done' ? 'done' : `FAILED: ${r.error ?? ''}`}`),
  });
  return bulkOutput(summarize(action, where, false, results));
}
