// `slotctl incident …`: see a provider's incident, hold or release its automatic relogins,
// end it. Each is a signal or query on `provider-incident:<provider>:<queue>`, the same the Web UI sends.
import { Option, type Command } from 'commander';
import { WorkflowNotFoundError, type SignalDefinition } from '@temporalio/common';
import { SlotInputError } from '../common/failures';
import { endIncidentSignal, holdReloginsSignal, incidentStatusQuery, incidentWorkflowId, releaseReloginsSignal, type IncidentStatus } from '../common/incidents';
import { providerNames } from '../providers';
import type { SlotClient } from '../client/slot-client';

type IncidentView = { kind: 'status'; status: IncidentStatus } | { kind: 'none'; provider: string } | { kind: 'done'; provider: string; message: string };

const when = (ms: number | undefined): string => (ms === undefined ? '—' : new Date(ms).toISOString());

function human(view: IncidentView): string {
  switch (view.kind) {
    case 'status': {
      const s = view.status;
      const head = s.open
        ? `incident  ${s.provider}: open since ${when(s.openedAt)}; automatic relogins ${s.held ? `HELD (release: slotctl incident release ${s.provider})` : 'start at the pace of each host'}`
        : `incident  ${s.provider}: none open (${s.slots.length} of ${s.settings.threshold} failures within ${Math.round(s.settings.windowMs / 60_000)} minutes)`;
      return [head, ...s.slots.map((x) => `  ${x.slotId}  ${x.host}  ${x.failure}  ${when(x.at)}`)].join('\n');
    }
    case 'none':
      return `incident  ${view.provider}: none (no ${view.provider} slot failed permanently lately)`;
    case 'done':
      return view.message;
  }
}

/** Adds `incident` to slotctl's program. */
export function addIncidentCommands(program: Command, ctx: { connect: () => Promise<SlotClient>; out: (text: string) => void }): void {
  let asJson = false;
  const show = (view: IncidentView): void =>
    ctx.out(asJson ? JSON.stringify(view.kind === 'status' ? view.status : view.kind === 'none' ? { provider: view.provider, open: false, held: false, slots: [] } : { ok: true, provider: view.provider, message: view.message }, null, 2) : human(view));
  const json = (): Option => new Option('--json', 'print exactly one JSON document on stdout');
  const checked = (provider: string): string => {
    if (!providerNames().includes(provider)) throw new SlotInputError(`unknown provider ${JSON.stringify(provider)} (known: ${providerNames().join(', ')})`);
    return provider;
  };
  const incident = program.command('incident').description("a provider's incident: many of its slots failing permanently at once, one notice, relogins an operator can hold");

  incident
    .command('status <provider>')
    .description('whether an incident is open, whether its relogins are held, and which slots failed')
    .addOption(json())
    .action(async (provider: string, opts: { json?: boolean }) => {
      asJson = Boolean(opts.json);
      const slots = await ctx.connect();
      try {
        show({ kind: 'status', status: await slots.client.workflow.getHandle(incidentWorkflowId(checked(provider), slots.taskQueue)).query(incidentStatusQuery) });
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
        show({ kind: 'none', provider });
      }
    });

  const signalCommand = (name: string, description: string, signal: SignalDefinition<[], string>, done: (provider: string) => string): void => {
    incident
      .command(`${name} <provider>`)
      .description(description)
      .addOption(json())
      .action(async (provider: string, opts: { json?: boolean }) => {
        asJson = Boolean(opts.json);
        const slots = await ctx.connect();
        try {
          await slots.client.workflow.getHandle(incidentWorkflowId(checked(provider), slots.taskQueue)).signal(signal);
        } catch (err) {
          if (err instanceof WorkflowNotFoundError) throw new SlotInputError(`no ${provider} incident is open (see: slotctl incident status ${provider})`);
          throw err;
        }
        show({ kind: 'done', provider, message: done(provider) });
      });
  };
  signalCommand('hold', "hold the automatic relogins of the incident's slots that have not started", holdReloginsSignal, (p) => `the ${p} incident's automatic relogins are held; release them with: slotctl incident release ${p}`);
  signalCommand('release', 'let the held relogins start (at the provider pace of each host)', releaseReloginsSignal, (p) => `the ${p} incident's relogins are released`);
  signalCommand('end', 'end the incident now: each slot sends its own notices again', endIncidentSignal, (p) => `the ${p} incident is ended`);
}
