// The state of one slot, held by its workflow and nowhere else: phase, prompt,
// the login in flight and the requests not yet acted on. Steps change it; the
// handlers read it; nothing arrives as a copy by signal.
import { CancellationScope, setCurrentDetails, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { codeProblem, type Outcome, type SlotStatus, type SubmitCodeResult } from '../common/messages';
import { SlotExpiresAtKey, SlotPhaseKey, SlotPromptKey } from '../common/search-attributes';
import type { LastProbe } from '../common/probe';
import type { LoginPrompt, Phase } from '../common/slot';
import type { CarriedState, Pending, SlotInput } from '../common/slot-input';
import { slotDetails } from './slot-details';
import { slotQueues, type SlotQueues } from './activities';
import type { BackupNote, MoveState } from '../common/backup';
import type { IncidentState } from '../common/incidents';

/** The login attempt whose CLI is on screen now: the only one a code can be typed into. */
export interface LiveLogin {
  /** The attempt id, which is also the PTY session's id on the host. */
  readonly id: string;
  /** Replaced when the same CLI asks again after a rejected code (a new URL and state). */
  prompt: LoginPrompt;
  /** A code is being typed or answered; another is refused until the CLI has spoken. */
  typing: boolean;
  /** Types a code into this attempt's CLI; set by the login step. */
  readonly type: (code: string) => Promise<SubmitCodeResult>;
}

type Published = { phase?: string; prompt?: string; expiresAt?: number };

/** Status times are whole epoch milliseconds (the schema says so); a file's mtime is not. */
function epochMs<T extends number | undefined>(ms: T): T {
  return (ms === undefined ? ms : Math.floor(ms)) as T;
}

export class Slot {
  phase: Phase = 'logging-in';
  prompt: LoginPrompt | undefined;
  lastOutcome: Outcome | undefined;
  lastError: string | undefined;
  expiresAt: number | undefined;
  lastRefresh: number | undefined;
  nextRefreshAt: number | undefined;
  account: string | undefined;
  logins = 0;
  refreshes = 0;
  consecutiveFailures = 0;
  runs = 1;
  /** The last write-through to the backup store, and the last move (workflows/restore-step.ts). */
  backup: BackupNote | undefined;
  move: MoveState | undefined;
  /** A restored backup is being proven by a refresh: a second loss is not restored again. */
  restoring = false;
  /** The last live probe and the next scheduled one (workflows/probe-step.ts). */
  lastProbe: LastProbe | undefined;
  nextProbeAt: number | undefined;
  /** Probe steps finished in this run: what a waiting `probeNow` counts. */
  probeSteps = 0;
  /** A `probeNow` signal (a pool's auth-failure report) asked: a probe that cannot tell is followed by a refresh. Not carried: continue-as-new waits for the probe. */
  refreshUnlessProven = false;
  pending: Pending = { login: true, refresh: false, retire: undefined };
  /** The scope of the login or refresh in progress: relogin, cancelLogin and retire cancel it. */
  stepScope: CancellationScope | undefined;
  /** A login is in progress (a refresh needs no flag: nothing refers to it). */
  step: 'login' | undefined;
  live: LiveLogin | undefined;
  /** Whether this run paces its token requests and takes part in provider incidents (a patch: older runs do neither). */
  paced = false;
  /** Where the host activities go (workflows/activities.ts); set with `paced` when the run starts. */
  queues: SlotQueues;
  /** The provider incident the slot is part of: its own notices wait, its automatic relogin may be held. */
  incident: IncidentState | undefined;
  /** Told after every publish, with the phase published before (notices, workflows/notices.ts). */
  observer: ((before: string | undefined) => void) | undefined;
  private published: Published;

  constructor(readonly input: SlotInput) {
    this.queues = slotQueues(input.host, input.provider, false);
    const carried = input.carried;
    if (carried) {
      const { pending, runs, ...rest } = carried;
      Object.assign(this, rest);
      this.runs = runs + 1;
      // Older carried states had no pending requests: nothing was asked then.
      this.pending = pending ? { ...pending } : { login: false, refresh: false, retire: undefined };
    } else if (input.adoptExisting) {
      this.pending.login = false;
    }
    // Search attributes travel with the run chain; only changes are upserted.
    const sa = workflowInfo().typedSearchAttributes;
    this.published = {
      phase: sa.get(SlotPhaseKey),
      prompt: sa.get(SlotPromptKey),
      expiresAt: sa.get(SlotExpiresAtKey)?.getTime(),
    };
  }

  carry(): CarriedState {
    return {
      phase: this.phase,
      expiresAt: epochMs(this.expiresAt),
      lastRefresh: epochMs(this.lastRefresh),
      nextRefreshAt: epochMs(this.nextRefreshAt),
      account: this.account,
      lastOutcome: this.lastOutcome,
      lastError: this.lastError,
      logins: this.logins,
      refreshes: this.refreshes,
      consecutiveFailures: this.consecutiveFailures,
      ...(this.backup ? { backup: this.backup } : {}),
      ...(this.move ? { move: this.move } : {}),
      runs: this.runs,
      pending: { ...this.pending },
      ...(this.lastProbe ? { lastProbe: this.lastProbe } : {}),
      ...(this.nextProbeAt !== undefined ? { nextProbeAt: epochMs(this.nextProbeAt) } : {}),
      ...(this.incident ? { incident: this.incident } : {}),
    };
  }

  status(): SlotStatus {
    const pending = [
      ...(this.pending.login ? ['relogin' as const] : []),
      ...(this.pending.refresh ? ['refresh' as const] : []),
      ...(this.pending.retire ? ['retire' as const] : []),
      ...(this.pending.probe ? ['probe' as const] : []),
    ];
    return {
      slotId: this.input.slotId,
      provider: this.input.provider,
      host: this.input.host,
      phase: this.phase,
      ...(this.prompt ? { prompt: this.prompt } : {}),
      ...(this.expiresAt !== undefined ? { expiresAt: epochMs(this.expiresAt) } : {}),
      ...(this.lastRefresh !== undefined ? { lastRefresh: epochMs(this.lastRefresh) } : {}),
      ...(this.nextRefreshAt !== undefined && (this.phase === 'active' || this.phase === 'degraded') ? { nextRefreshAt: epochMs(this.nextRefreshAt) } : {}),
      ...(this.account ? { account: this.account } : {}),
      ...(this.lastOutcome ? { lastOutcome: this.lastOutcome } : {}),
      ...(this.lastError ? { lastError: this.lastError } : {}),
      logins: this.logins,
      refreshes: this.refreshes,
      consecutiveFailures: this.consecutiveFailures,
      ...(pending.length > 0 ? { pending } : {}),
      ...(this.backup ? { backup: this.backup } : {}),
      ...(this.move ? { move: this.move } : {}),
      ...(this.lastProbe ? { lastProbe: this.lastProbe } : {}),
      ...(this.nextProbeAt !== undefined && (this.phase === 'active' || this.phase === 'degraded') ? { nextProbeAt: epochMs(this.nextProbeAt) } : {}),
    };
  }

  /** Changes the phase (and prompt) and publishes what changed to search attributes and the Web UI's details. */
  setPhase(phase: Phase, prompt?: LoginPrompt): void {
    this.phase = phase;
    this.prompt = prompt;
    this.publish();
  }

  /** A phase shown by `status` only: a refresh does not cost the dashboard two upserts. */
  setTransientPhase(phase: Extract<Phase, 'refreshing' | 'verifying'>): void {
    this.phase = phase;
    this.prompt = undefined;
    // Not a command (no history event): the page always says the phase.
    setCurrentDetails(this.details());
  }

  publish(): void {
    const prompt = this.prompt ? `${this.prompt.url}${this.prompt.userCode ? ` code ${this.prompt.userCode}` : ''}` : undefined;
    const next: Published = { phase: this.phase, prompt, expiresAt: this.expiresAt };
    const changes = [
      ...(next.phase !== this.published.phase ? [{ key: SlotPhaseKey, value: this.phase }] : []),
      ...(next.prompt !== this.published.prompt ? [{ key: SlotPromptKey, value: prompt ?? null }] : []),
      ...(next.expiresAt !== this.published.expiresAt ? [{ key: SlotExpiresAtKey, value: this.expiresAt !== undefined ? new Date(this.expiresAt) : null }] : []),
    ];
    if (changes.length > 0) upsertSearchAttributes(changes);
    const before = this.published.phase;
    this.published = next;
    setCurrentDetails(this.details());
    this.observer?.(before);
  }

  /** The Web UI's workflow page: what the slot is doing and what the operator should do (markdown, never a secret). */
  details(): string {
    return slotDetails(this.status());
  }

  record(kind: Outcome['kind'], message: string): void {
    this.lastOutcome = { at: Date.now(), kind, message };
  }

  /** Why a code cannot be typed now, or undefined. Checked against the live prompt; never repeats the code. */
  refuseCode(input: unknown): string | undefined {
    const live = this.live;
    if (this.phase === 'awaiting-operator' && this.prompt && this.prompt.interaction !== 'paste-code') {
      return `this login needs no code: open ${this.prompt.url}${this.prompt.userCode ? ` and enter ${this.prompt.userCode}` : ''}; it completes by itself`;
    }
    if (!live || this.phase !== 'awaiting-operator' || this.stepScope?.consideredCancelled) {
      const why = this.step === 'login' ? 'the login CLI is starting or restarting; wait for its URL' : `phase: ${this.phase}`;
      return `slot ${this.input.slotId} is not waiting for a code (${why})`;
    }
    if (live.typing) return 'a code is being typed into the CLI; wait for its answer';
    return codeProblem(input, live.prompt);
  }

  /** Cancels the login or refresh in progress (a no-op when none runs). */
  interrupt(): void {
    this.stepScope?.cancel();
  }
}
