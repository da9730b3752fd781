// Host-pinned live probe: the provider's minimal real request with the slot's token,
// classified by the answer's status alone (the body is never read). Nothing it
// returns, throws or logs holds the token or the answer: only the status and where it went.
import { ApplicationFailure, Context } from '@temporalio/activity';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { z } from 'zod';
import { FailureType, ProviderEndpointError } from '../common/failures';
import type { ProbeOutcome, ProbeReason } from '../common/probe';
import { SlotId } from '../common/schemas';
import { parseRetryAfter } from '../providers/oauth';
import { checkEndpoint, endpointAllowList, endpointUrlProblem, networkProblem } from '../providers/oauth-http';
import { transportOptions } from '../providers/outbound';
import { openSlot, type OpenSlot } from './open-slot';
import { ProviderPauses, sendTurn, waitingForProvider } from './provider-pause';
import type { SendSpacing } from '../common/pacing';

export interface ProbeActivityDeps {
  readonly slotsDir: string;
  /** The worker's environment: probe base URL overrides and SLOTS_ALLOWED_ENDPOINT_HOSTS. */
  readonly env: NodeJS.ProcessEnv;
  /** Whole request, until the answer's status line and headers. @default 20000 */
  readonly probeTimeoutMs?: number;
  /** This host's name, said when a probe waits for the provider. */
  readonly host?: string;
  /** Spaces this process's requests by the provider's pace. */
  readonly spacing?: SendSpacing;
}

export interface ProbeCredentialInput {
  readonly slotId: string;
  readonly provider: string;
  readonly providerConfig?: unknown;
  readonly reason: ProbeReason;
}

/** What a probe found; `detail` names the endpoint (origin and path) and the meaning, never the body. */
export interface ProbeResult {
  readonly outcome: ProbeOutcome;
  readonly httpStatus?: number;
  readonly detail?: string;
  readonly resetAt?: number;
}

const DEFAULT_PROBE_TIMEOUT_MS = 20_000;
const ProbeInput = z.object({
  slotId: SlotId,
  provider: z.string().min(1),
  providerConfig: z.unknown().optional(),
  reason: z.enum(['login', 'schedule', 'operator', 'pool', 'after-refresh']),
});

/** Whole on purpose: one activity, its one probe and the one send it makes, sharing the timeout and the pauses. */
export function createProbeActivities(deps: ProbeActivityDeps) {
  const timeoutMs = deps.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
  const pauses = new ProviderPauses(deps.slotsDir);

  /** One probe; never retried by itself (the next one is the retry). */
  async function probeCredential(raw: ProbeCredentialInput): Promise<ProbeResult> {
    const parsed = ProbeInput.safeParse(raw);
    if (!parsed.success) {
      throw ApplicationFailure.nonRetryable(`invalid probe input: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(input)'}: ${i.message}`).join('; ')}`, FailureType.probeMisconfigured);
    }
    const input = parsed.data;
    const opening = await openSlot(deps, input);
    const result: ProbeResult = opening.ok ? await probeOnce(opening.slot) : { outcome: 'error', detail: opening.problem };
    Context.current().log.info('probed the slot credential', { slotId: input.slotId, provider: input.provider, reason: input.reason, outcome: result.outcome, ...(result.httpStatus !== undefined ? { httpStatus: result.httpStatus } : {}) });
    return result;
  }

  async function probeOnce(slot: OpenSlot): Promise<ProbeResult> {
    const { provider } = slot;
    const spec = provider.probe;
    if (!spec) return { outcome: 'none', detail: `${provider.displayName} declares no probe` };

    const file = provider.credential.file;
    const read = await slot.readCredential();
    // Field names only: values are tokens. No cause for bad JSON: the parser's message quotes the text.
    if (read.kind === 'unread') return { outcome: 'error', detail: `no credential to probe: ${read.message}` };
    if (read.kind === 'not-json') return { outcome: 'error', detail: `${file} is not valid JSON` };
    if (read.kind === 'invalid') return { outcome: 'error', detail: `${file} is not a ${provider.displayName} credential (${read.issues.map((i) => i.path.join('.')).slice(0, 3).join(', ')})` };
    const credential = read.credential;

    let request: Awaited<ReturnType<typeof spec.request>>;
    try {
      request = await spec.request(credential, deps.env);
    } catch (err) {
      if (err instanceof ProviderEndpointError) return { outcome: err.retryable ? 'transient' : 'error', detail: err.message };
      throw err;
    }
    if (!request) return { outcome: 'none', detail: `${provider.displayName}: this server offers nothing to probe (no userinfo endpoint)` };

    let url: URL;
    try {
      url = new URL(request.url);
    } catch {
      // Not quoted: an override may carry credentials.
      return { outcome: 'error', detail: `the ${provider.displayName} probe URL is not a valid URL; check ${spec.variables?.length ? spec.variables.join(' and ') : "the slot's provider configuration"}` };
    }
    const where = `${url.origin}${url.pathname}`;
    const problem = endpointUrlProblem(url);
    if (problem) return { outcome: 'error', detail: `refusing to send a ${provider.displayName} token to ${url.protocol}//${url.host}: ${problem}` };

    // The provider asked this host to wait (a 429 at its token endpoint): a probe is a sample, the next one will do.
    const paused = await pauses.current(provider.name);
    if (paused) return { outcome: 'transient', detail: waitingForProvider(provider.displayName, deps.host, paused) };
    await sendTurn(deps.spacing, provider.name);
    const answered = await send(url, request.method, request.headers, request.body);
    if (!answered.ok) return { outcome: answered.refused ? 'error' : 'transient', detail: `${where}: ${answered.reason}` };
    const { status, headers } = answered;
    if (status >= 200 && status < 300) return { outcome: 'ok', httpStatus: status, detail: `${where} accepted the token` };
    if (status === 401 || status === 403) return { outcome: 'unauthorized', httpStatus: status, detail: `${where} refused the token` };
    if (status === 429) {
      const serverDate = Date.parse(headers.date ?? '');
      const now = Number.isFinite(serverDate) ? serverDate : Date.now();
      const retryAfterMs = parseRetryAfter(headers['retry-after'] ?? null, now);
      const resetAt = spec.resetAt?.(headers) ?? (retryAfterMs !== undefined ? Date.now() + retryAfterMs : undefined);
      return { outcome: 'rate-limited', httpStatus: status, detail: `${where} accepted the token but the account is rate limited`, ...(resetAt !== undefined ? { resetAt } : {}) };
    }
    if (status >= 500 || status === 408) return { outcome: 'transient', httpStatus: status, detail: `${where} answered HTTP ${status}` };
    return { outcome: 'error', httpStatus: status, detail: `${where} answered HTTP ${status}: the probe was not understood, so the credential's state is unknown` };
  }

  type Sent = { readonly ok: true; readonly status: number; readonly headers: Record<string, string> } | { readonly ok: false; readonly reason: string; readonly refused: boolean };

  /** Sends the request to the checked address and reads the status line and headers; the body is discarded unread. */
  async function send(url: URL, method: 'GET' | 'POST', given: Readonly<Record<string, string>>, body: unknown): Promise<Sent> {
    const signal = AbortSignal.timeout(timeoutMs);
    const checked = await checkEndpoint(url, { allowedHosts: endpointAllowList(deps.env) }, signal, deps.env);
    if (!checked.ok) return checked.refused ? { ok: false, refused: true, reason: checked.reason } : { ok: false, refused: false, reason: networkProblem(checked.cause, 'request') };
    const text = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = {
      accept: 'application/json',
      connection: 'close',
      ...(text !== undefined ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) } : {}),
      ...given,
    };
    try {
      const response = await new Promise<IncomingMessage>((resolve, reject) => {
        const call = url.protocol === 'https:' ? httpsRequest : httpRequest;
        const req = call(url, { method, headers, signal, ...transportOptions(url, checked.target, deps.env) }, resolve);
        req.on('error', reject);
        req.end(text);
      });
      const answerHeaders = Object.fromEntries(Object.entries(response.headers).flatMap(([k, v]) => (typeof v === 'string' ? [[k, v]] : [])));
      response.destroy();
      return { ok: true, status: response.statusCode ?? 0, headers: answerHeaders };
    } catch (err) {
      return { ok: false, refused: false, reason: signal.aborted ? `no answer within ${timeoutMs / 1000} s` : networkProblem(err, 'request') };
    }
  }

  return { probeCredential };
}

export type ProbeActivities = ReturnType<typeof createProbeActivities>;
