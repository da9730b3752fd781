// The state of one slot, held by its workflow and nowhere else, in three parts kept
// apart: the durable state (`state`: what `status` shows and continue-as-new carries,
// one typed whole), this run's values (`run`), and the runtime handles (the step in
// progress, the live login, the notices). Transitions (workflows/transitions.ts) change
// the state; the handlers read it; nothing arrives as a copy by signal.
import { CancellationScope, setCurrentDetails, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { codeProblem, type Outcome, type SlotStatus, type SubmitCodeResult } from '../common/messages';
import { SlotExpiresAtKey, SlotPhaseKey, SlotPromptKey } from '../common/search-attributes';
import type { NoticeAction, NoticeKind } from '../common/notices';
import { incidentStateOf } from '../common/incidents';
import type { LoginPrompt, Phase } from '../common/slot';
import type { CarriedState, Pending, SlotInput } from '../common/slot-input';
import { slotDetails } from './slot-details';
import { slotQueues, type SlotQueues } from './activities';

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

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * The durable state: exactly what continue-as-new carries (`CarriedState` without the run
 * count), so that it is carried whole and a field added here is carried without a second list.
 */
export type SlotState = Mutable<Omit<CarriedState, 'runs' | 'pending'>> & { pending: Pending };

/** Values of this run only: never carried (a new run sets them again). */
export interface RunValues {
  /** Runs in the chain so far, this one included. */
  readonly runs: number;
  /** Whether this run paces its token requests and takes part in provider incidents (a patch: older runs do neither). */
  paced: boolean;
  /** Whether this run makes live probes (a patch: older runs never probe). */
  probing: boolean;
  /** Where the host activities go (workflows/activities.ts); set with `paced` when the run starts. */
  queues: SlotQueues;
  /** The prompt of the login on screen: a login never spans continue-as-new. */
  prompt: LoginPrompt | undefined;
  /** Probe steps finished in this run: what a waiting `probeNow` counts. */
  probeSteps: number;
  /** A `probeNow` signal (a pool's auth-failure report) asked: a probe that cannot tell is followed by a refresh. Not carried: continue-as-new waits for the probe. */
  refreshUnlessProven: boolean;
}

/** The notice a transition means to send; whether it is news (the phase changed, no incident speaks for the slot) is the policy's to say. */
export interface PhaseNotice {
  readonly kind: 'awaiting-operator' | 'degraded' | 'needs-relogin' | 'recovered';
  readonly reason: string;
  readonly action?: NoticeAction;
}

/** Told after every publish, with the phase published before and the transition's notice (workflows/notices.ts). */
export interface NoticePolicy {
  published(before: string | undefined, notice: PhaseNotice | undefined): void;
  /** A notice that is news whatever the phase (a setup token about to expire). */
  emit(kind: NoticeKind, reason: string, action?: NoticeAction): void;
}

type Published = { phase?: string; prompt?: string; expiresAt?: number };

/** Status times are whole epoch milliseconds (the schema says so); a file's mtime is not. */
function epochMs<T extends number | undefined>(ms: T): T {
  return (ms === undefined ? ms : Math.floor(ms)) as T;
}

/** The object without its undefined fields (what JSON would drop anyway). */
function defined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

export class Slot {
  /** Durable: status and continue-as-new. Changed by transitions (workflows/transitions.ts). */
  readonly state: SlotState;
  /** This run's values. */
  readonly run: RunValues;

  // Runtime handles: what the workflow holds while it runs, never shown or carried.
  /** The scope of the login or refresh in progress: relogin, cancelLogin and retire cancel it. */
  stepScope: CancellationScope | undefined;
  /** A login is in progress (a refresh needs no flag: nothing refers to it). */
  step: 'login' | undefined;
  live: LiveLogin | undefined;
  /** Turns the transitions' notices into sent notices (undefined: a run recorded before notices). */
  notices: NoticePolicy | undefined;
  private published: Published;

  constructor(readonly input: SlotInput) {
    const carried = input.carried;
    const fresh: SlotState = { phase: 'logging-in', logins: 0, refreshes: 0, consecutiveFailures: 0, pending: { login: !input.adoptExisting, refresh: false, retire: undefined } };
    if (carried) {
      // Carried states written by older runs lack the fields added since (`pending` among them): nothing was asked then.
      const { pending, runs: _runs, ...rest } = carried;
      // The incident as the incident workflow's signal is taken (common/incidents.ts): checked, bounded.
      this.state = { ...fresh, ...rest, incident: incidentStateOf(rest.incident), pending: pending ? { ...pending } : { login: false, refresh: false, retire: undefined } };
    } else {
      this.state = fresh;
    }
    this.run = {
      runs: carried ? carried.runs + 1 : 1,
      paced: false,
      probing: false,
      queues: slotQueues(input.host, input.provider, false),
      prompt: undefined,
      probeSteps: 0,
      refreshUnlessProven: false,
    };
    // Search attributes travel with the run chain; only changes are upserted.
    const sa = workflowInfo().typedSearchAttributes;
    this.published = {
      phase: sa.get(SlotPhaseKey),
      prompt: sa.get(SlotPromptKey),
      expiresAt: sa.get(SlotExpiresAtKey)?.getTime(),
    };
  }

  /** The input of the next run: the durable state, whole, and the run count. */
  carry(): CarriedState {
    const { pending, ...rest } = this.state;
    return {
      ...defined({ ...rest, expiresAt: epochMs(rest.expiresAt), lastRefresh: epochMs(rest.lastRefresh), nextRefreshAt: epochMs(rest.nextRefreshAt), nextProbeAt: epochMs(rest.nextProbeAt) }),
      runs: this.run.runs,
      pending: { ...pending },
    };
  }

  /** What `status` answers: the durable state as shown (the incident is the incident workflow's to show), and the prompt. */
  status(): SlotStatus {
    const { pending, incident: _incident, ...shown } = this.state;
    // The next refresh and probe are scheduled only for a slot that has a live credential.
    const scheduled = shown.phase === 'active' || shown.phase === 'degraded';
    const asked = [
      ...(pending.login ? ['relogin' as const] : []),
      ...(pending.refresh ? ['refresh' as const] : []),
      ...(pending.retire ? ['retire' as const] : []),
      ...(pending.probe ? ['probe' as const] : []),
    ];
    return defined({
      ...shown,
      // After the carried state: a carried field never stands in for the slot's own identity.
      slotId: this.input.slotId,
      provider: this.input.provider,
      host: this.input.host,
      prompt: this.run.prompt,
      expiresAt: epochMs(shown.expiresAt),
      lastRefresh: epochMs(shown.lastRefresh),
      nextRefreshAt: scheduled ? epochMs(shown.nextRefreshAt) : undefined,
      nextProbeAt: scheduled ? epochMs(shown.nextProbeAt) : undefined,
      account: shown.account || undefined,
      lastError: shown.lastError || undefined,
      pending: asked.length > 0 ? asked : undefined,
    });
  }

  /**
   * Changes the phase (and prompt) and publishes what changed, with the notice the
   * transition means; only transitions (workflows/transitions.ts) call it.
   */
  enter(phase: Phase, notice?: PhaseNotice, prompt?: LoginPrompt): void {
    this.state.phase = phase;
    this.run.prompt = prompt;
    this.publish(notice);
  }

  /** A phase shown by `status` only: a refresh does not cost the dashboard two upserts. */
  setTransientPhase(phase: Extract<Phase, 'refreshing' | 'verifying'>): void {
    this.state.phase = phase;
    this.run.prompt = undefined;
    // Not a command (no history event): the page always says the phase.
    setCurrentDetails(this.details());
  }

  /** Publishes what changed to search attributes and the Web UI's details, then hands the notice to the policy. */
  publish(notice?: PhaseNotice): void {
    const { phase, expiresAt } = this.state;
    const shown = this.run.prompt;
    const prompt = shown ? `${shown.url}${shown.userCode ? ` code ${shown.userCode}` : ''}` : undefined;
    const next: Published = { phase, prompt, expiresAt };
    const changes = [
      ...(next.phase !== this.published.phase ? [{ key: SlotPhaseKey, value: phase }] : []),
      ...(next.prompt !== this.published.prompt ? [{ key: SlotPromptKey, value: prompt ?? null }] : []),
      ...(next.expiresAt !== this.published.expiresAt ? [{ key: SlotExpiresAtKey, value: expiresAt !== undefined ? new Date(expiresAt) : null }] : []),
    ];
    if (changes.length > 0) upsertSearchAttributes(changes);
    const before = this.published.phase;
    this.published = next;
    setCurrentDetails(this.details());
    this.notices?.published(before, notice);
  }

  /** The Web UI's workflow page: what the slot is doing and what the operator should do (markdown, never a secret). */
  details(): string {
    return slotDetails(this.status());
  }

  record(kind: Outcome['kind'], message: string): void {
    this.state.lastOutcome = { at: Date.now(), kind, message };
  }

  /** Why a code cannot be typed now, or undefined. Checked against the live prompt; never repeats the code. */
  refuseCode(input: unknown): string | undefined {
    const live = this.live;
    const { phase } = this.state;
    const prompt = this.run.prompt;
    if (phase === 'awaiting-operator' && prompt && prompt.interaction !== 'paste-code') {
      return `this login needs no code: open ${prompt.url}${prompt.userCode ? ` and enter ${prompt.userCode}` : ''}; it completes by itself`;
    }
    if (!live || phase !== 'awaiting-operator' || this.stepScope?.consideredCancelled) {
      const why = this.step === 'login' ? 'the login CLI is starting or restarting; wait for its URL' : `phase: ${phase}`;
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
