// slotctl's commands on slots: provision, status, submit-code, cancel, relogin, refresh,
// retire (bulk-commands.ts), probe, agent-plan, migrate, in the order help lists them.
// Each returns its Output (slot-views.ts); slotctl prints it.
import type { Command } from 'commander';
import { constants as fsc } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { agentPlanEnvFile, type AgentPlan } from '../providers/agent-plan';
import type { Phase } from '../common/slot';
import { ProviderConfigError, SlotInputError } from '../common/failures';
import { getProvider, parseProviderConfig, providerNames } from '../providers';
import { handOverOnThisHost } from '../host/credential-handover';
import { parseSlotId, type SlotClient } from '../client/slot-client';
import { addBulkCommands } from './bulk-commands';
import { migrateSlots } from './migrate';
import { secondsOption } from './options';
import { jsonOption, type CommandContext, type Output } from './output';
import { agentPlanOutput, describeAnswer, doneOutput, listOutput, migrateOutput, probeOutput, statusOutput } from './slot-views';
import { readSecret } from './terminal';

/** Phases of a login still under way; any other phase means it ended, one way or the other. */
const LOGGING_IN: readonly Phase[] = ['logging-in', 'awaiting-operator', 'verifying'];
/** Phases in which the slot has no usable credential. */
const FAILED: readonly Phase[] = ['needs-relogin', 'retired'];

export function addSlotCommands(program: Command, ctx: CommandContext): void {
  addProvision(program, ctx);
  addStatus(program, ctx);
  addSubmitCode(program, ctx);
  addCancel(program, ctx);
  // relogin, refresh, retire: one slot, or every slot a query selects.
  addBulkCommands(program, ctx);
  addProbe(program, ctx);
  addAgentPlan(program, ctx);
  addMigrate(program, ctx);
}

interface ProviderConfigFlags {
  config?: string;
  issuer?: string;
  clientId?: string;
  scope?: string[];
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

function addProvision(program: Command, ctx: CommandContext): void {
  program
    .command('provision <slot>')
    .description('create a slot and start its login')
    .requiredOption('--provider <name>', 'the provider: claude, codex, …')
    .option('--host <name>', 'the host whose worker holds the slot', ctx.config.slotHost)
    .option('--adopt', 'use the credential already in the slot instead of logging in (claude-setup-token: the token, read from stdin on the slot\'s host)')
    .option('--config <file>', "the provider's configuration for this slot, a JSON file (oidc-device: issuer or endpoints, clientId, scopes, tokens)")
    .option('--issuer <url>', 'oidc-device: the OAuth / OpenID Connect issuer (its endpoints are discovered)')
    .option('--client-id <id>', 'oidc-device: the OAuth client id (a public client allowed the device flow)')
    .option('--scope <scope>', 'oidc-device: a scope to ask for (repeat for more; default: openid offline_access)', collect, [])
    .option('--wait', 'wait until the login succeeds or fails, showing its prompt')
    .addOption(secondsOption('--timeout <seconds>', 'with --wait: how long to wait', 3600))
    .addOption(jsonOption())
    .action(
      ctx.act(async (slot: string, opts: { provider: string; host: string; adopt?: boolean; wait?: boolean; timeout: number; json?: boolean } & ProviderConfigFlags) => {
        parseSlotId(slot);
        // Checked before anything is provisioned (the timeout was, when the command line was read).
        if (!providerNames().includes(opts.provider)) {
          throw new SlotInputError(`unknown provider ${JSON.stringify(opts.provider)}; known providers: ${providerNames().join(', ')}`);
        }
        const providerConfig = await providerConfigOf(opts.provider, opts);
        // A provider whose credential is a token an operator holds takes it on stdin, on the slot's host.
        if (opts.adopt) await handOverFromStdin(ctx, slot, opts.provider, providerConfig);
        const slots = await ctx.connect();
        await slots.provision({
          slotId: slot,
          provider: opts.provider,
          ...(providerConfig !== undefined ? { providerConfig } : {}),
          host: opts.host,
          ...(opts.adopt ? { adoptExisting: true } : {}),
        });
        if (opts.wait) return waitForLogin(ctx, slots, slot, opts.timeout, Boolean(opts.json));
        return statusOutput(await slots.status(slot));
      }),
    );
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

/**
 * `--adopt` for a provider that declares `fromOperatorInput`: the token is read from
 * stdin (hidden at a terminal) and left in this host's adoption inbox for the slot's
 * host activity. It never goes to Temporal, so no workflow history holds it.
 */
async function handOverFromStdin(ctx: CommandContext, slot: string, providerName: string, providerConfig: unknown): Promise<void> {
  const provider = getProvider(providerName, providerConfig);
  if (!provider.credential.fromOperatorInput) return;
  const text = await readSecret(ctx.io);
  let credential: unknown;
  try {
    credential = provider.credential.fromOperatorInput(text, Date.now());
  } catch (err) {
    throw new SlotInputError(`--adopt for ${provider.displayName}: ${(err as Error).message}`);
  }
  await handOverOnThisHost(ctx.config.slotsDir, slot, provider.name, credential);
}

/**
 * Follows a login to its end, showing each new prompt as it comes (on stderr with --json:
 * stdout carries only the final document). Failed when it gave up waiting or the login failed.
 */
async function waitForLogin(ctx: CommandContext, slots: SlotClient, slotId: string, timeoutMs: number, asJson: boolean): Promise<Output> {
  let shownPrompt = '';
  const say = asJson ? ctx.io.err : ctx.io.out;
  const url = (p: { url: string; userCode?: string }): string => `  URL:  ${p.url}${p.userCode ? `\n  code: ${p.userCode}` : ''}`;
  const { status, reached } = await slots.waitFor(slotId, (s) => !LOGGING_IN.includes(s.phase), {
    timeoutMs,
    onStatus: (s) => {
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
  if (!reached) return statusOutput(status, 'failed', [`gave up waiting after ${timeoutMs / 1000} s; the slot is still ${status.phase}`]);
  return statusOutput(status, FAILED.includes(status.phase) ? 'failed' : 'ok');
}

function addStatus(program: Command, ctx: CommandContext): void {
  program
    .command('status [slot]')
    .description('show one slot, or list all slots')
    .option('--all', 'include retired slots in the list')
    .option('--wait', "with a slot: wait until its login succeeds or fails, showing its prompt (a slot's login started elsewhere)")
    .addOption(secondsOption('--timeout <seconds>', 'with --wait: how long to wait', 3600))
    .addOption(jsonOption())
    .action(
      ctx.act(async (slot: string | undefined, opts: { json?: boolean; all?: boolean; wait?: boolean; timeout: number }) => {
        if (slot) parseSlotId(slot);
        if (opts.wait && !slot) throw new SlotInputError('--wait needs a slot');
        const slots = await ctx.connect();
        if (slot && opts.wait) return waitForLogin(ctx, slots, slot, opts.timeout, Boolean(opts.json));
        if (slot) return statusOutput(await slots.status(slot));
        return listOutput(await slots.list({ includeClosed: Boolean(opts.all) }));
      }),
    );
}

function addSubmitCode(program: Command, ctx: CommandContext): void {
  program
    .command('submit-code <slot> [code]')
    .description("give a slot's login the operator's code (read from stdin when omitted, to keep it out of shell history)")
    .option('--wait', 'wait until the login succeeds or fails')
    .addOption(secondsOption('--timeout <seconds>', 'with --wait: how long to wait', 120))
    .addOption(jsonOption())
    .action(
      ctx.act(async (slot: string, codeArg: string | undefined, opts: { json?: boolean; wait?: boolean; timeout: number }) => {
        parseSlotId(slot);
        const raw = codeArg ?? (await readSecret(ctx.io));
        // A code piped from a file or `echo` ends in a newline that is not part of it.
        const code = codeArg ?? raw.replace(/\r?\n$/, '');
        const slots = await ctx.connect();
        // Without a way to seal it, the code would reach history in clear: first make sure the slot does not encrypt
        // (its status answer is sealed if it does, and opening it fails naming the variable to set).
        if (ctx.codec === 'none') await slots.status(slot);
        const result = await slots.submitCode(slot, code);
        if (opts.wait) return waitForLogin(ctx, slots, slot, opts.timeout, Boolean(opts.json));
        // The slot took the code, but the CLI did not: that is a failed operation for the operator.
        const taken = result.answer === 'succeeded' || result.answer === 'exited';
        return doneOutput(slot, `${describeAnswer(result)}; follow with: slotctl status ${slot}`, taken ? 'ok' : 'failed');
      }),
    );
}

function addCancel(program: Command, ctx: CommandContext): void {
  program
    .command('cancel <slot>')
    .description('cancel the login in progress')
    .addOption(jsonOption())
    .action(
      ctx.act(async (slot: string) => {
        parseSlotId(slot);
        await (await ctx.connect()).cancelLogin(slot);
        return doneOutput(slot, `login cancellation requested; follow with: slotctl status ${slot}`);
      }),
    );
}

function addProbe(program: Command, ctx: CommandContext): void {
  program
    .command('probe <slot>')
    .description("prove the slot's credential live now (a minimal real request with its token, on its host); waits for and prints the outcome")
    .addOption(jsonOption())
    .action(
      ctx.act(async (slot: string) => {
        parseSlotId(slot);
        return probeOutput(slot, await (await ctx.connect()).probe(slot));
      }),
    );
}

function addAgentPlan(program: Command, ctx: CommandContext): void {
  program
    .command('agent-plan <slot>')
    .description("what an agent using the slot needs: env, placeholders, hidden names, egress routes, the directory to mount (no secrets)")
    .option('--slots-dir <dir>', "the slot host's SLOTS_DIR", ctx.config.slotsDir)
    .option('--mount-at <dir>', "where the agent sees the slot's agent directory (a container path); default: its host path")
    .option('--write-env <file>', "also write the plan's env to <file> (0600), for `docker run --env-file` or a shell")
    .addOption(jsonOption())
    .action(
      ctx.act(async (slot: string, opts: { slotsDir: string; mountAt?: string; writeEnv?: string }) => {
        parseSlotId(slot);
        if (opts.mountAt !== undefined && !opts.mountAt.startsWith('/')) throw new SlotInputError(`--mount-at ${opts.mountAt}: must be an absolute path`);
        const service = ctx.config.agentTokenService;
        const plan = await (await ctx.connect()).agentPlan(slot, {
          slotsDir: opts.slotsDir,
          ...(opts.mountAt ? { mountAt: opts.mountAt } : {}),
          ...(service ? { tokenServiceUrl: service.url ?? `http://${service.host.includes(':') ? `[${service.host}]` : service.host}:${service.port}` } : {}),
        });
        if (opts.writeEnv) await writePlanEnv(opts.writeEnv, plan);
        return agentPlanOutput(plan, opts.writeEnv);
      }),
    );
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

function addMigrate(program: Command, ctx: CommandContext): void {
  program
    .command('migrate [slot...]')
    .description('move slots still on slot workflow v1 to v2, keeping each credential (run after upgrading every worker)')
    .option('--dry-run', 'show what would be migrated, change nothing')
    .addOption(jsonOption())
    .action(
      ctx.act(async (slotArgs: string[], opts: { dryRun?: boolean }) => {
        const slotIds = slotArgs.map(parseSlotId);
        const slots = await migrateSlots((await ctx.connect()).client, {
          taskQueue: ctx.config.taskQueue,
          dryRun: Boolean(opts.dryRun),
          ...(slotIds.length > 0 ? { slotIds } : {}),
        });
        return migrateOutput(Boolean(opts.dryRun), slots);
      }),
    );
}
