// Prometheus metrics of the slots. Workflows cannot do I/O, so figures come from two
// places a worker sees: what the activities it runs observe (refresh and login
// outcomes, times), and the search attributes the slot workflows publish (phase,
// provider, host, expiry), read raw from visibility (client/visibility.ts). Never a token.
import type { Client } from '@temporalio/client';
import type { ActivityInboundCallsInterceptor, ActivityInterceptorsFactory } from '@temporalio/worker';
import { ApplicationFailure, type Context } from '@temporalio/activity';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { FailureType, PERMANENT_REFRESH_FAILURES } from '../common/failures';
import { PROBE_OUTCOMES } from '../common/probe';
import { providerNames } from '../providers';
import { SlotExpiresAtKey, SlotHostKey, SlotIdKey, SlotPhaseKey, SlotProviderKey } from '../common/search-attributes';
import { poolStatusQuery, type PoolStatus } from '../common/pool';
import { isPhase, PHASES } from '../common/slot';
import { countExecutions, countGrouped, listExecutions, type VisibleExecution } from '../client/visibility';

/** The `outcome` label of refreshes_total. */
const REFRESH_OUTCOMES = ['success', 'transient', 'permanent', 'error'] as const;

/**
 * The `provider` label of what an activity observed: the activity's input is workflow input,
 * which anyone in the namespace writes, so a name the registry does not know is `other`
 * (one series, not one per string an attacker invents).
 */
function providerLabel(value: unknown): string {
  return typeof value === 'string' && providerNames().includes(value) ? value : 'other';
}

/** Every name starts with this. */
export const METRIC_PREFIX = 'slot_provisioner_';

/** Visibility is asked at most this often, however many scrapers there are. */
const LISTING_TTL_MS = 5_000;
/** A scrape answers with the last figures when visibility is slower than this. */
const LISTING_TIMEOUT_MS = 5_000;
/** @see SlotMetricsOptions.slotListingMaxAgeMs */
export const DEFAULT_SLOT_LISTING_MAX_AGE_MS = 15_000;
/** Slots whose unreadable row was logged, remembered so that each is logged once (bounded). */
const MAX_LOGGED_UNREADABLE = 10_000;
/**
 * Why a running slot's row was left out of the slot gauges (the `reason` label of
 * slots_unreadable): its search attributes could not be decoded, it has no SlotPhase,
 * or its SlotPhase is no phase a slot publishes (anyone who may start workflows can
 * start a `slotWorkflow`: its values are not ours to turn into label values).
 */
export const UNREADABLE_REASONS = ['search-attributes', 'no-phase', 'unknown-phase'] as const;
type UnreadableReason = (typeof UNREADABLE_REASONS)[number];
/** Prompts remembered until their code arrives (per process): bounded against logins that never see one. */
const MAX_OPEN_PROMPTS = 10_000;

export interface SlotMetricsOptions {
  /** Lists the slot workflows (search attributes only: no payload is decoded). */
  readonly client: Client;
  /** Slots are the running `slotWorkflow`s on this task queue (one deployment). */
  readonly taskQueue: string;
  /** Node's process metrics (`process_*`, `nodejs_*`). @default true */
  readonly processMetrics?: boolean;
  /** @default Date.now */
  readonly now?: () => number;
  /**
   * One series per slot (`slot_phase`, the token expiry gauges), from a listing of every
   * running slot. Off: no listing at all, `slots` comes from counts (without `host`). @default true
   */
  readonly perSlotSeries?: boolean;
  /**
   * With per-slot series: a listing older than this (and than five times what it took) is
   * redone in the background while the scrape answers with it, so a scrape never waits for
   * one (except the very first).
   * @default DEFAULT_SLOT_LISTING_MAX_AGE_MS
   */
  readonly slotListingMaxAgeMs?: number;
  /** Told once per slot whose row is left out (slots_unreadable). @default nothing */
  readonly warn?: (fields: Record<string, unknown>, message: string) => void;
}

type SlotRow = { slot: string; phase: string; provider: string; host: string; expiresAt: number | undefined };
type Unreadable = { workflowId: string; reason: UnreadableReason; detail: string };
/** One visibility reading of the slots: the rows (or counts) and the rows left out. */
type SlotGroup = { phase: string; provider: string; host: string; slots: number };
/** One reading of the slots from visibility: per-slot rows (none from counts), their totals, and the rows left out. */
type SlotListing = { at: number; tookMs: number; rows: SlotRow[]; groups: SlotGroup[]; unreadable: Map<UnreadableReason, number> };

/** The project's metrics, their registry, and the activity interceptor that feeds them. */
export class SlotMetrics {
  readonly registry = new Registry();
  private readonly now: () => number;
  private listing: SlotListing | undefined;
  private inFlight: Promise<SlotListing> | undefined;
  private readonly loggedUnreadable = new Set<string>();
  /** When the prompt of a PTY login (by login id) was shown: the operator's wait ends with the code. */
  private readonly promptShownAt = new Map<string, number>();

  readonly slots: Gauge<'phase' | 'provider' | 'host'>;
  readonly slotPhase: Gauge<'slot' | 'phase' | 'provider' | 'host'>;
  readonly expiryTimestamp: Gauge<'slot' | 'provider' | 'host'>;
  readonly secondsToExpiry: Gauge<'slot' | 'provider' | 'host'>;
  readonly listingErrors: Counter;
  readonly slotsUnreadable: Gauge<'reason'>;
  readonly refreshes: Counter<'provider' | 'outcome'>;
  readonly logins: Counter<'provider' | 'outcome'>;
  readonly codeAnswers: Counter<'provider' | 'answer'>;
  readonly timeToPrompt: Histogram<'provider'>;
  readonly timeToActive: Histogram<'provider'>;
  readonly operatorWait: Histogram<'provider' | 'interaction'>;
  // Pools: each running pool's own answer to its status query, at scrape time (see poolRows).
  readonly poolSlots: Gauge<'pool' | 'provider' | 'state'>;
  readonly poolLeases: Gauge<'pool' | 'provider'>;
  readonly poolLeasesGranted: Counter<'pool' | 'provider'>;
  readonly poolLeasesRefused: Counter<'pool' | 'provider'>;
  readonly poolCooldownSeconds: Gauge<'pool' | 'provider'>;
  readonly poolListingErrors: Counter;
  private poolListing: { at: number; rows: PoolRow[] } | undefined;
  private poolsInFlight: Promise<PoolRow[]> | undefined;
  readonly probes: Counter<'provider' | 'outcome'>;
  /** Set once at start (workers/cli-versions.ts): 1 per provider's login CLI, labelled with what was found. */
  readonly loginCli: Gauge<'provider' | 'version' | 'checked_version' | 'status'>;
  readonly providerPausedSeconds: Gauge<'provider'>;
  private pauses: { all(): Promise<Array<{ provider: string; until: number }>> } | undefined;

  constructor(private readonly opts: SlotMetricsOptions) {
    this.now = opts.now ?? Date.now;
    const registers = [this.registry];
    const p = METRIC_PREFIX;
    // One collect fills all four listing gauges; each asks, the listing is shared.
    const collect = async (): Promise<void> => this.fillFromListing();
    this.slots = new Gauge({ name: `${p}slots`, help: 'Running slots by phase, provider and host (from the search attributes SlotPhase, SlotProvider, SlotHost)', labelNames: ['phase', 'provider', 'host'], registers, collect });
    this.slotPhase = new Gauge({ name: `${p}slot_phase`, help: 'The phase of each running slot: 1 for its current phase (one series per slot)', labelNames: ['slot', 'phase', 'provider', 'host'], registers, collect });
    this.expiryTimestamp = new Gauge({ name: `${p}token_expiry_timestamp_seconds`, help: "When each slot's access token expires (Unix seconds, from SlotExpiresAt)", labelNames: ['slot', 'provider', 'host'], registers, collect });
    this.secondsToExpiry = new Gauge({ name: `${p}token_expiry_seconds`, help: "Seconds until each slot's access token expires (negative: expired)", labelNames: ['slot', 'provider', 'host'], registers, collect });
    this.listingErrors = new Counter({ name: `${p}slot_listing_errors_total`, help: 'Scrapes whose listing of the slots from Temporal visibility failed (the last figures were served)', registers });
    this.slotsUnreadable = new Gauge({ name: `${p}slots_unreadable`, help: 'Running slot workflows left out of the slot gauges, by reason: search-attributes (undecodable), no-phase, unknown-phase (each logged once)', labelNames: ['reason'], registers, collect });
    this.refreshes = new Counter({ name: `${p}refreshes_total`, help: 'Refresh attempts that asked the token endpoint, by outcome: success, transient (retried), permanent (needs a login), error (configuration)', labelNames: ['provider', 'outcome'], registers });
    this.logins = new Counter({ name: `${p}logins_total`, help: 'Login outcomes seen by this worker: verified, or why a login attempt failed', labelNames: ['provider', 'outcome'], registers });
    this.codeAnswers = new Counter({ name: `${p}login_codes_total`, help: "The login CLI's answers to codes typed into it: succeeded, rejected, failed, hung, exited", labelNames: ['provider', 'answer'], registers });
    this.timeToPrompt = new Histogram({ name: `${p}login_time_to_prompt_seconds`, help: 'From starting a login (CLI or device flow) to the prompt an operator can act on', labelNames: ['provider'], buckets: [0.5, 1, 2, 5, 10, 20, 30, 60, 120], registers });
    this.timeToActive = new Histogram({ name: `${p}login_time_to_active_seconds`, help: 'From starting the login that succeeded to its credential verified', labelNames: ['provider'], buckets: [5, 15, 30, 60, 120, 300, 600, 1800, 3600], registers });
    this.operatorWait = new Histogram({ name: `${p}operator_wait_seconds`, help: 'From the prompt shown to the operator answering it (a code typed, a device approved)', labelNames: ['provider', 'interaction'], buckets: [10, 30, 60, 120, 300, 600, 900, 1800, 3600], registers });
    // Pools (when there are any): one listing and one status query per pool fill all of these.
    const collectPools = async (): Promise<void> => this.fillFromPools();
    const poolLabels = ['pool', 'provider'] as const;
    this.poolSlots = new Gauge({ name: `${p}pool_slots`, help: 'Slots of each pool by state: available (can be leased now), leased (holds as many leases as it may), cooling-down (rate-limited until its reset), out (not active, not answering, or an auth failure reported)', labelNames: ['pool', 'provider', 'state'], registers, collect: collectPools });
    this.poolLeases = new Gauge({ name: `${p}pool_leases`, help: 'Leases held in each pool now', labelNames: poolLabels, registers, collect: collectPools });
    this.poolLeasesGranted = new Counter({ name: `${p}pool_leases_granted_total`, help: "Leases each pool granted (the pool's own count, kept across continue-as-new)", labelNames: poolLabels, registers, collect: collectPools });
    this.poolLeasesRefused = new Counter({ name: `${p}pool_leases_refused_total`, help: 'Lease requests each pool refused for want of a slot (pool-exhausted) or because its slots could not be asked', labelNames: poolLabels, registers, collect: collectPools });
    this.poolCooldownSeconds = new Gauge({ name: `${p}pool_cooldown_seconds`, help: "Seconds until the last of each pool's cooling-down slots may be leased again (0: none cooling down)", labelNames: poolLabels, registers, collect: collectPools });
    this.poolListingErrors = new Counter({ name: `${p}pool_listing_errors_total`, help: 'Scrapes whose listing of the pools or one of their status queries failed (that pool is left out of the scrape)', registers });
    this.loginCli = new Gauge({ name: `${p}login_cli_info`, help: "Each provider's login CLI on this host: its version, the version the project was checked against, and status checked, other (a version not checked), missing or unreadable", labelNames: ['provider', 'version', 'checked_version', 'status'], registers });
    this.probes = new Counter({ name: `${p}probes_total`, help: 'Live probes of slot credentials by outcome: ok, unauthorized (401/403), rate-limited (429), transient (network, 5xx), error (could not probe), none (no probe)', labelNames: ['provider', 'outcome'], registers });
    this.providerPausedSeconds = new Gauge({
      name: `${p}provider_paused_seconds`,
      help: "Seconds this host still holds back each provider's token requests because the provider answered 429 or asked for time with Retry-After (0: not paused)",
      labelNames: ['provider'],
      registers,
      collect: async () => this.fillPauses(),
    });
    // Series exist from the start at 0: a counter first seen at 1 shows no increase() to alert on.
    for (const provider of providerNames()) {
      for (const outcome of REFRESH_OUTCOMES) this.refreshes.inc({ provider, outcome }, 0);
      this.logins.inc({ provider, outcome: 'verified' }, 0);
      this.logins.inc({ provider, outcome: 'login-host-busy' }, 0);
      for (const outcome of PROBE_OUTCOMES) this.probes.inc({ provider, outcome }, 0);
    }
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  /** The host's provider pauses (activities/provider-pause.ts), read at scrape time. */
  watchProviderPauses(pauses: { all(): Promise<Array<{ provider: string; until: number }>> }): void {
    this.pauses = pauses;
  }

  private async fillPauses(): Promise<void> {
    const now = this.now();
    const records = (await this.pauses?.all().catch(() => [])) ?? [];
    for (const provider of providerNames()) {
      const until = records.find((r) => r.provider === provider)?.until ?? 0;
      this.providerPausedSeconds.set({ provider }, Math.max(0, Math.ceil((until - now) / 1000)));
    }
  }

  /**
   * The slots as visibility shows them. Per-slot: a listing at most `slotListingMaxAgeMs` old,
   * redone in the background when older (the scrape answers with the last one meanwhile: a
   * listing of a whole fleet takes seconds); otherwise counts, at most every LISTING_TTL_MS.
   */
  private async slotListing(): Promise<SlotListing> {
    const perSlot = this.opts.perSlotSeries !== false;
    const maxAge = perSlot ? (this.opts.slotListingMaxAgeMs ?? DEFAULT_SLOT_LISTING_MAX_AGE_MS) : LISTING_TTL_MS;
    const last = this.listing;
    // A listing that took L is not redone before 5 L: the server spends at most a fifth of its time on it.
    if (last && this.now() - last.at < Math.max(maxAge, 5 * last.tookMs)) return last;
    if (!this.inFlight) {
      const next = (perSlot ? this.listSlots() : this.countSlots())
        .then((listing) => (this.listing = listing))
        .finally(() => (this.inFlight = undefined));
      // Counted once per failed reading, whoever waits for it.
      next.catch(() => this.listingErrors.inc());
      this.inFlight = next;
    }
    return perSlot && last ? last : this.inFlight;
  }

  /** The running slot workflows of this deployment (the queue names come from configuration, checked there). */
  private slotsQuery(): string {
    return `WorkflowType = 'slotWorkflow' AND ExecutionStatus = 'Running' AND TaskQueue = '${this.opts.taskQueue}'`;
  }

  /** Every running slot's row, from its search attributes: one page per 1000 slots. */
  private async listSlots(): Promise<SlotListing> {
    const started = this.now();
    const rows: SlotRow[] = [];
    const groups = new Map<string, SlotGroup>();
    const unreadable = new Map<UnreadableReason, number>();
    let seen = 0;
    for await (const wf of listExecutions(this.opts.client, this.slotsQuery())) {
      // A page of 1000 rows is a few hundred ms of decoding: a scrape answered meanwhile is not held up by it.
      if (++seen % 100 === 0) await new Promise((resolve) => setImmediate(resolve));
      const row = rowOf(wf);
      if ('reason' in row) {
        unreadable.set(row.reason, (unreadable.get(row.reason) ?? 0) + 1);
        this.logUnreadable(row);
        continue;
      }
      rows.push(row);
      const key = JSON.stringify([row.phase, row.provider, row.host]);
      const group = groups.get(key) ?? { phase: row.phase, provider: row.provider, host: row.host, slots: 0 };
      group.slots += 1;
      groups.set(key, group);
    }
    return { at: started, tookMs: this.now() - started, rows, groups: [...groups.values()], unreadable };
  }

  /**
   * The slots by phase and provider from COUNTs: no row leaves the server. One grouped count
   * per provider where the server groups by SlotPhase, else a count per provider and one per
   * phase of the providers that have slots. Slots of no known phase are counted, not named.
   */
  private async countSlots(): Promise<SlotListing> {
    const started = this.now();
    const { client } = this.opts;
    const base = this.slotsQuery();
    const groups: SlotGroup[] = [];
    let known = 0;
    for (const provider of providerNames()) {
      const ofProvider = `${base} AND ${SlotProviderKey.name} = '${provider}'`;
      let byPhase = this.groupBySupported === false ? undefined : await countGrouped(client, ofProvider, SlotPhaseKey.name);
      this.groupBySupported = byPhase !== undefined;
      if (!byPhase) {
        byPhase = new Map();
        if ((await countExecutions(client, ofProvider)) > 0) {
          const counts = await Promise.all(PHASES.map((phase) => countExecutions(client, `${ofProvider} AND ${SlotPhaseKey.name} = '${phase}'`)));
          PHASES.forEach((phase, i) => byPhase?.set(phase, counts[i] ?? 0));
        }
      }
      for (const [phase, slots] of byPhase) {
        if (!isPhase(phase) || slots === 0) continue;
        known += slots;
        // No host: a count per host would need the hosts, which only a listing names.
        groups.push({ phase, provider, host: '', slots });
      }
    }
    const total = await countExecutions(client, base);
    return { at: started, tookMs: this.now() - started, rows: [], groups, unreadable: new Map(total > known ? [['unknown-phase', total - known]] : []) };
  }

  /** Whether the server counts `GROUP BY SlotPhase` (asked once). */
  private groupBySupported: boolean | undefined;

  private logUnreadable(row: Unreadable): void {
    if (this.loggedUnreadable.has(row.workflowId)) return;
    if (this.loggedUnreadable.size >= MAX_LOGGED_UNREADABLE) this.loggedUnreadable.clear();
    this.loggedUnreadable.add(row.workflowId);
    this.opts.warn?.({ workflowId: row.workflowId, reason: row.reason, detail: row.detail }, 'a running slot workflow is left out of the slot metrics: its row in visibility cannot be read as a slot');
  }

  /** The listing the gauges were last filled from, and when: the five gauges of a scrape share one fill. */
  private filled: { listing: SlotListing; at: number } | undefined;

  private async fillFromListing(): Promise<void> {
    let listing: SlotListing;
    try {
      listing = await withTimeout(this.slotListing(), LISTING_TIMEOUT_MS);
    } catch (err) {
      // A failed reading was counted where it failed; a slow one is counted here.
      if (err === TIMED_OUT) this.listingErrors.inc();
      return;
    }
    const now = this.now();
    if (this.filled?.listing === listing && now - this.filled.at < 1000) return;
    this.filled = { listing, at: now };
    for (const g of [this.slots, this.slotPhase, this.expiryTimestamp, this.secondsToExpiry, this.slotsUnreadable]) g.reset();
    for (const reason of UNREADABLE_REASONS) this.slotsUnreadable.set({ reason }, listing.unreadable.get(reason) ?? 0);
    for (const { phase, provider, host, slots } of listing.groups) this.slots.set({ phase, provider, host }, slots);
    for (const { slot, phase, provider, host, expiresAt } of listing.rows) {
      this.slotPhase.set({ slot, phase, provider, host }, 1);
      if (expiresAt !== undefined) {
        this.expiryTimestamp.set({ slot, provider, host }, expiresAt / 1000);
        this.secondsToExpiry.set({ slot, provider, host }, Math.round((expiresAt - now) / 1000));
      }
    }
  }

  /** Starts the first reading of the slots now, so that the first scrape finds it (a fleet's listing takes seconds). */
  prime(): void {
    void withTimeout(this.slotListing(), LISTING_TIMEOUT_MS).catch(() => undefined);
  }

  /** The running pools and their status, at most every LISTING_TTL_MS. */
  private async poolRows(): Promise<PoolRow[]> {
    if (this.poolListing && this.now() - this.poolListing.at < LISTING_TTL_MS) return this.poolListing.rows;
    this.poolsInFlight ??= this.listPools().finally(() => (this.poolsInFlight = undefined));
    const rows = await this.poolsInFlight;
    this.poolListing = { at: this.now(), rows };
    return rows;
  }

  private async listPools(): Promise<PoolRow[]> {
    const { client, taskQueue } = this.opts;
    const ids: string[] = [];
    for await (const wf of listExecutions(client, `WorkflowType = 'poolWorkflow' AND ExecutionStatus = 'Running' AND TaskQueue = '${taskQueue}'`, { pageSize: MAX_POOLS })) {
      if (ids.length >= MAX_POOLS) break;
      ids.push(wf.workflowId);
    }
    const rows = await Promise.all(
      ids.map(async (workflowId) => {
        try {
          const status: unknown = await client.connection.withDeadline(this.now() + POOL_QUERY_TIMEOUT_MS, () => client.workflow.getHandle(workflowId).query(poolStatusQuery));
          return poolRowOf(status, this.now());
        } catch {
          return undefined;
        }
      }),
    );
    const answered = rows.filter((r): r is PoolRow => r !== undefined);
    if (answered.length < ids.length) this.poolListingErrors.inc();
    return answered;
  }

  private async fillFromPools(): Promise<void> {
    let rows: PoolRow[];
    try {
      rows = await withTimeout(this.poolRows(), LISTING_TIMEOUT_MS);
    } catch {
      this.poolListingErrors.inc();
      return;
    }
    for (const m of [this.poolSlots, this.poolLeases, this.poolLeasesGranted, this.poolLeasesRefused, this.poolCooldownSeconds]) m.reset();
    for (const row of rows) {
      const labels = { pool: row.pool, provider: row.provider };
      for (const [state, n] of Object.entries(row.slots)) this.poolSlots.set({ ...labels, state }, n);
      this.poolLeases.set(labels, row.leases);
      this.poolLeasesGranted.inc(labels, row.granted);
      this.poolLeasesRefused.inc(labels, row.refused);
      this.poolCooldownSeconds.set(labels, row.cooldownSeconds);
    }
  }

  /** For every worker's `interceptors.activity`: counts what the slot's activities observe. */
  readonly activityInterceptor: ActivityInterceptorsFactory = (ctx: Context) => ({ inbound: new ObservingInterceptor(this, ctx) });

  /** Called by the interceptor with each activity's input and how it ended. */
  observe(activityType: string, input: Record<string, unknown>, ended: { ok: Record<string, unknown> } | { failed: unknown }): void {
    const provider = providerLabel(input.provider);
    const now = this.now();
    const failureType = 'failed' in ended && ended.failed instanceof ApplicationFailure ? ended.failed.type ?? 'error' : 'failed' in ended ? 'error' : undefined;
    switch (activityType) {
      case 'refreshCredential': {
        if ('ok' in ended) {
          // A check that found the credential fresh asked nothing: not a refresh.
          if (ended.ok.kind === 'refreshed') this.refreshes.inc({ provider, outcome: 'success' });
        } else if (failureType === FailureType.refreshTransient || failureType === FailureType.providerRefusing) this.refreshes.inc({ provider, outcome: 'transient' });
        // A request the host held back for the provider's pause asked nothing.
        else if (failureType === FailureType.providerPaused) return;
        else if (PERMANENT_REFRESH_FAILURES.includes(failureType ?? '')) this.refreshes.inc({ provider, outcome: 'permanent' });
        else if (!isCancellation(ended)) this.refreshes.inc({ provider, outcome: 'error' });
        return;
      }
      case 'startLogin': {
        if ('ok' in ended) {
          const startedAt = typeof ended.ok.startedAt === 'number' ? ended.ok.startedAt : now;
          this.timeToPrompt.observe({ provider }, Math.max(0, now - startedAt) / 1000);
          if (ended.ok.kind === 'pty' && typeof input.loginId === 'string') this.rememberPrompt(input.loginId, now);
        } else if (!isCancellation(ended)) this.logins.inc({ provider, outcome: kebab(failureType ?? 'error') });
        return;
      }
      case 'submitLoginCode': {
        const loginId = typeof input.loginId === 'string' ? input.loginId : '';
        const shownAt = this.promptShownAt.get(loginId);
        this.promptShownAt.delete(loginId);
        const sessionProvider = this.sessionProviders.get(loginId) ?? provider;
        if (shownAt !== undefined) this.operatorWait.observe({ provider: sessionProvider, interaction: 'paste-code' }, Math.max(0, now - shownAt) / 1000);
        if ('ok' in ended && typeof ended.ok.kind === 'string') this.codeAnswers.inc({ provider: sessionProvider, answer: ended.ok.kind });
        return;
      }
      case 'closeLogin': {
        const loginId = typeof input.loginId === 'string' ? input.loginId : '';
        this.promptShownAt.delete(loginId);
        this.sessionProviders.delete(loginId);
        return;
      }
      case 'awaitDeviceApproval': {
        if ('ok' in ended) {
          const kind = typeof ended.ok.kind === 'string' ? ended.ok.kind : 'unknown';
          if (kind === 'approved' && typeof input.startedAt === 'number') {
            this.operatorWait.observe({ provider, interaction: 'device-approval' }, Math.max(0, now - input.startedAt) / 1000);
          } else if (kind !== 'approved') this.logins.inc({ provider, outcome: kind });
        } else if (!isCancellation(ended)) this.logins.inc({ provider, outcome: kebab(failureType ?? 'error') });
        return;
      }
      case 'verifyCredential': {
        if ('ok' in ended) {
          this.logins.inc({ provider, outcome: 'verified' });
          if (typeof input.notBefore === 'number') this.timeToActive.observe({ provider }, Math.max(0, now - input.notBefore) / 1000);
        } else if (!isCancellation(ended)) this.logins.inc({ provider, outcome: kebab(failureType ?? 'error') });
        return;
      }
      case 'probeCredential': {
        // A probe that did not run (host down, refused input) says nothing about the token: not counted.
        if ('ok' in ended && typeof ended.ok.outcome === 'string' && (PROBE_OUTCOMES as readonly string[]).includes(ended.ok.outcome)) this.probes.inc({ provider, outcome: ended.ok.outcome });
        return;
      }
      default:
        return;
    }
  }

  /** submitLoginCode's input names no provider: the session's start did. */
  private readonly sessionProviders = new Map<string, string>();

  private rememberPrompt(loginId: string, at: number): void {
    if (this.promptShownAt.size >= MAX_OPEN_PROMPTS) {
      const oldest = this.promptShownAt.keys().next().value;
      if (oldest !== undefined) {
        this.promptShownAt.delete(oldest);
        this.sessionProviders.delete(oldest);
      }
    }
    this.promptShownAt.set(loginId, at);
  }

  /** Remembers a PTY login's provider by its login id (the start activity knows it). */
  noteSession(loginId: string, provider: string): void {
    if (this.sessionProviders.size >= MAX_OPEN_PROMPTS) {
      const oldest = this.sessionProviders.keys().next().value;
      if (oldest !== undefined) this.sessionProviders.delete(oldest);
    }
    this.sessionProviders.set(loginId, provider);
  }
}

class ObservingInterceptor implements ActivityInboundCallsInterceptor {
  constructor(
    private readonly metrics: SlotMetrics,
    private readonly ctx: Context,
  ) {}

  async execute(input: Parameters<NonNullable<ActivityInboundCallsInterceptor['execute']>>[0], next: Parameters<NonNullable<ActivityInboundCallsInterceptor['execute']>>[1]): Promise<unknown> {
    const type = this.ctx.info.activityType;
    const arg = input.args[0];
    const fields = typeof arg === 'object' && arg !== null ? (arg as Record<string, unknown>) : {};
    if (type === 'startLogin' && typeof fields.loginId === 'string' && typeof fields.provider === 'string') this.metrics.noteSession(fields.loginId, providerLabel(fields.provider));
    try {
      const result = await next(input);
      this.metrics.observe(type, fields, { ok: typeof result === 'object' && result !== null ? (result as Record<string, unknown>) : {} });
      return result;
    } catch (err) {
      this.metrics.observe(type, fields, { failed: err });
      throw err;
    }
  }
}

/** `LoginCliMissing` → `login-cli-missing`: label values in Prometheus' usual style. */
const kebab = (type: string): string => type.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();

function isCancellation(ended: { failed: unknown }): boolean {
  const err = ended.failed as { name?: string } | undefined;
  return err?.name === 'CancelledFailure' || err?.name === 'AbortError';
}

/** A slot's row from its search attributes alone (no payload decoded), or why it cannot be one. */
function rowOf(wf: VisibleExecution): SlotRow | Unreadable {
  const sa = wf.searchAttributes;
  if (sa instanceof Error) return { workflowId: wf.workflowId, reason: 'search-attributes', detail: sa.message.slice(0, 200) };
  const phase = sa.get(SlotPhaseKey);
  if (phase === undefined) return { workflowId: wf.workflowId, reason: 'no-phase', detail: 'no SlotPhase' };
  if (!isPhase(phase)) return { workflowId: wf.workflowId, reason: 'unknown-phase', detail: `SlotPhase ${JSON.stringify(phase.slice(0, 40))}` };
  return {
    slot: sa.get(SlotIdKey) ?? wf.workflowId.replace(/^slot:/, ''),
    phase,
    provider: sa.get(SlotProviderKey) ?? 'unknown',
    host: sa.get(SlotHostKey) ?? 'unknown',
    expiresAt: sa.get(SlotExpiresAtKey)?.getTime(),
  };
}

type PoolRow = { pool: string; provider: string; slots: Record<(typeof POOL_SLOT_STATES)[number], number>; leases: number; granted: number; refused: number; cooldownSeconds: number };

/** The `state` label of pool_slots. */
const POOL_SLOT_STATES = ['available', 'leased', 'cooling-down', 'out'] as const;
/** Pools asked per scrape; a deployment has a handful. */
const MAX_POOLS = 500;
const POOL_QUERY_TIMEOUT_MS = 3000;

const count = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0);

/** A pool's status answer (another workflow's: checked field by field), reduced to what is exported. */
function poolRowOf(answer: unknown, now: number): PoolRow | undefined {
  const s = (typeof answer === 'object' && answer !== null ? answer : {}) as Partial<Record<keyof PoolStatus, unknown>>;
  if (typeof s.pool !== 'string' || typeof s.provider !== 'string' || !Array.isArray(s.slots)) return undefined;
  const slots = Object.fromEntries(POOL_SLOT_STATES.map((state) => [state, 0])) as PoolRow['slots'];
  let coolUntil = now;
  for (const slot of s.slots as Array<Record<string, unknown>>) {
    const cooling = typeof slot.coolUntil === 'number' && slot.coolUntil > now;
    if (cooling) coolUntil = Math.max(coolUntil, slot.coolUntil as number);
    if (slot.eligible === true) slots.available += 1;
    else if (cooling) slots['cooling-down'] += 1;
    else if (count(slot.leases) > 0) slots.leased += 1;
    else slots.out += 1;
  }
  return {
    pool: s.pool,
    provider: s.provider,
    slots,
    leases: Array.isArray(s.leases) ? s.leases.length : 0,
    granted: count(s.leasesGranted),
    refused: count(s.leasesRefused),
    cooldownSeconds: Math.round((coolUntil - now) / 1000),
  };
}

/** What withTimeout rejects with when the time ran out (not a failure of the listing itself). */
const TIMED_OUT = new Error('no answer in time');

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(TIMED_OUT), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export interface MetricsServer {
  /** `http://host:port/metrics` */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Serves `/metrics`: ours, followed by the Temporal SDK core's (which the core serves
 * on `coreMetricsUrl`, loopback only), so one scrape target carries both.
 */
export async function startMetricsServer(opts: { metrics: SlotMetrics; host: string; port: number; coreMetricsUrl?: string }): Promise<MetricsServer> {
  opts.metrics.prime();
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(path === '/metrics' ? 405 : 404, { 'content-type': 'text/plain' }).end(path === '/metrics' ? 'only GET\n' : 'metrics are at /metrics\n');
      return;
    }
    void (async () => {
      try {
        const ours = await opts.metrics.registry.metrics();
        const core = opts.coreMetricsUrl ? await fetchCore(opts.coreMetricsUrl) : '';
        res.writeHead(200, { 'content-type': opts.metrics.registry.contentType }).end(`${ours}\n${core}`);
      } catch (err) {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${(err as Error).message}\n`);
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const shown = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  return {
    url: `http://${shown}:${port}/metrics`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The core's exposition text; when it cannot be had, a comment and an `up`-style gauge say so. */
async function fetchCore(url: string): Promise<string> {
  const up = `# HELP ${METRIC_PREFIX}sdk_core_metrics_up 1 when the Temporal SDK core's metrics were included in this scrape\n# TYPE ${METRIC_PREFIX}sdk_core_metrics_up gauge\n`;
  try {
    const answer = await fetch(url, { signal: AbortSignal.timeout(3000) });
    if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
    return `${up}${METRIC_PREFIX}sdk_core_metrics_up 1\n${await answer.text()}`;
  } catch {
    return `${up}${METRIC_PREFIX}sdk_core_metrics_up 0\n`;
  }
}

/** `npm start`'s metrics port when METRICS_PORT is unset (the OpenTelemetry Prometheus exporter's usual port). */
export const DEFAULT_METRICS_PORT = 9464;

export interface MetricsPlan {
  readonly host: string;
  readonly port: number;
  /** Where the SDK core binds (loopback only: /metrics includes what it serves). */
  readonly coreBindAddress: string;
  readonly coreUrl: string;
}

/** Where metrics are served, or undefined when off (METRICS_PORT unset without a default, or `off`). */
export function metricsPlan(metrics: { port: number | 'off' | undefined; host: string; temporalPort: number | undefined }, defaultPort?: number): MetricsPlan | undefined {
  const port = metrics.port ?? defaultPort;
  if (port === undefined || port === 'off') return undefined;
  const corePort = metrics.temporalPort ?? (port < 65535 ? port + 1 : port - 1);
  return { host: metrics.host, port, coreBindAddress: `127.0.0.1:${corePort}`, coreUrl: `http://127.0.0.1:${corePort}/metrics` };
}
