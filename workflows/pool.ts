// The entity workflow `pool:<name>`: leases the slots of one provider to runtimes and
// rotates away from rate-limited ones. Each slot stays the authority over its phase:
// the pool asks the slots (their `status` query, through one census activity) before
// a lease when its last answer is older than `censusMaxAgeMs`, and every few minutes
// for the dashboard; it keeps only its own facts (leases, cooldowns, auth reports).
import {
  ApplicationFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  patched,
  setHandler,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import { FailureType } from '../common/failures';
import { probeNowSignal, refreshNowSignal } from '../common/messages';
import {
  addSlotsUpdate,
  cooldownEnd,
  leaseInputProblem,
  leaseRefProblem,
  leaseUpdate,
  MAX_POOL_SLOTS,
  poolStatusQuery,
  rateLimitedProblem,
  releaseProblem,
  releaseUpdate,
  removeSlotsUpdate,
  renewUpdate,
  reportAuthFailureUpdate,
  reportRateLimitedUpdate,
  slotListProblem,
  type LeaseGrant,
  type PoolInput,
  type PoolStatus,
} from '../common/pool';
import { slotWorkflowId } from '../common/slot';
import { agentPlanActivity, poolActivities } from './activities';
import { Notices } from './notices';
import { Pool } from './pool-state';

/** Pools recorded before live probes ask the slot for a refresh on an auth failure, on replay too. */
const AUTH_PROBE_PATCH = 'auth-failure-probes';
const DEFAULT_LEASE_TTL_MS = 600_000;
const DEFAULT_CENSUS_MAX_AGE_MS = 2000;
/** The dashboard's census when nobody leases. */
const CENSUS_EVERY_MS = 5 * 60_000;

/** Leases recorded before grants carried the slot's agent plan (a host activity per lease). */
const LEASE_AGENT_PLAN_PATCH = 'lease-agent-plan';

/** The leased slot's agent plan from its host; the lease is granted (with the reason) when the host gives none. */
async function agentPlanOf(slotId: string, host: string | undefined): Promise<Pick<LeaseGrant, 'agentPlan' | 'agentPlanProblem'>> {
  if (host === undefined) return { agentPlanProblem: `the host of slot ${slotId} is not known yet` };
  try {
    const answer = await agentPlanActivity(host)({ slotId });
    return 'plan' in answer ? { agentPlan: answer.plan } : { agentPlanProblem: answer.problem };
  } catch {
    return { agentPlanProblem: `host ${host} did not answer for the agent plan of slot ${slotId}; see: slotctl agent-plan ${slotId}` };
  }
}

const refuse = (message: string): ApplicationFailure => ApplicationFailure.nonRetryable(message, FailureType.poolRequestRefused);
const check = (problem: string | undefined): void => {
  if (problem) throw refuse(problem);
};

/** What the pool's handlers share with its loop: the census (one at a time) and the loop's wake-up. */
interface PoolRun {
  readonly input: PoolInput;
  readonly pool: Pool;
  readonly notices: Notices;
  /** Asks the slots unless the last answer is at most `maxAgeMs` old; leases arriving meanwhile share it. */
  readonly census: (maxAgeMs: number) => Promise<void>;
  /** Wakes the loop (new members are asked at once). */
  wake: boolean;
}

export async function poolWorkflow(input: PoolInput): Promise<PoolStatus> {
  const pool = new Pool(input);
  const notices = new Notices();
  const { slotCensus } = poolActivities();

  // One census at a time; leases arriving meanwhile share it.
  let running: Promise<void> | undefined;
  const runCensus = async (): Promise<void> => {
    const slotIds = [...pool.members.keys()];
    pool.setCensus(slotIds.length > 0 ? await slotCensus({ slotIds }) : [], Date.now());
  };
  const census = async (maxAgeMs: number): Promise<void> => {
    if (!running) {
      if (pool.censusAt !== undefined && Date.now() - pool.censusAt <= maxAgeMs) return;
      // `finally` runs after the assignment, even when the census finished at once.
      running = runCensus().finally(() => void (running = undefined));
    }
    await running;
    pool.publish(Date.now());
  };
  const run: PoolRun = { input, pool, notices, census, wake: false };

  installLeaseHandlers(run);
  installReportHandlers(run);
  installMemberHandlers(run);

  for (;;) {
    const long = (): boolean => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength >= (input.maxHistoryEvents ?? 2000);
    await condition(() => run.wake || long(), CENSUS_EVERY_MS);
    run.wake = false;
    await census(0).catch(() => undefined);
    if (long()) {
      await condition(allHandlersFinished);
      await notices.settle(60_000);
      pool.prune(Date.now());
      const { slots: _initial, ...rest } = input;
      await continueAsNew<typeof poolWorkflow>({ ...rest, carried: pool.carry() });
    }
  }
}

/** The member and lease of `leaseId`, or the refusal a holder understands. */
function leaseOf({ pool, input }: PoolRun, leaseId: string) {
  const found = pool.findLease(leaseId, Date.now());
  if (!found) throw refuse(`lease ${leaseId} is not held in pool ${input.pool}: it expired, was released, or never existed; lease again`);
  return found;
}

/** The status query, and the lease's life: lease, renew, release. */
function installLeaseHandlers(run: PoolRun): void {
  const { input, pool, notices, census } = run;
  const name = input.pool;
  setHandler(poolStatusQuery, () => pool.status(Date.now()), { description: 'Slots, which can be leased and why not, leases held, cooldowns. Never a token.' });

  setHandler(
    leaseUpdate,
    async (given): Promise<LeaseGrant> => {
      // `temporal workflow update execute` may send no input at all.
      const request = given ?? {};
      try {
        await census(input.censusMaxAgeMs ?? DEFAULT_CENSUS_MAX_AGE_MS);
      } catch {
        pool.leasesRefused += 1;
        throw refuse(`pool ${name} could not ask its slots for their phase; try again`);
      }
      const now = Date.now();
      pool.prune(now);
      const member = pool.pick(now);
      if (!member) {
        pool.leasesRefused += 1;
        const reason = pool.explain(now);
        if (!pool.exhausted) {
          pool.exhausted = true;
          notices.emit('pool-exhausted', { pool: name, provider: input.provider, reason, action: { command: `slotctl pool status ${name}` } });
        }
        throw ApplicationFailure.nonRetryable(`pool ${name} has no slot to lease: ${reason}`, FailureType.poolExhausted);
      }
      pool.exhausted = false;
      const ttl = request.ttlMs ?? input.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS;
      const lease = { leaseId: uuid4(), slotId: member.slotId, ...(request.holder ? { holder: request.holder } : {}), leasedAt: now, expiresAt: now + ttl };
      member.leases.push(lease);
      member.lastLeasedAt = now;
      pool.leasesGranted += 1;
      member.lastLeaseSeq = pool.leasesGranted;
      pool.publish(now);
      const host = pool.census.get(member.slotId)?.host;
      const grant = { leaseId: lease.leaseId, slotId: member.slotId, provider: input.provider, host: host ?? 'unknown', expiresAt: lease.expiresAt };
      // Leases granted before agent plans were added answer without one on replay.
      return patched(LEASE_AGENT_PLAN_PATCH) ? { ...grant, ...(await agentPlanOf(member.slotId, host)) } : grant;
    },
    { validator: (request) => check(leaseInputProblem(request)), description: 'Lease a slot: {"holder": "runner-1", "ttlMs": 600000} (both optional). Answers the slot id, lease id and expiry.' },
  );

  setHandler(
    renewUpdate,
    (ref): LeaseGrant => {
      const { member, lease } = leaseOf(run, ref.leaseId);
      lease.expiresAt = Date.now() + (ref.ttlMs ?? input.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS);
      return { leaseId: lease.leaseId, slotId: member.slotId, provider: input.provider, host: pool.census.get(member.slotId)?.host ?? 'unknown', expiresAt: lease.expiresAt };
    },
    { validator: (ref) => check(leaseRefProblem(ref) ?? (ref.ttlMs === undefined ? undefined : leaseInputProblem({ ttlMs: ref.ttlMs }))), description: 'Extend a lease: {"leaseId": "…"}.' },
  );

  setHandler(
    releaseUpdate,
    (ref) => {
      const { member } = leaseOf(run, ref.leaseId);
      pool.endLease(member, ref.leaseId);
      if (ref.resetAt !== undefined) member.resetAt = ref.resetAt;
      pool.publish(Date.now());
    },
    { validator: (ref) => check(releaseProblem(ref)), description: 'Give a lease back: {"leaseId": "…", "resetAt": <epoch ms of the quota reset, optional>}.' },
  );
}

/** What a holder saw: a 429 (the slot rests), a refused token (the slot is asked to probe it). */
function installReportHandlers(run: PoolRun): void {
  const { pool } = run;
  setHandler(
    reportRateLimitedUpdate,
    (report) => {
      const { member } = leaseOf(run, report.leaseId);
      const now = Date.now();
      pool.endLease(member, report.leaseId);
      member.coolUntil = cooldownEnd(now, report);
      member.resetAt = member.coolUntil;
      pool.publish(now);
      return { coolUntil: member.coolUntil };
    },
    { validator: (report) => check(rateLimitedProblem(report)), description: 'The slot answered 429: {"leaseId": "…", "resetAt": <epoch ms>} or {"retryAfterSec": 60}. Ends the lease; the slot rests until then.' },
  );

  setHandler(
    reportAuthFailureUpdate,
    async (ref) => {
      const { member } = leaseOf(run, ref.leaseId);
      pool.endLease(member, ref.leaseId);
      member.authFailedAt = Date.now();
      pool.publish(Date.now());
      // The slot decides: a probe proves the token (a refused one is refreshed), or it goes needs-relogin and asks a person.
      const ask = patched(AUTH_PROBE_PATCH) ? probeNowSignal : refreshNowSignal;
      await getExternalWorkflowHandle(slotWorkflowId(member.slotId)).signal(ask).catch(() => undefined);
    },
    { validator: (ref) => check(leaseRefProblem(ref)), description: 'The provider refused the slot\'s token: {"leaseId": "…"}. Ends the lease and asks the slot to probe its token (refreshing a refused one); it is out of rotation until it has.' },
  );
}

/** Membership: add and remove slots. */
function installMemberHandlers(run: PoolRun): void {
  const { pool } = run;
  const name = run.input.pool;
  setHandler(
    addSlotsUpdate,
    ({ slots }) => {
      for (const slotId of slots) if (!pool.members.has(slotId)) pool.members.set(slotId, { slotId, leases: [] });
      // Asked at the next lease.
      pool.censusAt = undefined;
      run.wake = true;
      return [...pool.members.keys()];
    },
    {
      validator: (req) => {
        check(slotListProblem(req));
        if (new Set([...pool.members.keys(), ...req.slots]).size > MAX_POOL_SLOTS) throw refuse(`a pool holds at most ${MAX_POOL_SLOTS} slots`);
      },
      description: 'Add slots: {"slots": ["a", "b"]}. They must be slots of the pool\'s provider.',
    },
  );

  setHandler(
    removeSlotsUpdate,
    ({ slots }) => {
      for (const slotId of slots) pool.members.delete(slotId);
      pool.publish(Date.now());
      return [...pool.members.keys()];
    },
    {
      validator: (req) => {
        check(slotListProblem(req));
        const unknown = req.slots.filter((s: string) => !pool.members.has(s));
        if (unknown.length > 0) throw refuse(`not in pool ${name}: ${unknown.join(', ')}`);
      },
      description: 'Remove slots: {"slots": ["a"]}. Their leases end.',
    },
  );
}
