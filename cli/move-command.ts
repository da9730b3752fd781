// `slotctl move <slot> --to-host <host>`: moves a slot to another host with no login,
// through the credential backup (SLOT_BACKUP_URL on both hosts). Human or --json output.
import type { Command } from 'commander';
import type { MoveState } from '../common/backup';
import { MoveRefusedError } from '../common/failures';
import { secondsOption } from './options';
import { parseSlotId } from '../client/slot-client';
import { jsonOption, type CommandContext, type Output } from './output';

/** Failed (exit 1) unless the slot moved: refused, or failed (it stays where it was), or still moving when the wait ends. */
function moveOutput(slotId: string, state: MoveState, timeoutMs: number): Output {
  const message = state.state === 'moving' ? `the move is still under way after ${timeoutMs / 1000} s: ${state.message}; follow with: slotctl status ${slotId}` : state.message;
  const json = { ok: state.state === 'moved', slotId, ...state, message };
  return state.state === 'moved' ? { text: message, json } : { json, notes: [`slotctl: ${message}`], outcome: 'failed' };
}

/** The slot refused the move before it began (MoveRefusedError). */
const refusedOutput = (slotId: string, to: string, message: string): Output => ({
  json: { ok: false, slotId, to, state: 'refused', message },
  notes: [`slotctl: ${message}`],
  outcome: 'failed',
});

export function addMoveCommand(program: Command, ctx: CommandContext): void {
  program
    .command('move <slot>')
    .description('move the slot to another host with no login: a fresh backup on its host, restored and refreshed on <host>, the old copy removed')
    .requiredOption('--to-host <host>', 'the host to move to (its workers serve slots.<host>; SLOT_BACKUP_URL must be set there)')
    .addOption(secondsOption('--timeout <seconds>', 'how long to wait for the move to end', 600))
    .addOption(jsonOption())
    .action(
      ctx.act(async (slot: string, opts: { toHost: string; timeout: number }) => {
        parseSlotId(slot);
        try {
          return moveOutput(slot, await (await ctx.connect()).move(slot, opts.toHost, { timeoutMs: opts.timeout }), opts.timeout);
        } catch (err) {
          if (!(err instanceof MoveRefusedError)) throw err;
          return refusedOutput(slot, opts.toHost, err.message);
        }
      }),
    );
}
