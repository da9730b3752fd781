// How many live login CLIs one worker process may hold, by memory. Each is a whole CLI
// idle at its prompt (the pinned claude ~136 MiB resident, codex ~85 MiB:
// bench/login-cli-memory.ts), so the 1000 session-activity slots alone would let
// logins exhaust the host's memory long before they ran out.
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';

const MIB = 1024 * 1024;
/** A PTY login whose provider declares no measurement counts this much. */
export const DEFAULT_CLI_MEMORY_MIB = 160;
/** Share of the process's memory (the host's, or its cgroup's limit) live login CLIs may use. @default 0.5 */
const DEFAULT_BUDGET_SHARE = 0.5;

/** The memory this process may give live login CLIs: LOGIN_CLI_MEMORY_BUDGET_MB, else half of the host's (or cgroup's) memory. */
export function loginMemoryBudgetBytes(env: NodeJS.ProcessEnv): number {
  const given = env.LOGIN_CLI_MEMORY_BUDGET_MB;
  if (given !== undefined && given !== '') {
    const mb = Number(given);
    if (!Number.isSafeInteger(mb) || mb <= 0) throw new RangeError(`LOGIN_CLI_MEMORY_BUDGET_MB must be a positive whole number of MiB, got ${JSON.stringify(given)}`);
    return mb * MIB;
  }
  return Math.floor(Math.min(totalmem(), cgroupLimitBytes() ?? Infinity) * DEFAULT_BUDGET_SHARE);
}

/** cgroup v2's memory.max (a container's limit); undefined when unlimited or unreadable. */
function cgroupLimitBytes(): number | undefined {
  try {
    const text = readFileSync('/sys/fs/cgroup/memory.max', 'utf8').trim();
    const bytes = Number(text);
    return Number.isFinite(bytes) && bytes > 0 ? bytes : undefined;
  } catch {
    return undefined;
  }
}

/** Room for live login CLIs: a login is admitted while the memory its CLIs would hold stays within the budget. */
export class LoginCapacity {
  private readonly held = new Map<string, number>();
  private heldBytes = 0;

  constructor(
    /** Bytes live login CLIs may hold together. */
    readonly budgetBytes: number,
    /** Live logins at most, whatever the memory (the session worker's activity slots). */
    readonly maxLogins: number,
  ) {
    if (!(budgetBytes > 0)) throw new RangeError(`budgetBytes must be positive, got ${budgetBytes}`);
    if (!Number.isSafeInteger(maxLogins) || maxLogins <= 0) throw new RangeError(`maxLogins must be a positive integer, got ${maxLogins}`);
  }

  /** Holds room for login `id`'s CLI; undefined when admitted, else why not (no room is held then). */
  reserve(id: string, cliMemoryMiB: number): string | undefined {
    this.release(id);
    const bytes = cliMemoryMiB * MIB;
    if (this.held.size >= this.maxLogins) return `this worker process holds ${this.held.size} live login CLIs, its most`;
    if (this.heldBytes + bytes > this.budgetBytes) {
      return (
        `this worker process holds ${this.held.size} live login CLIs (about ${Math.round(this.heldBytes / MIB)} MiB) and another ` +
        `(about ${cliMemoryMiB} MiB) would pass its memory budget of ${Math.round(this.budgetBytes / MIB)} MiB (LOGIN_CLI_MEMORY_BUDGET_MB)`
      );
    }
    this.held.set(id, bytes);
    this.heldBytes += bytes;
    return undefined;
  }

  release(id: string): void {
    const bytes = this.held.get(id);
    if (bytes === undefined) return;
    this.held.delete(id);
    this.heldBytes -= bytes;
  }

  get count(): number {
    return this.held.size;
  }

  get usedBytes(): number {
    return this.heldBytes;
  }
}
