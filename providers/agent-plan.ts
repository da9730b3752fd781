// The agent provision plan: what a runtime (a shell, a container, a pod) needs to run
// an agent on a slot, from the provider. Nothing in it is secret: paths, variable
// names, placeholders, routes; the tokens stay in the slot's host files.
import { formatEnvFile } from '../common/env-file';
import { EnvFileError } from '../common/failures';
import { AGENT_DIR, hostAgentDir } from './agent-dir';
import type { AgentEgressRoute, Provider, SlotPaths } from './provider';

export interface AgentMount {
  /** On the slot's host. */
  readonly hostPath: string;
  /** Where the agent sees it (the paths in `env` are under it). */
  readonly agentPath: string;
  /** Writable: the CLIs keep their own state (sessions, settings) beside the token files. */
  readonly readOnly: boolean;
  readonly holds: string;
}

export interface AgentPlan {
  readonly slotId: string;
  readonly provider: string;
  readonly mechanism: string;
  readonly env: Readonly<Record<string, string>>;
  readonly placeholders: readonly string[];
  readonly hiddenEnv: readonly string[];
  readonly egress: readonly AgentEgressRoute[];
  /** Mount these and nothing else of the slot: the slot home holds the refresh token. */
  readonly mounts: readonly AgentMount[];
  /** The token service URL the plan names, when the worker runs one. */
  readonly tokenServiceUrl?: string;
  /** Something the runtime must know before relying on the plan (no token service, …). */
  readonly warnings: readonly string[];
}

export interface AgentPlanOptions {
  /** Where the agent directory is mounted in the agent's filesystem. @default its host path */
  readonly mountAt?: string;
  /** The worker's token service (`http://127.0.0.1:7311`); undefined: none runs. */
  readonly tokenServiceUrl?: string;
}

export function agentPlan(provider: Provider, slot: SlotPaths, options: AgentPlanOptions = {}): AgentPlan {
  const hostPath = hostAgentDir(slot);
  const agentDir = (options.mountAt ?? hostPath).replace(/\/+$/, '') || '/';
  const tokenServiceUrl = options.tokenServiceUrl ? `${options.tokenServiceUrl.replace(/\/+$/, '')}/slots/${slot.slotId}` : undefined;
  const plan = provider.agent.plan;
  if (!plan) throw new RangeError(`${provider.displayName} has no agent plan`);
  const body = plan({ agentDir, ...(tokenServiceUrl ? { tokenServiceUrl } : {}) });
  const warnings = body.needsTokenService && !tokenServiceUrl
    ? [`no agent token service is configured: a ${provider.displayName} agent keeps working only as long as it re-reads its files, and its own refresh fails (set AGENT_TOKEN_SERVICE on the worker)`]
    : [];
  return {
    slotId: slot.slotId,
    provider: provider.name,
    mechanism: body.mechanism,
    env: body.env,
    placeholders: body.placeholders,
    hiddenEnv: body.hiddenEnv,
    egress: body.egress,
    mounts: [{ hostPath, agentPath: agentDir, readOnly: false, holds: `the agent directory (${AGENT_DIR}/ of the slot home): access tokens and the agent secret, never the refresh token` }],
    ...(tokenServiceUrl ? { tokenServiceUrl } : {}),
    warnings,
  };
}

/** The plan's env as `KEY=value` lines (sh, systemd and `docker --env-file` read them alike). */
export function agentPlanEnvFile(plan: AgentPlan): string {
  try {
    return formatEnvFile(`Agent plan of slot ${plan.slotId} (${plan.provider}); no secrets: ${plan.placeholders.join(', ') || 'nothing'} is a placeholder.`, plan.env);
  } catch (err) {
    if (err instanceof EnvFileError) throw new RangeError(`the plan's env cannot be written to an env file: ${err.message}`);
    throw err;
  }
}
