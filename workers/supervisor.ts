// What `npm start` does for the processes it started: when one ends by itself it is
// started again, with backoff and a line on the console each time; when it does not
// come back within its attempts, the supervision fails with the reason.
import { SupervisorGaveUpError } from '../common/failures';

export { SupervisorGaveUpError };

/** One run of a supervised thing, as its `start` returns it once it is ready. */
export interface SupervisedRun {
  /** Resolves with how the run ended (`exit code 1`, `signal SIGKILL`, its last words) when it ends by itself. */
  readonly ended: Promise<string>;
  stop(): Promise<void>;
}

export interface SupervisionOptions<R extends SupervisedRun = SupervisedRun> {
  /** Who is supervised, for the console: "Temporal dev server". */
  readonly name: string;
  /** Starts one run and resolves once it is ready; rejects (with the reason) when it cannot start. */
  readonly start: (attempt: number) => Promise<R>;
  /** A line for the operator's console. */
  readonly say: (line: string) => void;
  /** First delay before a restart. @default 1000 */
  readonly initialDelayMs?: number;
  /** Longest delay between restarts. @default 15000 */
  readonly maxDelayMs?: number;
  /** Restarts in a row that may fail before the supervision gives up. @default 5 */
  readonly maxAttempts?: number;
  /** A run that stayed up this long resets the count of failed restarts. @default 60000 */
  readonly stableMs?: number;
  /** Called after each successful restart. */
  readonly onRestarted?: (run: R, downMs: number) => void;
}

export interface Supervision<R extends SupervisedRun> {
  /** The run now in service. */
  current(): R;
  /** Rejects with SupervisorGaveUpError when the supervised thing cannot come back; never resolves. */
  readonly failed: Promise<never>;
  /** No more restarts (a shutdown has begun); the current run goes on until `stop()`. */
  stopRestarting(): void;
  /** Stops supervising, then the current run. */
  stop(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Starts `opts.start` (a first start that fails is thrown at once: nothing was running)
 * and restarts it whenever it ends without `stop()`.
 */
export async function supervise<R extends SupervisedRun>(opts: SupervisionOptions<R>): Promise<Supervision<R>> {
  const initial = opts.initialDelayMs ?? 1000;
  const maxDelay = opts.maxDelayMs ?? 15_000;
  const maxAttempts = opts.maxAttempts ?? 5;
  const stableMs = opts.stableMs ?? 60_000;
  let run = await opts.start(0);
  let stopping = false;
  let giveUp: (err: SupervisorGaveUpError) => void = () => undefined;
  const failed = new Promise<never>((_, reject) => (giveUp = reject));
  // Nobody may be listening yet; the rejection is still delivered to whoever awaits `failed`.
  failed.catch(() => undefined);

  const watch = async (): Promise<void> => {
    let startedAt = Date.now();
    let failures = 0;
    for (;;) {
      const how = await run.ended;
      if (stopping) return;
      const downSince = Date.now();
      if (downSince - startedAt >= stableMs) failures = 0;
      let lastReason = how;
      for (;;) {
        failures += 1;
        if (failures > maxAttempts) {
          const message = `${opts.name} ended (${how}) and did not come back after ${maxAttempts} restarts over ${Math.round((Date.now() - downSince) / 1000)} s; last: ${lastReason}`;
          opts.say(`${opts.name}: giving up: ${message}`);
          giveUp(new SupervisorGaveUpError(opts.name, message));
          return;
        }
        const delay = Math.min(initial * 2 ** (failures - 1), maxDelay);
        opts.say(`${opts.name} ended (${lastReason}); restarting in ${(delay / 1000).toFixed(1)} s (attempt ${failures} of ${maxAttempts})`);
        await sleep(delay);
        if (stopping) return;
        try {
          run = await opts.start(failures);
          if (stopping) {
            await run.stop();
            return;
          }
          startedAt = Date.now();
          opts.say(`${opts.name} is back after ${((startedAt - downSince) / 1000).toFixed(1)} s`);
          opts.onRestarted?.(run, startedAt - downSince);
          break;
        } catch (err) {
          lastReason = err instanceof Error ? err.message : String(err);
        }
      }
    }
  };
  void watch();

  return {
    current: () => run,
    failed,
    stopRestarting: () => {
      stopping = true;
    },
    async stop() {
      stopping = true;
      await run.stop();
    },
  };
}
