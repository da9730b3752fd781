// slotctl: the operator's CLI. One data model, two renderers (human, --json).
// Exit codes: 0 done · 1 the operation failed (code refused, login failed)
// · 2 bad input · 3 slot not found or server unreachable.
import { Command, CommanderError, Option } from 'commander';
import { constants as fsc } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { agentPlanEnvFile, type AgentPlan } from '../providers/agent-plan';
import type { SlotStatus, SubmitCodeResult } from '../common/messages';
import type { Phase } from '../common/slot';
import { describeProbe, type LastProbe } from '../common/probe';
import { ConfigError, loadConfig, temporalAddress, temporalConnectionOptions, type Config } from '../host/config';
import { CodecServerError, operatorDataConverter, PayloadKeyMissingError } from '../client/codec-client';
import { getProvider, parseProviderConfig, providerNames } from '../providers';
import { handOverOnThisHost } from '../host/credential-handover';
import { PoolNotFoundError, PoolRequestError, ProviderConfigError, TemporalTransportError } from '../common/failures';
import { addPoolCommands } from './pool-commands';
import { addIncidentCommands } from './incident-commands';
import { addMoveCommand } from './move-command';
import { seconds } from './options';
import { addHostCommands } from './host-command';
import { migrateSlots, type SlotMigration } from './migrate';
import { confirmed, DEFAULT_BULK_CONCURRENCY, runBulk, selectSlots, summarize, type BulkAction, type BulkSlotResult, type BulkSummary } from './bulk';
import { CodeRejectedError, parseSlotId, ProbeRefusedError, SlotClient, SlotExistsError, SlotInputError, SlotNotFoundError, type SlotSummary } from '../client/slot-client';

export const EXIT = { ok: 0, failed: 1, usage: 2, notFound: 3 } as const;

/** Phases of a login still under way; any other phase means it ended, one way or the other. */
const LOGGING_IN: readonly Phase[] = ['logging-in', 'awaiting-operator', 'verifying'];
/** Phases in which the slot has no usable credential. */
const FAILED: readonly Phase[] = ['needs-relogin', 'retired'];

/** What the CLI made of a typed code, in the operator's words. Never repeats the code. */
function describeAnswer(result: SubmitCodeResult): string {
  switch (result.answer) {
    case 'succeeded':
    case 'exited':
      return `code accepted by ${result.login}: ${result.message}; verifying the credential`;
    case 'rejected':
    case 'hung':
      return `the CLI did not take the code (${result.message}); a new login URL follows if the CLI needs one`;
    case 'failed':
      return `the login failed after the code: ${result.message}`;
    case 'lost':
    case 'cancelled':
      return `the code could not be typed (${result.message})`;
  }
}

/** The provider took the token (ok, or 429: recognised, resting), or the provider has nothing to probe. */
const probeAccepted = (p: LastProbe): boolean => p.outcome === 'ok' || p.outcome === 'rate-limited' || p.outcome === 'none';

type Rendered =
  | { kind: 'status'; status: SlotStatus }
  | { kind: 'list'; slots: SlotSummary[] }
  | { kind: 'done'; message: string; slotId: string }
  | { kind: 'migrate'; dryRun: boolean; slots: SlotMigration[] }
  | { kind: 'agent-plan'; plan: AgentPlan; wroteEnv?: string }
  | { kind: 'bulk'; summary: BulkSummary }
  | { kind: 'probe'; slotId: string; probe: LastProbe };

interface ProviderConfigFlags {
  config?: string;
  issuer?: string;
  clientId?: string;
  scope?: string[];
}

/** The slot's provider configuration from `--config <file>` and the flags (which win), checked; undefined when none is given. */
async function providerConfigOf(provider: string, flags: ProviderConfigFlags): Promise<unknown> {
  let config: Record<string, unknown> | undefined;
  if (flags.config !== undefined) {
    let text: string;
    try {
      text = await readFile(flags.config, 'utf8');
    } catch (err) {
      throw new SlotInputError(`--config ${flags.config}: cannot read it (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new SlotInputError(`--config ${flags.config}: not valid JSON`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new SlotInputError(`--config ${flags.config}: must be a JSON object`);
    config = parsed as Record<string, unknown>;
  }
  const given = {
    ...(flags.issuer !== undefined ? { issuer: flags.issuer } : {}),
    ...(flags.clientId !== undefined ? { clientId: flags.clientId } : {}),
    ...(flags.scope && flags.scope.length > 0 ? { scopes: flags.scope } : {}),
  };
  if (Object.keys(given).length > 0) config = { ...config, ...given };
  try {
    return parseProviderConfig(provider, config);
  } catch (err) {
    if (err instanceof ProviderConfigError) throw new SlotInputError(err.message);
    throw err;
  }
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

const when = (ms: number | undefined): string => (ms === undefined ? '—' : new Date(ms).toISOString());

function human(view: Rendered): string {
  switch (view.kind) {
    case 'status': {
      const s = view.status;
      const lines = [
        `slot      ${s.slotId} (${s.provider} on ${s.host})`,
        `phase     ${s.phase}`,
      ];
      if (s.stale) lines.push(`stale     ${s.stale}`);
      if (s.prompt) {
        lines.push(`open      ${s.prompt.url}`);
        if (s.prompt.userCode) lines.push(`code      ${s.prompt.userCode}`);
        if (s.prompt.completeUrl) lines.push(`or open   ${s.prompt.completeUrl}`);
        lines.push(`until     ${when(s.prompt.expiresAt)}`, `do        ${s.prompt.instructions}`);
      }
      if (s.lastError) lines.push(`error     ${s.lastError}`);
      lines.push(`expires   ${when(s.expiresAt)}`, `refreshed ${when(s.lastRefresh)}`);
      if (s.nextRefreshAt !== undefined) lines.push(`next      ${when(s.nextRefreshAt)}`);
      if (s.account) lines.push(`account   ${s.account}`);
      if (s.lastOutcome) lines.push(`last      ${when(s.lastOutcome.at)} ${s.lastOutcome.kind}: ${s.lastOutcome.message}`);
      if (s.backup) lines.push(`backup    ${when(s.backup.at)} ${s.backup.ok ? 'ok' : 'FAILING'}: ${s.backup.message}`);
      if (s.move) lines.push(`move      ${when(s.move.at)} ${s.move.state}: ${s.move.message}`);
      if (s.lastProbe) lines.push(`probe     ${describeProbe(s.lastProbe)}`);
      return lines.join('\n');
    }
    case 'list': {
      if (view.slots.length === 0) return 'no slots; create one with: slotctl provision <slot> --provider <name>';
      const header = ['SLOT', 'PROVIDER', 'HOST', 'PHASE', 'PROMPT'];
      const rows = [header, ...view.slots.map((s) => [s.slotId, s.provider, s.host, s.phase, s.prompt ?? ''])];
      const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => r[i]?.length ?? 0)));
      return rows.map((r) => r.map((cell, i) => (i < 4 ? cell.padEnd(widths[i] ?? 0) : cell)).join('  ').trimEnd()).join('\n');
    }
    case 'done':
      return view.message;
    case 'probe':
      return `probe of ${view.slotId}: ${describeProbe(view.probe)}`;
    case 'migrate':
      if (view.slots.length === 0) return 'no slot runs slot workflow v1; nothing to migrate';
      return view.slots.map(migrationLine).join('\n');
    case 'agent-plan':
      return agentPlanLines(view.plan, view.wroteEnv).join('\n');
    case 'bulk':
      return bulkLines(view.summary);
  }
}

/** The plan for a person: the mechanism, what to mount, set, hide and route. */
function agentPlanLines(plan: AgentPlan, wroteEnv: string | undefined): string[] {
  return [
    `slot      ${plan.slotId} (${plan.provider})`,
    `how       ${plan.mechanism}`,
    ...plan.mounts.map((m) => `mount     ${m.hostPath} -> ${m.agentPath} (${m.readOnly ? 'read-only' : 'read-write'}): ${m.holds}`),
    ...Object.entries(plan.env).map(([k, v]) => `env       ${k}=${v}${plan.placeholders.includes(k) ? '  (placeholder)' : ''}`),
    ...(plan.hiddenEnv.length ? [`hide      ${plan.hiddenEnv.join(', ')}`] : []),
    ...plan.egress.map((r) => `egress    ${r.host} ${r.authScheme} from ${r.tokenSource}${r.tlsPassThrough ? ', TLS passed through' : ''}: ${r.purpose}`),
    ...plan.warnings.map((w) => `warning   ${w}`),
    ...(wroteEnv ? [`wrote     ${wroteEnv}`] : []),
  ];
}

/** A new file (0600, replaced whole, never through a symlink) holding the plan's env. */
async function writePlanEnv(file: string, plan: AgentPlan): Promise<void> {
  let handle;
  try {
    handle = await open(file, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC | fsc.O_NOFOLLOW, 0o600);
  } catch (err) {
    throw new SlotInputError(`--write-env ${file}: cannot write it (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    await handle.chmod(0o600);
    await handle.writeFile(agentPlanEnvFile(plan));
  } finally {
    await handle.close();
  }
}

/** A dry run lists the slots; a run lists the failures, then counts. */
function bulkLines(b: BulkSummary): string {
  if (b.slots.length === 0) return `no running slot matches ${JSON.stringify(b.where)}; nothing to ${b.action}`;
  const slot = (s: BulkSlotResult): string => `${s.slotId} (${s.provider} on ${s.host}, ${s.phase})`;
  if (b.dryRun) return [`would ${b.action} ${b.slots.length} slot${b.slots.length === 1 ? '' : 's'}:`, ...b.slots.map((s) => `  ${slot(s)}`)].join('\n');
  const failures = b.slots.filter((s) => s.outcome === 'failed').map((s) => `${slot(s)}: FAILED: ${s.error ?? 'unknown error'}`);
  return [...failures, `${b.action}: ${b.done} done, ${b.failed} failed`].join('\n');
}

/** One line per slot: what happened, then what the operator should know. */
function migrationLine(m: SlotMigration): string {
  const then = (note: string | undefined): string => (note ? `; ${note}` : '');
  switch (m.outcome) {
    case 'migrated':
      return `${m.slotId}: migrated, v1 run ${m.from} -> v2 run ${m.to} (${m.fromPhase ?? 'unknown'} -> ${m.phase ?? 'not started yet'})${then(m.note)}`;
    case 'planned':
      return `${m.slotId}: would migrate v1 run ${m.from} (${m.fromPhase ?? 'unknown'})${then(m.note)}`;
    case 'ended':
      return `${m.slotId}: v1 run ${m.from} ended${then(m.note)}`;
    case 'skipped':
      return `${m.slotId}: skipped${then(m.note)}`;
    case 'failed':
      return `${m.slotId}: FAILED${m.from ? ` (v1 run ${m.from})` : ''}: ${m.error}`;
  }
}

function json(view: Rendered): string {
  switch (view.kind) {
    case 'status':
      return JSON.stringify(view.status, null, 2);
    case 'list':
      return JSON.stringify({ slots: view.slots }, null, 2);
    case 'done':
      return JSON.stringify({ ok: true, slotId: view.slotId, message: view.message });
    case 'probe':
      return JSON.stringify({ ok: probeAccepted(view.probe), slotId: view.slotId, probe: view.probe }, null, 2);
    case 'migrate': {
      const failed = view.slots.filter((m) => m.outcome === 'failed').length;
      return JSON.stringify({ ok: failed === 0, dryRun: view.dryRun, failed, slots: view.slots }, null, 2);
    }
    case 'agent-plan':
      return JSON.stringify(view.plan, null, 2);
    case 'bulk':
      return JSON.stringify({ ok: view.summary.failed === 0, ...view.summary }, null, 2);
  }
}

interface Io {
  out(text: string): void;
  err(text: string): void;
  readStdin(): Promise<string>;
  stdinIsTTY: boolean;
}

const processIo: Io = {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
  stdinIsTTY: Boolean(process.stdin.isTTY),
  async readStdin() {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  },
};

interface BulkFlags {
  where?: string;
  dryRun?: boolean;
  yes?: boolean;
  concurrency: string;
}

/** One answer line: typed at a terminal, or piped in (`echo y | slotctl … --where …`). */
async function readAnswer(io: Io): Promise<string> {
  if (!io.stdinIsTTY) return io.readStdin();
  const stdin = process.stdin;
  stdin.resume();
  try {
    let line = '';
    for await (const chunk of stdin) {
      line += (chunk as Buffer).toString('utf8');
      if (line.includes('\n')) break;
    }
    return line;
  } finally {
    stdin.pause();
  }
}

/** Reads a code typed at a terminal without echoing it. */
async function readCodeFromTerminal(io: Io): Promise<string> {
  io.err('Paste the code and press Enter (input is hidden):');
  const stdin = process.stdin;
  stdin.setRawMode?.(true);
  stdin.resume();
  let code = '';
  try {
    for await (const chunk of stdin) {
      for (const ch of (chunk as Buffer).toString('utf8')) {
        if (ch === '\r' || ch === '\n') return code;
        if (ch === '\u0003') throw new SlotInputError('interrupted');
        if (ch === '\u007f') code = code.slice(0, -1);
        else code += ch;
      }
    }
    return code;
  } finally {
    stdin.setRawMode?.(false);
    stdin.pause();
  }
}

export async function slotctl(argv: string[], io: Io = processIo, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let config: Config;
  try {
    config = loadConfig(env);
  } catch (err) {
    io.err(err instanceof ConfigError ? err.message : String(err));
    return EXIT.usage;
  }
  // Spans of this command (start, signal, update) begin the slot's trace when an exporter is configured.
  // Loaded only then: the OpenTelemetry SDK is not what every command should pay to start.
  const tracing =
    config.tracing.otlpEndpoint || config.tracing.zipkinEndpoint ? (await import('../host/tracing')).startTracing(config.tracing) : undefined;
  let client: SlotClient | undefined;
  // The code travels in an update payload: sealed like everything else, with the keys or by the codec server.
  const operator = operatorDataConverter({
    encryptionKeys: config.encryptionKeys,
    codecUrl: config.codecUrl,
    codecToken: config.codec.bearerToken,
    namespace: config.namespace,
  });
  const connect = async (): Promise<SlotClient> =>
    (client ??= await SlotClient.connect({
      ...temporalConnectionOptions(config),
      namespace: config.namespace,
      taskQueue: config.taskQueue,
      dataConverter: operator.dataConverter,
      ...(tracing ? { interceptors: tracing.clientInterceptors() } : {}),
    }));
  let exitCode: number = EXIT.ok;
  let asJson = false;
  const show = (view: Rendered): void => io.out(asJson ? json(view) : human(view));

  const program = new Command('slotctl')
    .description('Operate slot-provisioner slots: provision logins, submit codes, watch status.')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) })
    .showHelpAfterError();
  const jsonOption = new Option('--json', 'print exactly one JSON document on stdout');

  const waitForLogin = async (slots: SlotClient, slotId: string, timeoutMs: number): Promise<void> => {
    let shownPrompt = '';
    const { status, reached } = await slots.waitFor(slotId, (s) => !LOGGING_IN.includes(s.phase), {
      timeoutMs,
      onStatus: (s) => {
        // In --json mode stdout carries only the final document; the prompt goes to stderr.
        const say = asJson ? io.err : io.out;
        const url = (p: { url: string; userCode?: string }): string => `  URL:  ${p.url}${p.userCode ? `\n  code: ${p.userCode}` : ''}`;
        if (s.prompt) {
          const key = `${s.prompt.url} ${s.lastError ?? ''}`;
          if (key === shownPrompt) return;
          shownPrompt = key;
          if (s.lastError) say(`previous attempt: ${s.lastError}`);
          say(`${s.prompt.instructions}\n${url(s.prompt)}`);
        } else if (s.stale && s.publishedPrompt) {
          // No worker answered in time (busy, or down): the prompt the slot published is still what to act on.
          const key = `stale ${s.publishedPrompt.url}`;
          if (key === shownPrompt || shownPrompt.startsWith(`${s.publishedPrompt.url} `)) return;
          shownPrompt = key;
          say(`(stale: ${s.stale.replace(/;.*$/, '')}; this is the prompt the slot last published, the full one follows when its worker answers)\n${url(s.publishedPrompt)}`);
        }
      },
    });
    show({ kind: 'status', status });
    if (!reached) {
      io.err(`gave up waiting after ${timeoutMs / 1000} s; the slot is still ${status.phase}`);
      exitCode = EXIT.failed;
    } else if (FAILED.includes(status.phase)) exitCode = EXIT.failed;
  };

  program
    .command('provision <slot>')
    .description('create a slot and start its login')
    .requiredOption('--provider <name>', 'the provider: claude, codex, …')
    .option('--host <name>', 'the host whose worker holds the slot', config.slotHost)
    .option('--adopt', 'use the credential already in the slot instead of logging in (claude-setup-token: the token, read from stdin on the slot\'s host)')
    .option('--config <file>', "the provider's configuration for this slot, a JSON file (oidc-device: issuer or endpoints, clientId, scopes, tokens)")
    .option('--issuer <url>', 'oidc-device: the OAuth / OpenID Connect issuer (its endpoints are discovered)')
    .option('--client-id <id>', 'oidc-device: the OAuth client id (a public client allowed the device flow)')
    .option('--scope <scope>', 'oidc-device: a scope to ask for (repeat for more; default: openid offline_access)', collect, [])
    .option('--wait', 'wait until the login succeeds or fails, showing its prompt')
    .option('--timeout <seconds>', 'with --wait: how long to wait', '3600')
    .addOption(jsonOption)
    .action(async (slot: string, opts: { provider: string; host: string; adopt?: boolean; wait?: boolean; timeout: string; json?: boolean } & ProviderConfigFlags) => {
      asJson = Boolean(opts.json);
      parseSlotId(slot);
      // Checked before anything is provisioned.
      const timeoutMs = seconds(opts.timeout, '--timeout');
      if (!providerNames().includes(opts.provider)) {
        throw new SlotInputError(`unknown provider ${JSON.stringify(opts.provider)}; known providers: ${providerNames().join(', ')}`);
      }
      const providerConfig = await providerConfigOf(opts.provider, opts);
      // A provider whose credential is a token an operator holds takes it on stdin, on the slot's host.
      if (opts.adopt) await handOverFromStdin(slot, opts.provider, providerConfig);
      const slots = await connect();
      await slots.provision({
        slotId: slot,
        provider: opts.provider,
        ...(providerConfig !== undefined ? { providerConfig } : {}),
        host: opts.host,
        ...(opts.adopt ? { adoptExisting: true } : {}),
      });
      if (opts.wait) await waitForLogin(slots, slot, timeoutMs);
      else show({ kind: 'status', status: await slots.status(slot) });
    });

  /**
   * `--adopt` for a provider that declares `fromOperatorInput`: the token is read from
   * stdin (hidden at a terminal) and left in this host's adoption inbox for the slot's
   * host activity. It never goes to Temporal, so no workflow history holds it.
   */
  async function handOverFromStdin(slot: string, providerName: string, providerConfig: unknown): Promise<void> {
    const provider = getProvider(providerName, providerConfig);
    if (!provider.credential.fromOperatorInput) return;
    const text = io.stdinIsTTY ? await readCodeFromTerminal(io) : await io.readStdin();
    let credential: unknown;
    try {
      credential = provider.credential.fromOperatorInput(text, Date.now());
    } catch (err) {
      throw new SlotInputError(`--adopt for ${provider.displayName}: ${(err as Error).message}`);
    }
    await handOverOnThisHost(config.slotsDir, slot, provider.name, credential);
  }

  program
    .command('status [slot]')
    .description('show one slot, or list all slots')
    .option('--all', 'include retired slots in the list')
    .option('--wait', "with a slot: wait until its login succeeds or fails, showing its prompt (a slot's login started elsewhere)")
    .option('--timeout <seconds>', 'with --wait: how long to wait', '3600')
    .addOption(jsonOption)
    .action(async (slot: string | undefined, opts: { json?: boolean; all?: boolean; wait?: boolean; timeout: string }) => {
      asJson = Boolean(opts.json);
      if (slot) parseSlotId(slot);
      if (opts.wait && !slot) throw new SlotInputError('--wait needs a slot');
      const slots = await connect();
      if (slot && opts.wait) await waitForLogin(slots, slot, Number(opts.timeout) * 1000);
      else if (slot) show({ kind: 'status', status: await slots.status(slot) });
      else show({ kind: 'list', slots: await slots.list({ includeClosed: Boolean(opts.all) }) });
    });

  program
    .command('submit-code <slot> [code]')
    .description("give a slot's login the operator's code (read from stdin when omitted, to keep it out of shell history)")
    .option('--wait', 'wait until the login succeeds or fails')
    .option('--timeout <seconds>', 'with --wait: how long to wait', '120')
    .addOption(jsonOption)
    .action(async (slot: string, codeArg: string | undefined, opts: { json?: boolean; wait?: boolean; timeout: string }) => {
      asJson = Boolean(opts.json);
      parseSlotId(slot);
      // Checked before the code is read or sent.
      const timeoutMs = seconds(opts.timeout, '--timeout');
      const raw = codeArg ?? (io.stdinIsTTY ? await readCodeFromTerminal(io) : await io.readStdin());
      // A code piped from a file or `echo` ends in a newline that is not part of it.
      const code = codeArg ?? raw.replace(/\r?\n$/, '');
      const slots = await connect();
      // Without a way to seal it, the code would reach history in clear: first make sure the slot does not encrypt
      // (its status answer is sealed if it does, and opening it fails naming the variable to set).
      if (operator.codec === 'none') await slots.status(slot);
      const result = await slots.submitCode(slot, code);
      if (opts.wait) await waitForLogin(slots, slot, timeoutMs);
      else show({ kind: 'done', slotId: slot, message: `${describeAnswer(result)}; follow with: slotctl status ${slot}` });
      // The slot took the code, but the CLI did not: that is a failed operation for the operator.
      if (!opts.wait && result.answer !== 'succeeded' && result.answer !== 'exited') exitCode = EXIT.failed;
    });

  /** `--where`: the slots a visibility query selects, listed (--dry-run) or sent the action after a confirmation. */
  const bulk = async (action: BulkAction, opts: BulkFlags & { removeFiles?: boolean }): Promise<void> => {
    const where = opts.where as string;
    const slots = await connect();
    const targets = await selectSlots(slots, where);
    const planned = targets.map((t): BulkSlotResult => ({ slotId: t.slotId, provider: t.provider, host: t.host, phase: t.phase, outcome: 'planned' }));
    if (opts.dryRun || targets.length === 0) return show({ kind: 'bulk', summary: summarize(action, where, true, planned) });
    if (!opts.yes) {
      io.err(`${action} ${targets.length} slot${targets.length === 1 ? '' : 's'} (${targets.slice(0, 5).map((t) => t.slotId).join(', ')}${targets.length > 5 ? ', …' : ''})? [y/N]`);
      if (!confirmed(await readAnswer(io))) {
        io.err('slotctl: not confirmed; nothing was done (pass --yes to skip the question)');
        exitCode = EXIT.failed;
        return;
      }
    }
    const results = await runBulk(slots, action, targets, {
      concurrency: Number(opts.concurrency),
      ...(action === 'retire' ? { retire: { removeFiles: Boolean(opts.removeFiles) } } : {}),
      // Progress goes to stderr: in --json mode stdout carries only the summary.
      onResult: (r, finished, total) => io.err(`[${finished}/${total}] ${action} ${r.slotId}: ${r.outcome === 'done' ? 'done' : `FAILED: ${r.error ?? ''}`}`),
    });
    const summary = summarize(action, where, false, results);
    show({ kind: 'bulk', summary });
    if (summary.failed > 0) exitCode = EXIT.failed;
  };
  const bulkOptions = (command: Command): Command =>
    command
      .option('--where <query>', "every running slot this visibility query selects, e.g. \"SlotProvider='codex' AND SlotPhase='active'\"")
      .option('--dry-run', 'with --where: list the slots, change nothing')
      .option('--yes', 'with --where: do not ask for confirmation')
      .option('--concurrency <n>', 'with --where: slots messaged at a time', String(DEFAULT_BULK_CONCURRENCY));
  /** One slot, or --where; never both, never neither. */
  const oneOrWhere = (slot: string | undefined, opts: BulkFlags): boolean => {
    if (slot !== undefined && opts.where !== undefined) throw new SlotInputError('give a slot or --where, not both');
    if (slot === undefined && opts.where === undefined) throw new SlotInputError('give a slot, or --where "<visibility query>" for many');
    if (slot === undefined) return true;
    if (opts.dryRun || opts.yes) throw new SlotInputError('--dry-run and --yes go with --where');
    parseSlotId(slot);
    return false;
  };

  program
    .command('cancel <slot>')
    .description('cancel the login in progress')
    .addOption(jsonOption)
    .action(async (slot: string, opts: { json?: boolean }) => {
      asJson = Boolean(opts.json);
      parseSlotId(slot);
      await (await connect()).cancelLogin(slot);
      show({ kind: 'done', slotId: slot, message: `login cancellation requested; follow with: slotctl status ${slot}` });
    });

  for (const [name, description, run, message] of [
    ['relogin', 'start a new login (new URL)', (s: SlotClient, id: string) => s.relogin(id), 'new login requested'],
    ['refresh', 'refresh the credential now', (s: SlotClient, id: string) => s.refreshNow(id), 'refresh requested'],
  ] as const) {
    bulkOptions(program.command(`${name} [slot]`).description(`${description}; --where for every slot a query selects`))
      .addOption(jsonOption)
      .action(async (slot: string | undefined, opts: BulkFlags & { json?: boolean }) => {
        asJson = Boolean(opts.json);
        if (oneOrWhere(slot, opts)) return bulk(name, opts);
        await run(await connect(), slot as string);
        show({ kind: 'done', slotId: slot as string, message: `${message}; follow with: slotctl status ${slot as string}` });
      });
  }

  bulkOptions(program.command('retire [slot]').description("end the slot (--where: every slot a query selects): revoke its tokens where the provider can, move its home to the host's trash; the id stays retired on that host"))
    .option('--remove-files', "note in the tombstone that the files are to go (the host's operator empties the trash: slotctl host empty-trash)")
    .addOption(jsonOption)
    .action(async (slot: string | undefined, opts: BulkFlags & { json?: boolean; removeFiles?: boolean }) => {
      asJson = Boolean(opts.json);
      if (oneOrWhere(slot, opts)) return bulk('retire', opts);
      await (await connect()).retire(slot as string, { removeFiles: Boolean(opts.removeFiles) });
      show({ kind: 'done', slotId: slot as string, message: `retirement requested${opts.removeFiles ? " (files to be removed: the host's operator empties its trash)" : ''}` });
    });

  program
    .command('probe <slot>')
    .description("prove the slot's credential live now (a minimal real request with its token, on its host); waits for and prints the outcome")
    .addOption(jsonOption)
    .action(async (slot: string, opts: { json?: boolean }) => {
      asJson = Boolean(opts.json);
      parseSlotId(slot);
      const probe = await (await connect()).probe(slot);
      show({ kind: 'probe', slotId: slot, probe });
      // Exit 1 unless the provider took the token (a 429 took it too) or there is nothing to probe.
      if (!probeAccepted(probe)) exitCode = EXIT.failed;
    });

  program
    .command('agent-plan <slot>')
    .description("what an agent using the slot needs: env, placeholders, hidden names, egress routes, the directory to mount (no secrets)")
    .option('--slots-dir <dir>', "the slot host's SLOTS_DIR", config.slotsDir)
    .option('--mount-at <dir>', "where the agent sees the slot's agent directory (a container path); default: its host path")
    .option('--write-env <file>', "also write the plan's env to <file> (0600), for `docker run --env-file` or a shell")
    .addOption(jsonOption)
    .action(async (slot: string, opts: { json?: boolean; slotsDir: string; mountAt?: string; writeEnv?: string }) => {
      asJson = Boolean(opts.json);
      parseSlotId(slot);
      if (opts.mountAt !== undefined && !opts.mountAt.startsWith('/')) throw new SlotInputError(`--mount-at ${opts.mountAt}: must be an absolute path`);
      const service = config.agentTokenService;
      const plan = await (await connect()).agentPlan(slot, {
        slotsDir: opts.slotsDir,
        ...(opts.mountAt ? { mountAt: opts.mountAt } : {}),
        ...(service ? { tokenServiceUrl: service.url ?? `http://${service.host.includes(':') ? `[${service.host}]` : service.host}:${service.port}` } : {}),
      });
      if (opts.writeEnv) await writePlanEnv(opts.writeEnv, plan);
      show({ kind: 'agent-plan', plan, ...(opts.writeEnv ? { wroteEnv: opts.writeEnv } : {}) });
    });

  program
    .command('migrate [slot...]')
    .description('move slots still on slot workflow v1 to v2, keeping each credential (run after upgrading every worker)')
    .option('--dry-run', 'show what would be migrated, change nothing')
    .addOption(jsonOption)
    .action(async (slotArgs: string[], opts: { json?: boolean; dryRun?: boolean }) => {
      asJson = Boolean(opts.json);
      const slotIds = slotArgs.map(parseSlotId);
      const slots = await migrateSlots((await connect()).client, {
        taskQueue: config.taskQueue,
        dryRun: Boolean(opts.dryRun),
        ...(slotIds.length > 0 ? { slotIds } : {}),
      });
      show({ kind: 'migrate', dryRun: Boolean(opts.dryRun), slots });
      if (slots.some((m) => m.outcome === 'failed')) exitCode = EXIT.failed;
    });

  addPoolCommands(program, { connect, out: (text) => io.out(text) });
  addIncidentCommands(program, { connect, out: (text) => io.out(text) });
  addMoveCommand(program, { connect, out: (text) => io.out(text), err: (text) => io.err(text), failed: (code) => void (exitCode = code) });
  addHostCommands(program, { slotsDir: config.slotsDir, out: (text) => io.out(text), err: (text) => io.err(text), failed: (code) => void (exitCode = code) });

  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    const message = err instanceof Error ? err.message : String(err);
    if (err instanceof SlotInputError) {
      io.err(`slotctl: ${message}`);
      return EXIT.usage;
    }
    if (err instanceof SlotNotFoundError || err instanceof PoolNotFoundError) {
      io.err(`slotctl: ${message}`);
      return EXIT.notFound;
    }
    if (err instanceof CodeRejectedError || err instanceof ProbeRefusedError || err instanceof SlotExistsError || err instanceof PoolRequestError) {
      io.err(`slotctl: ${message}`);
      return EXIT.failed;
    }
    if (err instanceof PayloadKeyMissingError) {
      io.err(`slotctl: ${message}`);
      return EXIT.usage;
    }
    if (err instanceof CodecServerError) {
      io.err(`slotctl: ${message}`);
      return EXIT.failed;
    }
    if (err instanceof TemporalTransportError) {
      io.err(`slotctl: ${message}`);
      return EXIT.notFound;
    }
    // The client wraps the server's answer: "Failed to connect to Temporal server", cause "16 UNAUTHENTICATED: …".
    const refusal = [message, err instanceof Error && err.cause instanceof Error ? err.cause.message : ''].find((m) => /UNAUTHENTICATED|PERMISSION_DENIED/.test(m));
    if (refusal) {
      io.err(`slotctl: Temporal at ${temporalAddress(config)} refused this client (${refusal}); check TEMPORAL_API_KEY(_FILE), the client certificate and TEMPORAL_NAMESPACE`);
      return EXIT.failed;
    }
    if (/connect|ECONNREFUSED|deadline|unavailable/i.test(message)) {
      io.err(`slotctl: cannot reach Temporal at ${temporalAddress(config)} (${message}); is \`npm start\` running, or TEMPORAL_ADDRESS set?`);
      return EXIT.notFound;
    }
    io.err(`slotctl: ${message}`);
    return EXIT.failed;
  } finally {
    await client?.close();
    await tracing?.flush();
  }
}

if (process.argv[1] && /slotctl(\.ts|\.mjs)?$/.test(process.argv[1])) {
  process.exitCode = await slotctl(process.argv.slice(2));
}
