// `slotctl incident …`: see a provider's incident, hold or release its automatic relogins,
// end it. Each is a signal or query on `provider-incident:<provider>:<queue>`, the same the Web UI sends.
import type { Command } from 'commander';
import { WorkflowNotFoundError, type SignalDefinition } from '@temporalio/common';
import { SlotInputError } from '../common/failures';
import { endIncidentSignal, holdReloginsSignal, incidentStatusQuery, incidentWorkflowId, releaseReloginsSignal, type IncidentStatus } from '../common/incidents';
import { providerNames } from '../providers';
import type { SlotClient } from '../client/slot-client';
import { selectSlots, sendToEach } from './bulk';
import { jsonOption, when, type CommandContext, type Output } from './output';

function incidentOutput(s: IncidentStatus): Output {
  const head = s.open
    ? `incident  ${s.provider}: open since ${when(s.openedAt)}; automatic relogins ${s.held ? `HELD (release: slotctl incident release ${s.provider})` : 'start at the pace of each host'}`
    : `incident  ${s.provider}: none open (${s.slots.length} of ${s.settings.threshold} failures within ${Math.round(s.settings.windowMs / 60_000)} minutes)`;
  return { text: [head, ...s.slots.map((x) => `  ${x.slotId}  ${x.host}  ${x.failure}  ${when(x.at)}`)].join('\n'), json: s };
}

const noIncidentOutput = (provider: string): Output => ({
  text: `incident  ${provider}: none (no ${provider} slot failed permanently lately)`,
  json: { provider, open: false, held: false, slots: [] },
});

/** Adds `incident` to slotctl's program. */
export function addIncidentCommands(program: Command, ctx: CommandContext): void {
  const json = jsonOption;
  const checked = (provider: string): string => {
    if (!providerNames().includes(provider)) throw new SlotInputError(`unknown provider ${JSON.stringify(provider)} (known: ${providerNames().join(', ')})`);
    return provider;
  };
  const incident = program.command('incident').description("a provider's incident: many of its slots failing permanently at once, one notice, relogins an operator can hold");

  incident
    .command('status <provider>')
    .description('whether an incident is open, whether its relogins are held, and which slots failed')
    .addOption(json())
    .action(
      ctx.act(async (provider: string) => {
        checked(provider); // a misspelled provider is bad input, whether or not the server answers
        const slots = await ctx.connect();
        try {
          return incidentOutput(await slots.client.workflow.getHandle(incidentWorkflowId(provider, slots.taskQueue)).query(incidentStatusQuery));
        } catch (err) {
          if (!(err instanceof WorkflowNotFoundError)) throw err;
          return noIncidentOutput(provider);
        }
      }),
    );

  /** `over`: when no incident workflow runs, tell the slots it would have told (release and end). */
  const signalCommand = (name: string, description: string, signal: SignalDefinition<[], string>, done: (provider: string) => string, over: boolean): void => {
    incident
      .command(`${name} <provider>`)
      .description(description)
      .addOption(json())
      .action(
        ctx.act(async (provider: string) => {
          checked(provider);
          const slots = await ctx.connect();
          try {
            await slots.client.workflow.getHandle(incidentWorkflowId(provider, slots.taskQueue)).signal(signal);
          } catch (err) {
            if (!(err instanceof WorkflowNotFoundError)) throw err;
            const told = over ? await tellIncidentOver(slots, provider) : undefined;
            if (!told) throw new SlotInputError(`no ${provider} incident is open (see: slotctl incident status ${provider})`);
            const message = `no ${provider} incident is running (it ended or was terminated); ${told.told} ${provider} slot(s) in needs-relogin were told it is over: held relogins start, each slot sends its own notices again${told.failed.length > 0 ? `; not told: ${told.failed.join(', ')}` : ''}`;
            return { text: message, json: { ok: told.failed.length === 0, provider, message, told: told.told, failed: told.failed }, outcome: told.failed.length > 0 ? 'failed' : 'ok' };
          }
          const message = done(provider);
          return { text: message, json: { ok: true, provider, message } };
        }),
      );
  };
  signalCommand('hold', "hold the automatic relogins of the incident's slots that have not started", holdReloginsSignal, (p) => `the ${p} incident's automatic relogins are held; release them with: slotctl incident release ${p}`, false);
  signalCommand('release', 'let the held relogins start (at the provider pace of each host)', releaseReloginsSignal, (p) => `the ${p} incident's relogins are released`, true);
  signalCommand('end', 'end the incident now: each slot sends its own notices again', endIncidentSignal, (p) => `the ${p} incident is ended`, true);
}

/**
 * The incident workflow is gone (anyone in the namespace may terminate it) while slots may
 * still wait for its release: each running slot of the provider in `needs-relogin` is told
 * what the workflow says when it ends. Undefined when there is no such slot.
 */
async function tellIncidentOver(slots: SlotClient, provider: string): Promise<{ told: number; failed: string[] } | undefined> {
  const waiting = await selectSlots(slots, `SlotProvider = '${provider}' AND SlotPhase = 'needs-relogin'`);
  if (waiting.length === 0) return undefined;
  const results = await sendToEach(waiting, (slotId) => slots.incidentOver(slotId, provider));
  const failed = results.filter((r) => r.outcome === 'failed').map((r) => r.slotId);
  return { told: waiting.length - failed.length, failed };
}
