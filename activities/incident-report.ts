// A slot that failed permanently reports it to its provider's incident workflow and learns
// whether it is part of an incident (update-with-start: the first failure starts the
// workflow). Host-free: it runs on the shared queue with the worker's client.
import { Context } from '@temporalio/activity';
import { WithStartWorkflowOperation } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { DEFAULT_INCIDENT_SETTINGS, incidentWorkflowId, reportFailureUpdate, type IncidentSettings, type IncidentState, type PermanentFailureReport } from '../common/incidents';
import { FailureType } from '../common/failures';
import { slotIdProblem, slotWorkflowId } from '../common/slot';

export interface IncidentReportDeps {
  /** When failing slots make an incident (INCIDENT_*), given to the incident workflow this process starts. */
  readonly incidents?: IncidentSettings;
}

const PROVIDER_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

export function createIncidentReportActivities(deps: IncidentReportDeps) {
  async function reportPermanentFailure(report: PermanentFailureReport): Promise<IncidentState> {
    const ctx = Context.current();
    const refuse = (problem: string): never => {
      throw ApplicationFailure.nonRetryable(`a permanent failure report was refused: ${problem}`, FailureType.slotRequestRefused);
    };
    if (typeof report !== 'object' || report === null) refuse('it is not an object');
    const idProblem = slotIdProblem(report.slotId);
    if (idProblem) refuse(idProblem);
    // Only the slot's own workflow speaks for it: another workflow cannot put a slot into an incident.
    if (ctx.info.workflowExecution?.workflowId !== slotWorkflowId(report.slotId)) refuse(`it did not come from the workflow ${slotWorkflowId(report.slotId)}`);
    if (typeof report.provider !== 'string' || !PROVIDER_NAME.test(report.provider)) refuse('the provider is not a provider name');
    const workflowId = incidentWorkflowId(report.provider, ctx.info.taskQueue);
    return ctx.client.workflow.executeUpdateWithStart(reportFailureUpdate, {
      args: [report],
      startWorkflowOperation: new WithStartWorkflowOperation('providerIncidentWorkflow', {
        workflowId,
        // The shared queue: this activity runs there, beside the workflows.
        taskQueue: ctx.info.taskQueue,
        args: [{ provider: report.provider, settings: deps.incidents ?? DEFAULT_INCIDENT_SETTINGS }],
        workflowIdConflictPolicy: 'USE_EXISTING',
      }),
    });
  }
  return { reportPermanentFailure };
}
