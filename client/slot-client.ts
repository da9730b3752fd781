// The typed client API for slots: what slotctl uses, and what other services
// import to start and watch slots themselves. It never handles a token.
import { Client, Connection, type ConnectionOptions, type WorkflowClientInterceptor, WorkflowExecutionAlreadyStartedError, WorkflowUpdateFailedError } from '@temporalio/client';
import { fromPayloadsAtIndex, WorkflowNotFoundError, type DataConverter, type Payload, type TypedSearchAttributes } from '@temporalio/common';
import {
  cancelLoginSignal,
  codeProblem,
  probeNowUpdate,
  refreshNowSignal,
  reloginSignal,
  retireSignal,
  statusQuery,
  submitCodeUpdate,
  type RetireInput,
  type SlotStatus,
  type SubmitCodeResult,
} from '../common/messages';
import { SlotHostKey, SlotIdKey, SlotPhaseKey, SlotProviderKey, SlotPromptKey } from '../common/search-attributes';
import { Phase, SlotId } from '../common/schemas';
import { SHARED_TASK_QUEUE, slotWorkflowId, type Phase as PhaseName } from '../common/slot';
import { getProvider, parseProviderConfig, providerNames } from '../providers';
import { agentPlan, type AgentPlan, type AgentPlanOptions } from '../providers/agent-plan';
import type { Provider } from '../providers/provider';
import { join } from 'node:path';
import { CodeRejectedError, FailureType, ProbeRefusedError, ProviderConfigError, SlotExistsError, SlotInputError, SlotNotFoundError, TemporalTransportError, UnknownProviderError } from '../common/failures';
import { explainTlsFailure } from './tls-handshake';
import { decodeSearchAttributes, listExecutions } from './visibility';
import type { SlotInput } from '../common/slot-input';
import { moveInputProblem, moveUpdate, type MoveState } from '../common/backup';
import { MoveRefusedError } from '../common/failures';
import { staleStatus } from './stale-status';
import type { LastProbe } from '../common/probe';
import { incidentSignal } from '../common/incidents';

export { CodeRejectedError, SlotExistsError, SlotInputError, SlotNotFoundError };
export { ProbeRefusedError };

export interface ProvisionOptions {
  readonly slotId: string;
  readonly provider: string;
  /** The provider's configuration for this slot (`oidc-device`: issuer or endpoints, clientId, scopes, tokens); checked here. */
  readonly providerConfig?: unknown;
  /** The host whose worker holds the slot (its `SLOT_HOST`). */
  readonly host: string;
  readonly login?: SlotInput['login'];
  /** Use the credential already in the slot instead of logging in. */
  readonly adoptExisting?: boolean;
  /** Further slot options (refresh schedule, policies); see SlotInput. */
  readonly options?: Omit<SlotInput, 'slotId' | 'provider' | 'providerConfig' | 'host' | 'login' | 'adoptExisting' | 'carried'>;
}

/** One row of `list`: read from search attributes, without waking each slot. */
export interface SlotSummary {
  readonly slotId: string;
  readonly provider: string;
  readonly host: string;
  readonly phase: PhaseName | 'unknown';
  readonly prompt?: string;
  readonly running: boolean;
}

/** How a slot workflow is started (by `provision` and by `slotctl migrate`): its id, input, summary and first search attributes. */
export function slotStartOptions(input: SlotInput, taskQueue: string) {
  return {
    workflowId: slotWorkflowId(input.slotId),
    taskQueue,
    args: [input] as [SlotInput],
    // The Web UI's list and page show it; the live state is in the current details and status.
    staticSummary: `Slot ${input.slotId}: ${input.provider} login on host ${input.host}`,
    typedSearchAttributes: [
      { key: SlotIdKey, value: input.slotId },
      { key: SlotProviderKey, value: input.provider },
      { key: SlotHostKey, value: input.host },
      { key: SlotPhaseKey, value: 'logging-in' as const },
    ],
  };
}

export function parseSlotId(value: string): string {
  const parsed = SlotId.safeParse(value);
  if (!parsed.success) throw new SlotInputError(`invalid slot id ${JSON.stringify(value)}: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

export class SlotClient {
  constructor(
    readonly client: Client,
    /** Queue of the slot workflows. @default SHARED_TASK_QUEUE */
    readonly taskQueue: string = SHARED_TASK_QUEUE,
  ) {}

  /** `tls` and `apiKey` as `temporalConnectionOptions(config)` gives them (host/config.ts). */
  static async connect(opts: {
    address: string;
    namespace?: string;
    taskQueue?: string;
    dataConverter?: DataConverter;
    tls?: ConnectionOptions['tls'];
    apiKey?: string;
    /** Client interceptors, e.g. tracing's (host/tracing.ts): the trace starts here. */
    interceptors?: WorkflowClientInterceptor[];
  }): Promise<SlotClient> {
    let connection: Connection;
    try {
      connection = await Connection.connect({
        address: opts.address,
        connectTimeout: '5 seconds',
        ...(opts.tls ? { tls: opts.tls } : {}),
        ...(opts.apiKey !== undefined ? { apiKey: opts.apiKey } : {}),
      });
    } catch (err) {
      // gRPC says only "failed to connect before the deadline"; the handshake on its own says why.
      const reason = await explainTlsFailure(opts.address, opts.tls);
      throw reason ? new TemporalTransportError(opts.address, reason, { cause: err }) : err;
    }
    return new SlotClient(
      new Client({
        connection,
        namespace: opts.namespace ?? 'default',
        ...(opts.dataConverter ? { dataConverter: opts.dataConverter } : {}),
        ...(opts.interceptors?.length ? { interceptors: { workflow: opts.interceptors } } : {}),
      }),
      opts.taskQueue,
    );
  }

  async close(): Promise<void> {
    await this.client.connection.close();
  }

  /** Starts `slot:<id>`, which begins with a login. */
  async provision(opts: ProvisionOptions): Promise<void> {
    const slotId = parseSlotId(opts.slotId);
    if (!providerNames().includes(opts.provider)) {
      throw new SlotInputError(`unknown provider ${JSON.stringify(opts.provider)}; known providers: ${providerNames().join(', ')}`);
    }
    let providerConfig: unknown;
    try {
      // Normalised (defaults filled in): the workflow input says exactly what the slot uses.
      providerConfig = parseProviderConfig(opts.provider, opts.providerConfig);
    } catch (err) {
      if (err instanceof ProviderConfigError) throw new SlotInputError(err.message);
      throw err;
    }
    const input: SlotInput = {
      ...opts.options,
      slotId,
      provider: opts.provider,
      ...(providerConfig !== undefined ? { providerConfig } : {}),
      host: opts.host,
      ...(opts.login ? { login: opts.login } : {}),
      ...(opts.adoptExisting ? { adoptExisting: true } : {}),
    };
    try {
      await this.client.workflow.start('slotWorkflow', slotStartOptions(input, this.taskQueue));
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) throw new SlotExistsError(slotId);
      throw err;
    }
  }

  /**
   * The slot's status, from its workflow. When no worker answers (all down), the
   * phase and prompt come from its search attributes instead, marked `stale`,
   * so operators still see something exactly when things are broken.
   */
  async status(slotId: string, opts: { queryTimeoutMs?: number } = {}): Promise<SlotStatus> {
    const id = parseSlotId(slotId);
    const handle = this.client.workflow.getHandle(slotWorkflowId(id));
    const deadline = Date.now() + (opts.queryTimeoutMs ?? 10_000);
    try {
      const status = await this.client.connection.withDeadline(deadline, () => handle.query(statusQuery));
      if (status.phase !== 'refreshing' && status.phase !== 'verifying' && status.phase !== 'degraded') return status;
      // A refresh held back for its provider (a 429 to the host) is retried by Temporal without telling the
      // workflow: the pending activity's last failure says so (no history event per waiting slot).
      const waiting = await this.client.connection.withDeadline(deadline, () => waitingForProvider(handle)).catch(() => undefined);
      return waiting ? { ...status, lastError: waiting } : status;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw new SlotNotFoundError(id);
      // FAILED_PRECONDITION (9, "no poller seen") or our deadline passed (the call is then CANCELLED or
      // DEADLINE_EXCEEDED): nobody runs the workflow now.
      const code = (err as { code?: number }).code ?? (err as { cause?: { code?: number } }).cause?.code;
      const timedOut = Date.now() >= deadline - 100;
      if (code !== 9 && !timedOut) throw err;
      return staleStatus(id, await this.searchAttributesOf(id), timedOut ? 'timed out' : 'no worker polling');
    }
  }

  /**
   * The agent provision plan of a slot: from its provider (and configuration, as the
   * slot workflow's input holds it) and where its files are. Holds no secret and reads
   * no file: `slotsDir` is the slot host's (SLOTS_DIR there).
   */
  async agentPlan(slotId: string, opts: { slotsDir: string } & AgentPlanOptions): Promise<AgentPlan> {
    const id = parseSlotId(slotId);
    const input = await this.slotInputOf(id);
    let provider: Provider;
    try {
      provider = getProvider(input.provider, input.providerConfig);
    } catch (err) {
      if (err instanceof ProviderConfigError || err instanceof UnknownProviderError) throw new SlotInputError(`slot ${id}: ${err.message}`);
      throw err;
    }
    if (!provider.agent.plan) throw new SlotInputError(`slot ${id}: ${provider.displayName} has no agent plan`);
    return agentPlan(provider, { slotId: id, home: join(opts.slotsDir, id) }, opts);
  }

  /** The provider and its configuration from the input of the slot's current run (decoded with this client's keys). */
  private async slotInputOf(slotId: string): Promise<{ provider: string; providerConfig?: unknown }> {
    let payloads: Payload[] | null | undefined;
    try {
      const page = await this.client.workflowService.getWorkflowExecutionHistory({
        namespace: this.client.options.namespace,
        execution: { workflowId: slotWorkflowId(slotId) },
        maximumPageSize: 1,
      });
      payloads = page.history?.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads;
    } catch (err) {
      if ((err as { code?: number }).code === 5) throw new SlotNotFoundError(slotId);
      throw err;
    }
    const input: unknown = payloads?.length ? fromPayloadsAtIndex(this.client.options.loadedDataConverter.payloadConverter, 0, await this.decodePayloads(payloads)) : undefined;
    const provider = (input as { provider?: unknown } | undefined)?.provider;
    if (typeof input !== 'object' || input === null || typeof provider !== 'string') throw new SlotInputError(`slot ${slotId}: its workflow input names no provider`);
    return { provider, providerConfig: (input as { providerConfig?: unknown }).providerConfig };
  }

  /** Payloads opened by this client's codecs, last codec first (as the SDK decodes). */
  private async decodePayloads(payloads: Payload[]): Promise<Payload[]> {
    let decoded = payloads;
    for (const codec of [...this.client.options.loadedDataConverter.payloadCodecs].reverse()) decoded = await codec.decode(decoded);
    return decoded;
  }

  /**
   * The slot's search attributes, read raw: they are never encoded, so this works
   * without the payload key (a memo or a payload would need it).
   */
  private async searchAttributesOf(slotId: string): Promise<TypedSearchAttributes> {
    try {
      const raw = await this.client.workflowService.describeWorkflowExecution({
        namespace: this.client.options.namespace,
        execution: { workflowId: slotWorkflowId(slotId) },
      });
      return decodeSearchAttributes(raw.workflowExecutionInfo?.searchAttributes?.indexedFields);
    } catch (err) {
      if ((err as { code?: number }).code === 5 /* NOT_FOUND */) throw new SlotNotFoundError(slotId);
      throw err;
    }
  }

  /** Every slot the server knows, newest first, from search attributes. */
  async list(opts: { includeClosed?: boolean; limit?: number; /** A whole visibility query instead (cli/bulk.ts builds one). */ query?: string } = {}): Promise<SlotSummary[]> {
    const query = opts.query ?? `WorkflowType = 'slotWorkflow'${opts.includeClosed ? '' : ` AND ExecutionStatus = 'Running'`}`;
    const rows: SlotSummary[] = [];
    // Raw rows (client/visibility.ts): the list needs no payload key, and one slot sealed with another key fails nothing.
    for await (const wf of listExecutions(this.client, query, { pageSize: 200 })) {
      const attrs = wf.searchAttributes instanceof Error ? undefined : wf.searchAttributes;
      const phase = Phase.safeParse(attrs?.get(SlotPhaseKey));
      const prompt = attrs?.get(SlotPromptKey);
      rows.push({
        slotId: attrs?.get(SlotIdKey) ?? wf.workflowId.replace(/^slot:/, ''),
        provider: attrs?.get(SlotProviderKey) ?? 'unknown',
        host: attrs?.get(SlotHostKey) ?? 'unknown',
        phase: phase.success ? phase.data : 'unknown',
        ...(prompt ? { prompt } : {}),
        running: wf.running,
      });
      if (rows.length >= (opts.limit ?? 1000)) return rows;
    }
    return rows;
  }

  /**
   * Hands the operator's code to the slot's login. The slot checks it before it
   * is recorded (an update validator), so a refusal costs nothing and is explained.
   */
  async submitCode(slotId: string, code: string): Promise<SubmitCodeResult> {
    const id = parseSlotId(slotId);
    const problem = codeProblem({ code }, undefined);
    if (problem) throw new CodeRejectedError(`code not submitted: ${problem}`);
    try {
      return await this.client.workflow.getHandle(slotWorkflowId(id)).executeUpdate(submitCodeUpdate, { args: [{ code }] });
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw new SlotNotFoundError(id);
      if (err instanceof WorkflowUpdateFailedError) throw new CodeRejectedError(`code not accepted: ${err.cause?.message ?? err.message}`);
      throw err;
    }
  }

  async cancelLogin(slotId: string): Promise<void> {
    await this.signal(slotId, (h) => h.signal(cancelLoginSignal));
  }

  async relogin(slotId: string): Promise<void> {
    await this.signal(slotId, (h) => h.signal(reloginSignal));
  }

  /**
   * Tells the slot that its provider's incident is over, as the incident workflow does when it
   * ends: for slots it can no longer tell (it was terminated). Held relogins start, and the slot
   * sends its own notices again.
   */
  async incidentOver(slotId: string, provider: string): Promise<void> {
    await this.signal(slotId, (h) => h.signal(incidentSignal, { open: false, held: false, provider, slots: 0, failure: '' }));
  }

  async refreshNow(slotId: string): Promise<void> {
    await this.signal(slotId, (h) => h.signal(refreshNowSignal));
  }

  /**
   * Proves the slot's credential live now (a minimal real request with its token, on its
   * host) and answers the outcome; a refused token is refreshed and probed again first.
   * Throws ProbeRefusedError when the slot has nothing to probe (a login under way, retiring).
   */
  async probe(slotId: string): Promise<LastProbe> {
    const id = parseSlotId(slotId);
    try {
      return await this.client.workflow.getHandle(slotWorkflowId(id)).executeUpdate(probeNowUpdate);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw new SlotNotFoundError(id);
      if (err instanceof WorkflowUpdateFailedError) throw new ProbeRefusedError(`probe not made: ${err.cause?.message ?? err.message}`);
      throw err;
    }
  }

  async retire(slotId: string, options: RetireInput = {}): Promise<void> {
    await this.signal(slotId, (h) => h.signal(retireSignal, options));
  }

  /**
   * Moves the slot to `toHost` with no login (a fresh backup, restored and refreshed there, the
   * old copy removed) and waits for the end. Throws MoveRefusedError when the slot refuses at
   * once; a move that was tried and refused or failed is answered with that state.
   */
  async move(slotId: string, toHost: string, opts: { timeoutMs?: number; onStatus?: (status: SlotStatus) => void } = {}): Promise<MoveState> {
    const id = parseSlotId(slotId);
    const problem = moveInputProblem({ toHost });
    if (problem) throw new SlotInputError(`--to-host ${JSON.stringify(toHost)}: ${problem}`);
    try {
      await this.client.workflow.getHandle(slotWorkflowId(id)).executeUpdate(moveUpdate, { args: [{ toHost }] });
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw new SlotNotFoundError(id);
      if (err instanceof WorkflowUpdateFailedError) throw new MoveRefusedError(`move refused: ${err.cause?.message ?? err.message}`);
      throw err;
    }
    const { status } = await this.waitFor(id, (s) => s.move?.to === toHost && s.move.state !== 'moving', {
      timeoutMs: opts.timeoutMs ?? 600_000,
      ...(opts.onStatus ? { onStatus: opts.onStatus } : {}),
    });
    return status.move ?? { from: status.host, to: toHost, state: 'moving', at: Date.now(), message: 'the slot has not reported on the move yet' };
  }

  /** Polls `status` until `until` holds or the time is up (then returns the last status). */
  async waitFor(
    slotId: string,
    until: (status: SlotStatus) => boolean,
    opts: { timeoutMs: number; pollMs?: number; onStatus?: (status: SlotStatus) => void },
  ): Promise<{ status: SlotStatus; reached: boolean }> {
    const deadline = Date.now() + opts.timeoutMs;
    for (;;) {
      const status = await this.status(slotId);
      opts.onStatus?.(status);
      if (until(status)) return { status, reached: true };
      if (Date.now() >= deadline) return { status, reached: false };
      await new Promise((resolve) => setTimeout(resolve, opts.pollMs ?? 500));
    }
  }

  private async signal(slotId: string, send: (handle: ReturnType<Client['workflow']['getHandle']>) => Promise<void>): Promise<void> {
    const id = parseSlotId(slotId);
    try {
      await send(this.client.workflow.getHandle(slotWorkflowId(id)));
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw new SlotNotFoundError(id);
      throw err;
    }
  }
}

/** The pending activity's own words when it waits for its provider (ProviderPaused, ProviderRefusing), or undefined. */
async function waitingForProvider(handle: { describe(): Promise<{ raw: { pendingActivities?: Array<{ lastFailure?: { message?: string | null; applicationFailureInfo?: { type?: string | null } | null } | null }> | null } }> }): Promise<string | undefined> {
  const { raw } = await handle.describe();
  for (const pending of raw.pendingActivities ?? []) {
    const failure = pending.lastFailure;
    const type = failure?.applicationFailureInfo?.type;
    if (type !== FailureType.providerPaused && type !== FailureType.providerRefusing) continue;
    // With payload keys the message is sealed: the type still says what the slot waits for.
    const message = failure?.message ?? '';
    return message.startsWith('waiting for the provider') || / is refusing refresh requests /.test(message)
      ? message.slice(0, 500)
      : 'waiting for the provider: it refused requests from this host (HTTP 429) and the host holds them until the time it asked';
  }
  return undefined;
}
