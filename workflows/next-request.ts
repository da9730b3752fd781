// The main loop's next request: what the slot acts on now, one kind at a time, in one
// priority order. Pure (over the slot's pending requests, phase, incident and probe
// schedule): the main loop (workflows/slot.ts) consumes it in one exhaustive switch.
import type { Phase } from '../common/slot';
import type { Pending } from '../common/slot-input';
import type { ProbeReason } from '../common/probe';
import type { IncidentState } from '../common/incidents';

/**
 * The requests, in priority order (the first that applies wins):
 * 1. `retire`: ends the loop.
 * 2. `move`: unless a `probeNow` waits for its answer (a move's new run could not answer it).
 * 3. `held-login`: a login an open provider incident holds; waits for the operator's release.
 * 4. `login`: a relogin asked, or started by a failure.
 * 5. A slot with a live credential (`active`, `degraded`): after its `sleep`, a `refresh`
 *    asked (forced), else a `probe` due (asked or scheduled), else the refresh that is due.
 * 6. Any other (a person is needed): a `refresh` asked (forced; not while a move is asked),
 *    a `probe` asked, else `await-person`.
 * After `await-person` the loop writes the status file (and may continue as new) before
 * anything else: only what the person-wait itself acts on (6's refresh or probe) is taken
 * then, else `none`.
 */
export type NextRequest =
  | { readonly kind: 'retire' }
  | { readonly kind: 'move'; readonly toHost: string }
  | { readonly kind: 'held-login' }
  | { readonly kind: 'login' }
  | { readonly kind: 'refresh'; readonly force: boolean }
  | { readonly kind: 'probe'; readonly reason: Extract<ProbeReason, 'operator' | 'schedule'> }
  | { readonly kind: 'sleep' }
  | { readonly kind: 'await-person' }
  | { readonly kind: 'none' };

/** What the loop just waited in: its `sleep` (a timer or a request woke it), or `await-person`. */
export type Woken = 'sleep' | 'person' | undefined;

/** What `nextRequest` reads of the slot. */
export interface RequestView {
  readonly phase: Phase;
  readonly pending: Pending;
  readonly incident?: IncidentState | undefined;
  readonly nextProbeAt?: number | undefined;
  /** This run makes live probes. */
  readonly probing: boolean;
}

/** A scheduled or requested probe is due now. */
export const probeDue = (slot: Pick<RequestView, 'pending' | 'nextProbeAt'>, now: number): boolean =>
  slot.pending.probe === true || (slot.nextProbeAt !== undefined && now >= slot.nextProbeAt);

/** Anything asked that ends a wait. */
export const asked = ({ pending }: Pick<RequestView, 'pending'>): boolean =>
  pending.refresh || pending.login || pending.retire !== undefined || pending.move !== undefined || pending.probe === true;

export function nextRequest(slot: RequestView, woken: Woken, now: number): NextRequest {
  const { pending } = slot;
  if (woken === 'person') {
    // The person-wait acts only on a refresh or a probe; anything else comes after the status file is written.
    if (pending.retire || pending.login) return { kind: 'none' };
    return personRequest(slot) ?? { kind: 'none' };
  }
  if (pending.retire) return { kind: 'retire' };
  if (pending.move && !pending.probe) return { kind: 'move', toHost: pending.move.toHost };
  if (pending.login) return slot.incident?.held ? { kind: 'held-login' } : { kind: 'login' };
  if (slot.phase === 'active' || slot.phase === 'degraded') {
    if (woken !== 'sleep') return { kind: 'sleep' };
    if (pending.refresh) return { kind: 'refresh', force: true };
    if (slot.probing && probeDue(slot, now)) return { kind: 'probe', reason: pending.probe ? 'operator' : 'schedule' };
    return { kind: 'refresh', force: false };
  }
  return personRequest(slot) ?? { kind: 'await-person' };
}

/** What a slot that needs a person acts on by itself: a refresh asked (not while a move waits), or a probe asked. */
function personRequest({ pending }: RequestView): NextRequest | undefined {
  if (pending.refresh && !pending.move) return { kind: 'refresh', force: true };
  if (pending.probe) return { kind: 'probe', reason: 'operator' };
  return undefined;
}
