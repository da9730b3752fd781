// The state of one pool, held by its workflow: members, leases, cooldowns. A slot's
// phase is not kept here: it is the slot's, read by a census (the slots' own status
// query) no older than a lease allows, so the pool never leases from a stale copy.
import { setCurrentDetails, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import {
  type CensusEntry,
  type Lease,
  type PoolCarried,
  type PoolInput,
  type PoolMember,
  type PoolPolicy,
  type PoolSlotStatus,
  type PoolStatus,
} from '../common/pool';
import { codeSpan, markdownText } from '../common/markdown';
import { PoolAvailableKey } from '../common/search-attributes';

const iso = (ms: number): string => new Date(ms).toISOString();

export class Pool {
  readonly members = new Map<string, PoolMember>();
  census = new Map<string, CensusEntry>();
  censusAt: number | undefined;
  leasesGranted = 0;
  /** Lease requests answered "no slot" (pool-exhausted, or the slots could not be asked). */
  leasesRefused = 0;
  runs = 1;
  /** A `pool-exhausted` notice went out and no lease succeeded since: the next refusal is the same event. */
  exhausted = false;
  private publishedAvailable: number | undefined;

  constructor(readonly input: PoolInput) {
    const carried = input.carried;
    if (carried) {
      for (const m of carried.members) this.members.set(m.slotId, { ...m, leases: m.leases.map((l) => ({ ...l })) });
      this.leasesGranted = carried.leases;
      this.leasesRefused = carried.refused ?? 0;
      this.runs = carried.runs + 1;
    } else {
      for (const slotId of input.slots ?? []) this.members.set(slotId, { slotId, leases: [] });
    }
    this.publishedAvailable = workflowInfo().typedSearchAttributes.get(PoolAvailableKey);
  }

  get policy(): PoolPolicy {
    return this.input.policy ?? 'least-recently-leased';
  }

  carry(): PoolCarried {
    return { members: [...this.members.values()].map((m) => ({ ...m, leases: [...m.leases] })), leases: this.leasesGranted, refused: this.leasesRefused, runs: this.runs };
  }

  /** Takes the slots' answers; an auth failure is forgiven once its slot has acted since (refreshed, logged in). */
  setCensus(entries: readonly CensusEntry[], at: number): void {
    this.census = new Map(entries.map((e) => [e.slotId, e]));
    this.censusAt = at;
    for (const m of this.members.values()) {
      const e = this.census.get(m.slotId);
      if (m.authFailedAt !== undefined && e?.phase === 'active' && (e.outcomeAt ?? 0) > m.authFailedAt) m.authFailedAt = undefined;
      // A live probe since the report that the provider accepted (ok, or 429: the token is good) clears it too.
      if (m.authFailedAt !== undefined && e?.phase === 'active' && e.probe && e.probe.at > m.authFailedAt && (e.probe.outcome === 'ok' || e.probe.outcome === 'rate-limited')) m.authFailedAt = undefined;
      // A probe answered 429: the account rests until the reset the provider gave.
      if (e?.probe?.outcome === 'rate-limited' && e.probe.resetAt !== undefined && e.probe.resetAt > at && e.probe.resetAt > (m.coolUntil ?? 0)) {
        m.coolUntil = e.probe.resetAt;
        m.resetAt = e.probe.resetAt;
      }
    }
  }

  /** Drops leases past their expiry (nobody renewed them). */
  prune(now: number): void {
    for (const m of this.members.values()) m.leases = m.leases.filter((l) => l.expiresAt > now);
  }

  findLease(leaseId: string, now: number): { member: PoolMember; lease: Lease } | undefined {
    for (const member of this.members.values()) {
      const lease = member.leases.find((l) => l.leaseId === leaseId && l.expiresAt > now);
      if (lease) return { member, lease };
    }
    return undefined;
  }

  endLease(member: PoolMember, leaseId: string): void {
    member.leases = member.leases.filter((l) => l.leaseId !== leaseId);
  }

  /** Why the slot is not leased now, or undefined when it may be. */
  whyNot(m: PoolMember, now: number): string | undefined {
    const e = this.census.get(m.slotId);
    if (!e) return 'not asked yet';
    if (e.problem) return e.problem;
    if (e.provider !== undefined && e.provider !== this.input.provider) return `provider ${e.provider}, not the pool's ${this.input.provider}`;
    if (e.phase !== 'active') return `phase ${e.phase}`;
    if (m.authFailedAt !== undefined) return `auth failure reported ${iso(m.authFailedAt)}; waiting for the slot to refresh`;
    if (m.coolUntil !== undefined && m.coolUntil > now) return `rate limited until ${iso(m.coolUntil)}`;
    const max = this.input.maxLeasesPerSlot ?? 0;
    if (max > 0 && m.leases.filter((l) => l.expiresAt > now).length >= max) return `holds ${max} lease${max === 1 ? '' : 's'}`;
    return undefined;
  }

  /** The slot to lease next under the pool's policy, or undefined. */
  pick(now: number): PoolMember | undefined {
    const eligible = [...this.members.values()].filter((m) => this.whyNot(m, now) === undefined);
    const leased = (m: PoolMember): number => m.lastLeaseSeq ?? -Infinity;
    const reset = (m: PoolMember): number => (m.resetAt !== undefined && m.resetAt > now ? m.resetAt : Infinity);
    eligible.sort((a, b) => {
      if (this.policy === 'soonest-reset' && reset(a) !== reset(b)) return reset(a) - reset(b);
      if (leased(a) !== leased(b)) return leased(a) - leased(b);
      return a.slotId < b.slotId ? -1 : a.slotId > b.slotId ? 1 : 0;
    });
    return eligible[0];
  }

  status(now: number): PoolStatus {
    const slots: PoolSlotStatus[] = [...this.members.values()].map((m) => {
      const e = this.census.get(m.slotId);
      const why = this.whyNot(m, now);
      return {
        slotId: m.slotId,
        phase: e?.phase ?? 'unknown',
        ...(e?.host ? { host: e.host } : {}),
        eligible: why === undefined,
        ...(why ? { why } : {}),
        leases: m.leases.filter((l) => l.expiresAt > now).length,
        ...(m.lastLeasedAt !== undefined ? { lastLeasedAt: m.lastLeasedAt } : {}),
        ...(m.coolUntil !== undefined && m.coolUntil > now ? { coolUntil: m.coolUntil } : {}),
      };
    });
    return {
      pool: this.input.pool,
      provider: this.input.provider,
      policy: this.policy,
      available: slots.filter((s) => s.eligible).length,
      slots,
      leases: [...this.members.values()].flatMap((m) => m.leases.filter((l) => l.expiresAt > now)),
      ...(this.censusAt !== undefined ? { censusAt: this.censusAt } : {}),
      leasesGranted: this.leasesGranted,
      leasesRefused: this.leasesRefused,
    };
  }

  /** One line per reason a slot is out, for the refusal and the notice. */
  explain(now: number): string {
    if (this.members.size === 0) return 'the pool has no slots; add some with: slotctl pool add';
    return [...this.members.values()].map((m) => `${m.slotId}: ${this.whyNot(m, now) ?? 'available'}`).join('; ');
  }

  /** The dashboard: PoolAvailable when it changed, and the Web UI's details. */
  publish(now: number): void {
    const s = this.status(now);
    if (s.available !== this.publishedAvailable) {
      upsertSearchAttributes([{ key: PoolAvailableKey, value: s.available }]);
      this.publishedAvailable = s.available;
    }
    const rows = s.slots.map((x) => `| ${codeSpan(x.slotId)} | ${x.phase} | ${x.eligible ? 'yes' : markdownText(x.why ?? 'no')} | ${x.leases} |`);
    setCurrentDetails(
      [
        `**Pool \`${s.pool}\`** · ${s.provider} · policy ${s.policy} · **${s.available} of ${s.slots.length} available**`,
        '',
        '| slot | phase | leasable | leases |',
        '|---|---|---|---|',
        ...rows,
        '',
        s.censusAt !== undefined ? `Slots last asked ${iso(s.censusAt)}. ${s.leasesGranted} leases granted.` : 'Slots not asked yet.',
        '',
        'Lease: `slotctl pool lease ' + s.pool + '` (update `lease`).',
      ].join('\n'),
    );
  }
}
