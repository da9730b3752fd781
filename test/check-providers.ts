// `npm run check:providers -- --claude <version> --codex <version>`: installs those CLI
// versions in a scratch folder, runs them and the pinned ones through the provider
// stand-in, and prints what differs: the login screens (URL shape, prompts, success and
// failure texts) and the requests (method, URL, body fields and constants, identifying
// headers). Exit 0: nothing differs; 1: differences (listed); 2: the check could not run.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { recordClaudeLogin, recordClaudeLogout, recordClaudeRefresh, recordCodexLogin, recordCodexRefresh, shapeOf, type LoginRecording } from './peers/cli-recording';
import { startProviderStandIn, type ProviderStandIn, type RecordedRequest } from './peers/provider-standin';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** A flat description of what a CLI showed and sent: `key → value`, compared key by key. */
type Profile = Map<string, string>;

/** Per-run values (URLs' random parts, codes, tokens, temporary paths) become placeholders. */
function normalizeText(text: string): string {
  return text
    // First the random parameters, also where a URL is hard-wrapped over rows.
    .replace(/\b(code_challenge|state)=([A-Za-z0-9_-]+)/g, (_m, key: string, value: string) => `${key}=<${value.length}-base64url>`)
    .replace(/https:\/\/\S+/g, (url) => `<url ${urlShape(url)}>`)
    .replace(/\bsk-ant-o[ar]t01-[A-Za-z0-9_-]+/g, '<token>')
    .replace(/\b[A-Z0-9]{4,5}-[A-Z0-9]{4,6}\b/g, '<user code>')
    .replace(/\/tmp\/[^\s"')]+/g, '<path>')
    .replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/g, '<time>')
    // The banner's own version (`Welcome to Codex [v0.169.0]`): the versions are printed apart.
    .replace(/\bv\d+\.\d+\.\d+\b/g, 'v<version>')
    .split('\n')
    .map((line) => line.trimEnd())
    .filter((line) => line !== '')
    .join('\n');
}

/** A URL's shape: origin, path, and each parameter as its constant value or the form of a random one. */
function urlShape(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return raw;
  }
  const params = [...url.searchParams.entries()].map(([key, value]) =>
    ['code_challenge', 'state'].includes(key) && !/^<\d+-base64url>$/.test(value) ? `${key}=<${value.length}-${/^[A-Za-z0-9_-]+$/.test(value) ? 'base64url' : 'chars'}>` : `${key}=${value}`,
  );
  return `${url.origin}${url.pathname}${params.length > 0 ? `?${params.join('&')}` : ''}`;
}

function addRequests(profile: Profile, act: string, requests: readonly RecordedRequest[]): void {
  const seen = new Set<string>();
  for (const request of requests) {
    const shape = shapeOf(request);
    const key = `${act}: ${shape.method} https://${shape.host}${shape.path}`;
    if (seen.has(key)) continue;
    seen.add(key);
    profile.set(`${key} content-type`, shape.contentType);
    profile.set(`${key} body fields`, shape.bodyFields.join(', '));
    for (const [field, value] of Object.entries(shape.constants)) profile.set(`${key} body ${field}`, value);
    for (const [header, value] of Object.entries(shape.headers)) profile.set(`${key} header ${header}`, value);
    if (!request.handled) profile.set(`${key} played by the stand-in`, 'no (a request the stand-in does not know)');
  }
}

function addLogin(profile: Profile, act: string, login: LoginRecording): void {
  if (login.prompt) profile.set(`${act}: login URL`, urlShape(login.prompt.url));
  if (login.prompt?.userCode) profile.set(`${act}: user code form`, login.prompt.userCode.replace(/[A-Z0-9]/g, 'X'));
  profile.set(`${act}: screen with the prompt`, normalizeText(login.promptScreen));
  profile.set(`${act}: screen after the answer`, normalizeText(login.verdictScreen));
  profile.set(`${act}: exit code`, String(login.exitCode ?? 'still running'));
  addRequests(profile, act, login.requests);
}

/** `--version` in a throwaway home: the CLIs write their config where they run. */
async function versionOf(bin: string): Promise<string> {
  const home = await mkdtemp(join(tmpdir(), 'check-providers-home-'));
  try {
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, CLAUDE_CONFIG_DIR: home, CODEX_HOME: home, DISABLE_AUTOUPDATER: '1' };
    return (await run(bin, ['--version'], { env })).stdout.trim();
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

async function profileClaude(bin: string, standIn: ProviderStandIn): Promise<Profile> {
  const profile: Profile = new Map();
  profile.set('version', await versionOf(bin));
  const login = await recordClaudeLogin(bin, standIn);
  try {
    addLogin(profile, 'auth login', login);
    const { run: agent } = await recordClaudeRefresh(bin, standIn, login);
    profile.set('claude -p with an expired credential: exit code', String(agent.exitCode));
    // Its refresh and its model call; the background reads around them (MCP, feature flags) come and go with timing.
    addRequests(profile, 'claude -p with an expired credential', agent.requests.filter((r) => r.path.startsWith('/v1/oauth/token') || r.path.startsWith('/v1/messages')));
    // Its revocation, which a slot's retire copies; the profile read after it comes and goes with timing.
    const { run: logout } = await recordClaudeLogout(bin, standIn, login);
    profile.set('auth logout: exit code', String(logout.exitCode));
    profile.set('auth logout: screen', normalizeText(logout.output));
    addRequests(profile, 'auth logout', logout.requests.filter((r) => r.path.startsWith('/v1/oauth/token')));
  } finally {
    await login.cleanup();
  }
  const refused = await recordClaudeLogin(bin, standIn, { refuse: true });
  await refused.cleanup();
  addLogin(profile, 'auth login, code refused', refused);
  const setup = await recordClaudeLogin(bin, standIn, { setupToken: true });
  await setup.cleanup();
  addLogin(profile, 'setup-token', setup);
  return profile;
}

async function profileCodex(bin: string, standIn: ProviderStandIn): Promise<Profile> {
  const profile: Profile = new Map();
  profile.set('version', await versionOf(bin));
  const login = await recordCodexLogin(bin, standIn);
  try {
    addLogin(profile, 'login --device-auth', login);
    const { refresh, run: agent } = await recordCodexRefresh(bin, standIn, login);
    if (refresh) addRequests(profile, 'codex exec with an expiring token', [refresh]);
    else profile.set('codex exec with an expiring token', `no refresh seen: ${agent.output.slice(-500)}`);
  } finally {
    await login.cleanup();
  }
  const denied = await recordCodexLogin(bin, standIn, { deny: true });
  await denied.cleanup();
  addLogin(profile, 'login --device-auth, denied', denied);
  return profile;
}

/** Installs the versions asked for in `dir` (npm, as test/real-clis.sh does). */
async function install(dir: string, packages: string[]): Promise<void> {
  process.stderr.write(`installing ${packages.join(' ')} into ${dir}\n`);
  await run('npm', ['install', '--prefix', dir, '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--loglevel=error', ...packages], { maxBuffer: 16 << 20 });
  // Claude's postinstall puts the native binary in place; when npm skipped install scripts, run it.
  const claudePackage = join(dir, 'node_modules', '@anthropic-ai', 'claude-code');
  await run('node', ['install.cjs'], { cwd: claudePackage }).catch(() => undefined);
}

function diff(name: string, pinned: Profile, candidate: Profile): string[] {
  const out: string[] = [];
  for (const key of new Set([...pinned.keys(), ...candidate.keys()])) {
    if (key === 'version') continue;
    const a = pinned.get(key);
    const b = candidate.get(key);
    if (a === b) continue;
    out.push(`${name} · ${key}\n    pinned:    ${a === undefined ? '(absent)' : a.replace(/\n/g, '\n               ')}\n    candidate: ${b === undefined ? '(absent)' : b.replace(/\n/g, '\n               ')}`);
  }
  return out;
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { claude: { type: 'string' }, codex: { type: 'string' } } });
  if (!values.claude && !values.codex) {
    process.stderr.write('usage: npm run check:providers -- [--claude <version>] [--codex <version>]\n');
    return 2;
  }
  for (const [flag, version] of Object.entries(values)) {
    if (version !== undefined && !/^\d+\.\d+\.\d+(?:-[\w.]+)?$/.test(version)) {
      process.stderr.write(`--${flag} ${JSON.stringify(version)} is not a version (like 2.1.197)\n`);
      return 2;
    }
  }
  // The pinned CLIs, installed (or found) by test/real-clis.sh.
  const exports = (await run('bash', [join(ROOT, 'test', 'real-clis.sh')], { maxBuffer: 1 << 20 })).stdout;
  const pinnedBin = (name: string): string => {
    const line = new RegExp(`^export ${name}=(.*)$`, 'm').exec(exports)?.[1] ?? '';
    return line.replace(/^'(.*)'$/, '$1').replace(/\\(.)/g, '$1');
  };
  const scratch = await mkdtemp(join(tmpdir(), 'check-providers-'));
  const standIn = await startProviderStandIn();
  const differences: string[] = [];
  try {
    await install(scratch, [
      ...(values.claude ? [`@anthropic-ai/claude-code@${values.claude}`] : []),
      ...(values.codex ? [`@openai/codex@${values.codex}`] : []),
    ]);
    const bin = (name: string): string => join(scratch, 'node_modules', '.bin', name);
    if (values.claude) {
      process.stderr.write(`recording claude: pinned, then ${values.claude}\n`);
      const pinned = await profileClaude(pinnedBin('REAL_CLAUDE_BIN'), standIn);
      const candidate = await profileClaude(bin('claude'), standIn);
      process.stdout.write(`claude: pinned ${pinned.get('version')}, candidate ${candidate.get('version')}\n`);
      differences.push(...diff('claude', pinned, candidate));
    }
    if (values.codex) {
      process.stderr.write(`recording codex: pinned, then ${values.codex}\n`);
      const pinned = await profileCodex(pinnedBin('REAL_CODEX_BIN'), standIn);
      const candidate = await profileCodex(bin('codex'), standIn);
      process.stdout.write(`codex: pinned ${pinned.get('version')}, candidate ${candidate.get('version')}\n`);
      differences.push(...diff('codex', pinned, candidate));
    }
  } finally {
    await standIn.close();
    await rm(scratch, { recursive: true, force: true });
  }
  if (differences.length === 0) {
    process.stdout.write('no differences: the screens and requests are those of the pinned versions\n');
    return 0;
  }
  process.stdout.write(`${differences.length} difference(s):\n\n${differences.join('\n\n')}\n`);
  return 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`check:providers could not run: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  },
);
