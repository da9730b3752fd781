// `provider-incident:<provider>:<shared queue>`: counts the slots of one provider that fail permanently.
// Past the threshold within the window it is an incident: one notice for all of them, the
// slots keep their own notices back, and their automatic relogins can be held by an
// operator. It ends after a quiet window (or when an operator says so), and tells its slots.
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import {
  endIncidentSignal,
  holdReloginsSignal,
  INCIDENT_HANDLER_DESCRIPTIONS,
  incidentSignal,
  incidentStatusQuery,
  reloginAllCommand,
  releaseReloginsSignal,
  reportFailureUpdate,
  type IncidentSettings,
  type IncidentState,
  type IncidentStatus,
  type PermanentFailureReport,
} from '../common/incidents';
import { HOST_NAME_PATTERN, slotIdProblem, slotWorkflowId } from '../common/slot';
import { Notices } from './notices';
import { clause } from './text';

interface Failed {
  readonly slotId: string;
  readonly host: string;
  readonly at: number;
  readonly failure: string;
  readonly reason: string;
}

export interface IncidentInput {
  readonly provider: string;
  readonly settings: IncidentSettings;
  readonly carried?: {
    readonly failures: readonly Failed[];
    readonly open: boolean;
    readonly held: boolean;
    readonly openedAt?: number;
    readonly lastAt: number;
  };
}

const NOTICE_SETTLE_MS = 60_000;
/** A window in words: "10 minutes", "1 minute", "4 seconds". */
const span = (ms: number): string => {
  const n = ms >= 60_000 ? Math.round(ms / 60_000) : Math.round(ms / 1000);
  return `${n} ${ms >= 60_000 ? 'minute' : 'second'}${n === 1 ? '' : 's'}`;
};
const MAX_REASON = 300;

/**
 * One provider's incident. Left whole (about 150 lines) on purpose: its handlers (reports,
 * release, status) and its loop share a handful of local variables (the window of reports,
 * the open incident, the hold), and read top to bottom as one state machine; split into
 * installers they would pass that state around as a bag of mutable fields.
 */
export async function providerIncidentWorkflow(input: IncidentInput): Promise<void> {
  const { provider } = input;
  const settings: IncidentSettings = {
    threshold: Math.max(2, Math.floor(input.settings.threshold)),
    windowMs: Math.max(1000, input.settings.windowMs),
    holdRelogins: input.settings.holdRelogins === true,
  };
  let failures: Failed[] = [...(input.carried?.failures ?? [])];
  let open = input.carried?.open ?? false;
  let held = input.carried?.held ?? false;
  let openedAt = input.carried?.openedAt;
  let lastAt = input.carried?.lastAt ?? Date.now();
  let endRequested = false;
  let closing = false;
  const notices = new Notices();
  let telling = 0;

  /** The failure most of the incident's slots share, in words. */
  const common = (): { failure: string; reason: string } => {
    const counts = new Map<string, { n: number; reason: string }>();
    for (const f of failures) counts.set(f.failure, { n: (counts.get(f.failure)?.n ?? 0) + 1, reason: f.reason });
    const [failure, top] = [...counts.entries()].sort((a, b) => b[1].n - a[1].n)[0] ?? ['unknown', { n: 0, reason: 'unknown' }];
    return { failure, reason: top.reason };
  };
  const state = (): IncidentState => ({ open, held, provider, slots: new Set(failures.map((f) => f.slotId)).size, failure: common().reason });
  /** Tells the incident's slots its state (a slot that ended meanwhile is no matter). */
  const tell = (except?: string): void => {
    const now = state();
    for (const slotId of new Set(failures.map((f) => f.slotId))) {
      if (slotId === except) continue;
      telling += 1;
      void getExternalWorkflowHandle(slotWorkflowId(slotId))
        .signal(incidentSignal, now)
        .catch(() => undefined)
        .finally(() => void (telling -= 1));
    }
  };

  setHandler(
    reportFailureUpdate,
    (report: PermanentFailureReport): IncidentState => {
      const now = Date.now();
      // Outside an incident only the window counts; inside, every slot since it opened is part of it.
      if (!open) failures = failures.filter((f) => f.at > now - settings.windowMs);
      if (closing) return { ...state(), open: false, held: false };
      failures = failures.filter((f) => f.slotId !== report.slotId);
      failures.push({ slotId: report.slotId, host: report.host, at: now, failure: report.failure, reason: report.reason.slice(0, MAX_REASON) });
      lastAt = now;
      if (!open && failures.length >= settings.threshold) {
        open = true;
        openedAt = now;
        held = settings.holdRelogins;
        const { reason } = common();
        const hosts = [...new Set(failures.map((f) => f.host))];
        notices.emit('provider-incident', {
          provider,
          reason:
            `${failures.length} ${provider} slots failed permanently within ${span(settings.windowMs)} ` +
            `(on ${hosts.length === 1 ? `host ${hosts[0]}` : `${hosts.length} hosts`}); most with: ${clause(reason)}. ` +
            (held
              ? `Their automatic relogins are held: fix the cause, then release them with \`slotctl incident release ${provider}\`.`
              : `Their automatic relogins start at the provider's pace on each host; hold them with \`slotctl incident hold ${provider}\`.`) +
            ` Slots that fail meanwhile join this incident without a notice of their own.`,
          action: { command: reloginAllCommand(provider) },
        });
        // The slots that failed before the threshold keep their later notices back too.
        tell(report.slotId);
      }
      return state();
    },
    {
      validator: (report: PermanentFailureReport) => {
        if (typeof report !== 'object' || report === null) throw new TypeError('a report must be an object');
        const idProblem = slotIdProblem(report.slotId);
        if (idProblem) throw new TypeError(idProblem);
        if (report.provider !== provider) throw new TypeError(`this incident workflow counts ${provider} slots, not ${String(report.provider)}`);
        if (typeof report.host !== 'string' || !HOST_NAME_PATTERN.test(report.host)) throw new TypeError('host must be a host name');
        if (typeof report.failure !== 'string' || !/^[A-Za-z]{1,64}$/.test(report.failure)) throw new TypeError('failure must be a failure type name');
        if (typeof report.reason !== 'string') throw new TypeError('reason must be a string');
      },
      description: INCIDENT_HANDLER_DESCRIPTIONS.reportPermanentFailure,
    },
  );
  setHandler(
    holdReloginsSignal,
    () => {
      if (held || !open) return;
      held = true;
      tell();
    },
    { description: INCIDENT_HANDLER_DESCRIPTIONS.holdRelogins },
  );
  setHandler(
    releaseReloginsSignal,
    () => {
      if (!held) return;
      held = false;
      tell();
    },
    { description: INCIDENT_HANDLER_DESCRIPTIONS.releaseRelogins },
  );
  setHandler(endIncidentSignal, () => void (endRequested = true), { description: INCIDENT_HANDLER_DESCRIPTIONS.endIncident });
  setHandler(
    incidentStatusQuery,
    (): IncidentStatus => ({
      provider,
      open,
      held,
      ...(openedAt !== undefined ? { openedAt } : {}),
      slots: failures.map(({ slotId, host, at, failure }) => ({ slotId, host, at, failure })),
      settings,
    }),
    { description: INCIDENT_HANDLER_DESCRIPTIONS.incidentStatus },
  );

  for (;;) {
    const seen = lastAt;
    const heldBefore = held;
    // Quiet for a whole window since the last failure: the incident (or the count) is over.
    const woke = await condition(() => endRequested || lastAt !== seen || held !== heldBefore, Math.max(lastAt + settings.windowMs - Date.now(), 0));
    if (endRequested) break;
    if (!woke && !held) break;
    if (!woke && held) {
      // Held relogins wait for a person: the incident lasts until they are released (or it is ended).
      await condition(() => !held || endRequested);
      if (endRequested) break;
      lastAt = Date.now();
    }
    if (workflowInfo().continueAsNewSuggested) {
      await condition(allHandlersFinished);
      await condition(() => telling === 0, NOTICE_SETTLE_MS);
      await notices.settle(NOTICE_SETTLE_MS);
      await continueAsNew<typeof providerIncidentWorkflow>({ provider, settings, carried: { failures, open, held, ...(openedAt !== undefined ? { openedAt } : {}), lastAt } });
    }
  }
  closing = true;
  if (open) {
    const count = new Set(failures.map((f) => f.slotId)).size;
    open = false;
    held = false;
    tell();
    notices.emit('provider-incident-ended', {
      provider,
      reason: `the ${provider} incident is over (${count} slots, ${endRequested ? 'ended by an operator' : `no slot failed for ${span(settings.windowMs)}`}); each slot sends its own notices again.`,
      action: { command: `slotctl incident status ${provider}` },
    });
  }
  await condition(allHandlersFinished);
  await condition(() => telling === 0, NOTICE_SETTLE_MS);
  await notices.settle(NOTICE_SETTLE_MS);
}
