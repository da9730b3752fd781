// `slotctl move <slot> --to-host <host>`: moves a slot to another host with no login,
// through the credential backup (SLOT_BACKUP_URL on both hosts). Human or --json output.
import { Option, type Command } from 'commander';
import type { MoveState } from '../common/backup';
import { MoveRefusedError } from '../common/failures';
import { seconds } from './options';
import { parseSlotId, type SlotClient } from '../client/slot-client';

/** Exit codes as slotctl's: 0 moved, 1 refused or failed (the slot stays where it was). */
const EXIT_FAILED = 1;

export function addMoveCommand(program: Command, io: { connect(): Promise<SlotClient>; out(text: string): void; err(text: string): void; failed(code: number): void }): void {
  program
    .command('move <slot>')
    .description('move the slot to another host with no login: a fresh backup on its host, restored and refreshed on <host>, the old copy removed')
    .requiredOption('--to-host <host>', 'the host to move to (its workers serve slots.<host>; SLOT_BACKUP_URL must be set there)')
    .option('--timeout <seconds>', 'how long to wait for the move to end', '600')
    .addOption(new Option('--json', 'print one JSON document on stdout'))
    .action(async (slot: string, opts: { toHost: string; timeout: string; json?: boolean }) => {
      parseSlotId(slot);
      const timeoutMs = seconds(opts.timeout, '--timeout');
      let state: MoveState;
      try {
        state = await (await io.connect()).move(slot, opts.toHost, { timeoutMs });
      } catch (err) {
        if (!(err instanceof MoveRefusedError)) throw err;
        if (opts.json) io.out(JSON.stringify({ ok: false, slotId: slot, to: opts.toHost, state: 'refused', message: err.message }));
        else io.err(`slotctl: ${err.message}`);
        io.failed(EXIT_FAILED);
        return;
      }
      const ok = state.state === 'moved';
      const message = state.state === 'moving' ? `the move is still under way after ${timeoutMs / 1000} s: ${state.message}; follow with: slotctl status ${slot}` : state.message;
      if (opts.json) io.out(JSON.stringify({ ok, slotId: slot, ...state, message }));
      else if (ok) io.out(message);
      else io.err(`slotctl: ${message}`);
      if (!ok) io.failed(EXIT_FAILED);
    });
}
