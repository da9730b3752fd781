// The slot's main loop takes one request at a time, in one priority order
// (workflows/next-request.ts): retire, then a move (unless a probeNow waits for its
// answer), then a login (held while a provider incident holds it), then what the phase
// allows. A slot with a live credential sleeps before anything else; a slot that needs a
// person acts only on a refresh or a probe it was asked for.
import { describe, expect, it } from 'vitest';
import { nextRequest, type NextRequest, type RequestView, type Woken } from '../../workflows/next-request';
import type { Pending } from '../../common/slot-input';
import type { Phase } from '../../common/slot';
import type { IncidentState } from '../../common/incidents';

const NOW = 1_800_000_000_000;
const nothing: Pending = { login: false, refresh: false, retire: undefined };
const held: IncidentState = { provider: 'claude', open: true, held: true, slots: 3, failure: 'the refresh token was revoked' };

function view(phase: Phase, pending: Partial<Pending>, extra: Partial<RequestView> = {}): RequestView {
  return { phase, pending: { ...nothing, ...pending }, probing: true, ...extra };
}

const cases: Array<[string, RequestView, Woken, NextRequest]> = [
  ['retire goes before everything', view('active', { retire: { removeFiles: false }, login: true, refresh: true, move: { toHost: 'b' } }), undefined, { kind: 'retire' }],
  ['a move goes before a login', view('needs-relogin', { move: { toHost: 'b' }, login: true }), undefined, { kind: 'move', toHost: 'b' }],
  ['a move waits for a probeNow that waits for its answer', view('active', { move: { toHost: 'b' }, probe: true }), 'sleep', { kind: 'probe', reason: 'operator' }],
  ['a login held by an incident waits', view('needs-relogin', { login: true }, { incident: held }), undefined, { kind: 'held-login' }],
  ['a login goes before a refresh', view('active', { login: true, refresh: true }), undefined, { kind: 'login' }],
  ['a new slot logs in', view('logging-in', { login: true }), undefined, { kind: 'login' }],
  ['an active slot sleeps first, even with a refresh asked', view('active', { refresh: true }), undefined, { kind: 'sleep' }],
  ['after its sleep, an asked refresh is forced', view('degraded', { refresh: true, probe: true }), 'sleep', { kind: 'refresh', force: true }],
  ['after its sleep, a probe due by schedule', view('active', {}, { nextProbeAt: NOW - 1 }), 'sleep', { kind: 'probe', reason: 'schedule' }],
  ['after its sleep, no probe in a run without probes', view('active', {}, { nextProbeAt: NOW - 1, probing: false }), 'sleep', { kind: 'refresh', force: false }],
  ['after its sleep with nothing asked, the refresh that is due', view('active', {}, { nextProbeAt: NOW + 1 }), 'sleep', { kind: 'refresh', force: false }],
  ['after its sleep, a login asked goes first', view('active', { login: true, refresh: true }), 'sleep', { kind: 'login' }],
  ['a slot that needs a person waits for one', view('needs-relogin', {}), undefined, { kind: 'await-person' }],
  ['a slot that needs a person takes an asked refresh, forced', view('needs-relogin', { refresh: true, probe: true }), undefined, { kind: 'refresh', force: true }],
  ['… but not while a move is asked with a probe', view('needs-relogin', { refresh: true, probe: true, move: { toHost: 'b' } }), undefined, { kind: 'probe', reason: 'operator' }],
  ['a slot that needs a person takes an asked probe', view('needs-relogin', { probe: true }), undefined, { kind: 'probe', reason: 'operator' }],
  ['a person-wait woken by a login writes the status first', view('needs-relogin', { login: true }), 'person', { kind: 'none' }],
  ['a person-wait woken by retire writes the status first', view('needs-relogin', { retire: { removeFiles: true } }), 'person', { kind: 'none' }],
  ['a person-wait woken by a move writes the status first', view('needs-relogin', { move: { toHost: 'b' } }), 'person', { kind: 'none' }],
  ['a person-wait woken by a refresh runs it', view('needs-relogin', { refresh: true }), 'person', { kind: 'refresh', force: true }],
];

describe('nextRequest: one priority order', () => {
  it.each(cases)('%s', (_title, slot, woken, expected) => {
    expect(nextRequest(slot, woken, NOW)).toEqual(expected);
  });

  it('a slot that needs a person never sleeps, and an active one never waits for a person', () => {
    const phases: Phase[] = ['logging-in', 'awaiting-operator', 'verifying', 'refreshing', 'needs-relogin', 'retired'];
    for (const phase of phases) expect(nextRequest(view(phase, {}), undefined, NOW).kind).toBe('await-person');
    for (const phase of ['active', 'degraded'] as const) expect(nextRequest(view(phase, {}), undefined, NOW).kind).toBe('sleep');
  });
});
