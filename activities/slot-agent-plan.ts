// The agent plan of a slot, answered by its host for a pool's lease: from the provider and
// configuration the host itself recorded for the slot (never from the asker's input), its
// slot home and the host's token service. Nothing in it is secret; nothing is written.
import { ApplicationFailure, Context } from '@temporalio/activity';
import { FailureType } from '../common/failures';
import { slotIdProblem, slotWorkflowId } from '../common/slot';
import { agentPlan, type AgentPlan } from '../providers/agent-plan';
import { openRecordedSlot } from './open-slot';

export type SlotAgentPlanResult = { readonly plan: AgentPlan } | { readonly problem: string };

export function createAgentPlanActivities(deps: { readonly slotsDir: string; readonly agentTokenServiceUrl?: string }) {
  /** Asked by the slot's own workflow or by a pool (`pool:<name>`) leasing it; refused for anyone else. */
  async function slotAgentPlan(input: { slotId: string }): Promise<SlotAgentPlanResult> {
    const workflowId = Context.current().info.workflowExecution?.workflowId ?? '';
    const problem = slotIdProblem(input?.slotId);
    if (problem) throw ApplicationFailure.nonRetryable(`refusing an agent plan request: ${problem}`, FailureType.slotRequestRefused);
    if (!workflowId.startsWith('pool:') && workflowId !== slotWorkflowId(input.slotId)) {
      throw ApplicationFailure.nonRetryable(`refusing the agent plan of slot ${input.slotId} to workflow ${JSON.stringify(workflowId.slice(0, 200))}: only its slot workflow or a pool may ask`, FailureType.slotRequestRefused);
    }
    const opening = await openRecordedSlot(deps.slotsDir, input.slotId);
    if (!opening.ok) {
      return { problem: opening.kind === 'no-record' ? `this host has no record of slot ${input.slotId} (it was never set up here, or its files were removed)` : opening.problem };
    }
    const { provider } = opening.slot;
    if (!provider.agent.plan) return { problem: `${provider.displayName} has no agent plan` };
    return { plan: agentPlan(provider, opening.slot, deps.agentTokenServiceUrl ? { tokenServiceUrl: deps.agentTokenServiceUrl } : {}) };
  }
  return { slotAgentPlan };
}
