// At start, a worker that serves slots asks each login CLI its version and says when it is
// not the one the project was checked against: the screens read and the requests sent are
// the pinned CLI's (providers/cli-versions.json). A warning, never a refusal to start.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { getProvider, providerNames } from '../providers';
import type { LoginCliSpec, Provider } from '../providers/provider';

/** `checked`: the pinned version; `other`: another one; `missing`: not installed; `unreadable`: it did not say. */
export type CliVersionStatus = 'checked' | 'other' | 'missing' | 'unreadable';

export interface CliVersionCheck {
  /** The providers whose logins run this CLI (`claude`, `claude-setup-token`). */
  readonly providers: readonly string[];
  readonly command: string;
  /** The version the project was checked against. */
  readonly checked: string;
  /** The version the CLI printed, when it did. */
  readonly version?: string;
  readonly status: CliVersionStatus;
  /** One line for the log: what was found and what to do. */
  readonly message: string;
}

/** The providers that run a login CLI (per-slot-configured providers run none). */
function providersWithCli(): { provider: Provider; cli: LoginCliSpec }[] {
  return providerNames().flatMap((name) => {
    try {
      const provider = getProvider(name);
      return provider.cli ? [{ provider, cli: provider.cli }] : [];
    } catch {
      return [];
    }
  });
}

/** Runs `<command> --version` for each login CLI once (providers sharing a CLI share the run). */
export async function checkLoginClis(env: NodeJS.ProcessEnv, opts: { timeoutMs?: number } = {}): Promise<CliVersionCheck[]> {
  const groups = new Map<string, { cli: LoginCliSpec; command: string; providers: string[] }>();
  for (const { provider, cli } of providersWithCli()) {
    const command = cli.command(env);
    const key = `${command}\0${cli.versionArgs.join('\0')}`;
    const group = groups.get(key) ?? { cli, command, providers: [] };
    group.providers.push(provider.name);
    groups.set(key, group);
  }
  return Promise.all([...groups.values()].map((g) => checkOne(g.cli, g.command, g.providers, env, opts.timeoutMs ?? 20_000)));
}

async function checkOne(cli: LoginCliSpec, command: string, providers: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<CliVersionCheck> {
  const base = { providers, command, checked: cli.checked };
  const install = `install the checked version (${cli.install})`;
  const scratch = await mkdtemp(join(tmpdir(), 'cli-version-'));
  try {
    const ran = await new Promise<{ ok: true; output: string } | { ok: false; code: string | number | undefined }>((resolve) => {
      execFile(command, [...cli.versionArgs], { env: { ...env, ...cli.versionEnv?.(scratch) }, timeout: timeoutMs, maxBuffer: 64 * 1024 }, (err, stdout, stderr) => {
        if (err) resolve({ ok: false, code: (err as NodeJS.ErrnoException).code ?? (err.killed ? 'timeout' : undefined) });
        else resolve({ ok: true, output: `${stdout}\n${stderr}` });
      });
    });
    if (!ran.ok) {
      if (ran.code === 'ENOENT' || ran.code === 'EACCES') {
        return { ...base, status: 'missing', message: `${command} is not installed (or not executable): logins of ${providers.join(', ')} fail; ${install}` };
      }
      return { ...base, status: 'unreadable', message: `${command} ${cli.versionArgs.join(' ')} failed (${ran.code ?? 'no output'}): its version is unknown; ${install}` };
    }
    const version = cli.parseVersion(ran.output);
    if (version === undefined) {
      return { ...base, status: 'unreadable', message: `${command} ${cli.versionArgs.join(' ')} did not print a version this project knows how to read; ${install}` };
    }
    if (version !== cli.checked) {
      return {
        ...base,
        version,
        status: 'other',
        message: `${command} is version ${version}, not ${cli.checked}, the version slot-provisioner was checked against (the login screens it reads and the requests it sends are that version's): logins and refreshes of ${providers.join(', ')} may fail; ${install}`,
      };
    }
    return { ...base, version, status: 'checked', message: `${command} is version ${version}, the checked version` };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** Logs each check: a warning for anything but the checked version. */
export function logLoginClis(checks: readonly CliVersionCheck[], log: Pick<Logger, 'info' | 'warn'>): void {
  for (const c of checks) {
    const fields = { event: 'login-cli-version', providers: c.providers, command: c.command, version: c.version ?? null, checked: c.checked, status: c.status };
    if (c.status === 'checked') log.info(fields, c.message);
    else log.warn(fields, c.message);
  }
}
