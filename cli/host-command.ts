// `slotctl host …`: the host operator's acts on retired slots, run on the slot's host
// (they work on its SLOTS_DIR, not through Temporal). A workflow can do none of them.
import type { Command } from 'commander';
import { SlotInputError } from '../common/failures';
import { emptyTrashOnThisHost, retiredOnThisHost, reuseOnThisHost, unretireOnThisHost } from '../host/slot-host';
import { parseSlotId } from '../client/slot-client';
import { jsonOption, type CommandContext } from './output';

const DAY_MS = 24 * 60 * 60_000;

export function addHostCommands(program: Command, ctx: CommandContext): void {
  const slotsDir = ctx.config.slotsDir;
  const host = program.command('host').description("acts on this host's retired slots (run on the slot's host, with its SLOTS_DIR); no workflow can do these");
  const json = jsonOption;

  host
    .command('retired')
    .description("list this host's retired slots (tombstones) and the homes in its trash")
    .addOption(json())
    .action(
      ctx.act(async () => {
        const { retired, trash } = await retiredOnThisHost(slotsDir);
        const lines = retired.map((t) =>
          'damaged' in t ? `${t.slotId}: tombstone damaged` : `${t.slotId}: ${t.kind} ${t.at} by ${t.by.workflowId}; ${t.record ? `pinned ${t.record.provider}` : 'no record'}; home ${t.trashed ?? '(none)'}${t.removeFilesAsked ? ' (files to be removed)' : ''}`,
        );
        const text = [...(lines.length > 0 ? lines : ['no retired slot on this host']), `trash: ${trash.length} home${trash.length === 1 ? '' : 's'}${trash.length > 0 ? ` (${trash.join(', ')})` : ''}`].join('\n');
        return { text, json: { retired, trash } };
      }),
    );

  host
    .command('unretire <slot>')
    .description('bring a retired slot back as it was on this host (home, record and pin), then provision it again with its old configuration')
    .addOption(json())
    .action(
      ctx.act(async (slot: string) => {
        parseSlotId(slot);
        const { restoredHome } = await unretireOnThisHost(slotsDir, slot);
        const message = `slot ${slot} is no longer retired on this host${restoredHome ? '; its home is back from the trash' : ''}: provision it again (slotctl provision ${slot} … --adopt) with its old configuration`;
        return { text: message, json: { ok: true, slotId: slot, restoredHome, message } };
      }),
    );

  host
    .command('reuse <slot>')
    .description("free a retired slot's id on this host: the next slot of that id starts afresh (its old home stays in the trash until emptied)")
    .addOption(json())
    .action(
      ctx.act(async (slot: string) => {
        parseSlotId(slot);
        const { trashed } = await reuseOnThisHost(slotsDir, slot);
        const message = `slot id ${slot} is free on this host${trashed ? `; its old home is still in the trash (${trashed}): slotctl host empty-trash --slot ${slot}` : ''}`;
        return { text: message, json: { ok: true, slotId: slot, trashed, message } };
      }),
    );

  host
    .command('empty-trash')
    .description('remove trashed homes for good, credentials included (no symlink is followed)')
    .option('--slot <slot>', "only this slot's homes")
    .option('--older-than <days>', 'only homes trashed more than this many days ago')
    .addOption(json())
    .action(
      ctx.act(async (opts: { slot?: string; olderThan?: string }) => {
        if (opts.slot !== undefined) parseSlotId(opts.slot);
        const days = opts.olderThan === undefined ? undefined : Number(opts.olderThan);
        if (days !== undefined && !(Number.isFinite(days) && days >= 0)) throw new SlotInputError(`--older-than must be a number of days >= 0, got ${JSON.stringify(opts.olderThan)}`);
        const { removed, failed } = await emptyTrashOnThisHost(slotsDir, { ...(opts.slot !== undefined ? { slotId: opts.slot } : {}), ...(days !== undefined ? { olderThanMs: days * DAY_MS } : {}) });
        // Exit 1 when some trashed home could not be removed.
        return {
          text: removed.length > 0 ? `removed ${removed.join(', ')}` : 'nothing to remove',
          json: { removed, failed },
          notes: failed.map((f) => `slotctl: ${f.name} was not removed: ${f.reason}`),
          outcome: failed.length > 0 ? 'failed' : 'ok',
        };
      }),
    );
}
