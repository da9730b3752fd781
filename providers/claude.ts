// Claude Code: `claude auth login` prints an authorize URL and reads a pasted
// `<code>#<state>` at a masked prompt; success writes `.credentials.json`.
import { z } from 'zod';
import { clampExpiresIn, oauthClassifier, plausibleExpiresAt } from './oauth';
import { AGENT_PLACEHOLDER, agentDirOf } from './agent-dir';
import type { LoginCliSpec, Provider, PtyLoginSpec, UrlShape } from './provider';
import PINNED_CLI_VERSIONS from './cli-versions.json';
import { binary, escapeRegExp, findLine, lastWords } from './screen-text';
import { readUrl } from './screen-url';
import { claudeMessagesProbe } from './claude-probe';

const CONFIG_DIR = '.claude';
/** The agent's CLAUDE_CONFIG_DIR, inside the agent directory. */
const AGENT_CLAUDE_DIR = 'claude';

export const ClaudeCredentials = z.object({
  claudeAiOauth: z
    .object({
      accessToken: z.string().min(1),
      refreshToken: z.string().min(1),
      /** Epoch milliseconds. */
      expiresAt: z.number().int().positive(),
      scopes: z.array(z.string()),
      subscriptionType: z.string().nullish(),
    })
    .loose(),
}).loose();

/** Claude Code's own endpoint and public client id; `CLAUDE_TOKEN_URL` points tests and proxies elsewhere. */
const TOKEN_URL = 'https://platform.claude.com/v1/oauth/token';
const CLIENT_ID = '9d1c250a-e61b-44d9-88ed-5944d1962f5e';
/**
 * What the pinned CLI (2.1.197) sends when it refreshes, as recorded through the provider
 * stand-in (test/integration/real-cli-e2e.test.ts compares ours with it in every run): its
 * HTTP client's own User-Agent and Accept, and the scopes of its login without `org:create_api_key`.
 * The token endpoint answers 429 to refresh requests that do not look like Claude Code's.
 */
const REFRESH_HEADERS = { 'user-agent': 'axios/1.15.2', accept: 'application/json, text/plain, */*' } as const;
const REFRESH_SCOPE = 'user:profile user:inference user:sessions:claude_code user:mcp_servers user:file_upload';
const MINUTE = 60_000;

const AUTHORIZE_URL = /^https:\/\/[a-z0-9.-]+\/(?:cai\/)?oauth\/authorize\?/;
/** PKCE S256 challenges are 43 base64url characters: the specification fixes it (RFC 7636 §4.1, §4.2). */
const S256_CHALLENGE = /^[A-Za-z0-9_-]{43}$/;
/** `state` is the client's choice (RFC 6749 §4.1.1): any length, here in unreserved URL characters. */
const STATE = /^[A-Za-z0-9._~-]+$/;

/**
 * Claude's authorize URL is whole when it carries its client, where to send the
 * code, an S256 challenge of the length the specification fixes, and a state: the
 * layout (screen-url.ts) says where the URL ends, these say a row is not missing.
 * No length the CLI may change (the state's) is assumed.
 */
export const CLAUDE_AUTHORIZE_URL: UrlShape = {
  start: AUTHORIZE_URL,
  missing(url) {
    const p = url.searchParams;
    const lacking: string[] = [];
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(p.get('client_id') ?? '')) lacking.push('client_id');
    if (!/^https:\/\/[^\s]+\/callback$/.test(p.get('redirect_uri') ?? '')) lacking.push('redirect_uri');
    if (!S256_CHALLENGE.test(p.get('code_challenge') ?? '') || p.get('code_challenge_method') !== 'S256') lacking.push('code_challenge');
    if (!STATE.test(p.get('state') ?? '')) lacking.push('state');
    return lacking;
  },
};

/** `claude <args>` under the PTY, configured in the slot's home: every Claude login runs it so. */
export function claudeCommand(args: readonly string[]): PtyLoginSpec['command'] {
  return (slot, env) => ({
    command: binary(env, 'CLAUDE_BIN', 'claude'),
    args,
    // Created by us, 0700, so the CLI does not create it world-readable.
    dirs: [CONFIG_DIR],
    env: {
      CLAUDE_CONFIG_DIR: `${slot.home}/${CONFIG_DIR}`,
      // Without this the CLI reinstalls itself globally with npm mid-login.
      DISABLE_AUTOUPDATER: '1',
      DISABLE_TELEMETRY: '1',
      DISABLE_ERROR_REPORTING: '1',
      // No browser on a slot host: the URL on screen is the way in.
      BROWSER: 'true',
    },
  });
}

/** Claude Code's binary and the version checked against (`2.1.197 (Claude Code)`). */
export const CLAUDE_CLI: LoginCliSpec = {
  command: (env) => binary(env, 'CLAUDE_BIN', 'claude'),
  versionArgs: ['--version'],
  versionEnv: (scratch) => ({ HOME: scratch, CLAUDE_CONFIG_DIR: scratch, DISABLE_AUTOUPDATER: '1', DISABLE_TELEMETRY: '1' }),
  parseVersion: (output) => /^(\d+\.\d+\.\d+\S*) \(Claude Code\)/m.exec(output)?.[1],
  checked: PINNED_CLI_VERSIONS.claude,
  install: `npm install -g @anthropic-ai/claude-code@${PINNED_CLI_VERSIONS.claude}`,
};

export const claude: Provider = {
  name: 'claude',
  displayName: 'Claude Code',
  cli: CLAUDE_CLI,
  login: {
    kind: 'pty',
    interaction: 'paste-code',
    command: claudeCommand(['auth', 'login']),
    promptUrl: CLAUDE_AUTHORIZE_URL,
    readPrompt(screen) {
      // The URL is drawn before the paste prompt; once that shows, nothing more of it is coming.
      if (!findLine(screen, /Paste code here/)) return undefined;
      const read = readUrl(screen, CLAUDE_AUTHORIZE_URL, { final: true });
      return read.kind === 'complete' ? { url: read.url } : undefined;
    },
    readVerdict(screen, since) {
      const invalid = findLine(screen, /(Invalid code[^\n]*|OAuth error:[^\n]*)/, since);
      if (invalid) return { kind: 'rejected', message: (invalid[1] ?? invalid[0]).trim() };
      // The token endpoint refused the code (400 invalid_grant: wrong, used or expired): the CLI exits,
      // and a fresh login shows a fresh URL. Other statuses (a 5xx, a 429) are failures.
      const refused = findLine(screen, /(Login failed: Request failed with status code 400\b.*)/, since);
      if (refused) return { kind: 'rejected', message: (refused[1] ?? refused[0]).trim() };
      // 2.1.1xx says "Login failed: …"; later versions say "Couldn't log in: …".
      const failed = findLine(screen, /((?:Login failed|Couldn't log in):.*)/, since);
      if (failed) return { kind: 'failed', message: (failed[1] ?? failed[0]).trim() };
      const ok = findLine(screen, /(Login successful.*|Logged in as.*)/i, since);
      if (ok) return { kind: 'succeeded', message: (ok[1] ?? ok[0]).trim() };
      return undefined;
    },
    explainEarlyExit: (screen, exitCode) =>
      `claude exited with code ${exitCode} before showing a login URL: ${lastWords(screen) || '(no output)'}`,
    restartAfterRejection: true,
    codeFormat(prompt) {
      const state = new URL(prompt.url).searchParams.get('state');
      return {
        pattern: `^[^#\\s]+#${state ? escapeRegExp(state) : '[A-Za-z0-9_-]+'}$`,
        description: state
          ? `<code>#<state>, where <state> is the one in the current login URL (…${state.slice(-6)}); copy the whole code from the browser`
          : '<code>#<state>; copy the whole code from the browser',
      };
    },
    instructions: (prompt) =>
      `Open ${prompt.url} in a browser, sign in, copy the code it shows (<code>#<state>) and submit it with: slotctl submit-code <slot>`,
    // bench/login-cli-memory.ts: claude 2.1.197 `auth login` at its prompt, 136-137 MiB resident (one process).
    cliMemoryMiB: 140,
    timeouts: { promptMs: 30_000, operatorMs: 30 * 60_000, verdictMs: 20_000 },
  },
  credential: {
    file: `${CONFIG_DIR}/.credentials.json`,
    schema: ClaudeCredentials,
    facts: (parsed: z.infer<typeof ClaudeCredentials>) => {
      const expiresAt = plausibleExpiresAt(parsed.claudeAiOauth.expiresAt);
      return {
        ...(expiresAt !== undefined ? { expiresAt } : {}),
        ...(parsed.claudeAiOauth.subscriptionType ? { account: `${parsed.claudeAiOauth.subscriptionType} subscription` } : {}),
      };
    },
  },
  refresh: {
    endpoint: (env) => env.CLAUDE_TOKEN_URL || TOKEN_URL,
    request: (credential) => ({
      encoding: 'json',
      body: { grant_type: 'refresh_token', refresh_token: ClaudeCredentials.parse(credential).claudeAiOauth.refreshToken, client_id: CLIENT_ID, scope: REFRESH_SCOPE },
      headers: REFRESH_HEADERS,
    }),
    classify: oauthClassifier(),
    apply(current, tokens, now) {
      ClaudeCredentials.parse(current);
      // The raw object, not zod's copy: every key the CLI (or a newer CLI) keeps there stays, in place.
      const file = current as Record<string, unknown> & { claudeAiOauth: Record<string, unknown> };
      return {
        ...file,
        claudeAiOauth: {
          ...file.claudeAiOauth,
          accessToken: tokens.access_token,
          ...(tokens.refresh_token !== undefined ? { refreshToken: tokens.refresh_token } : {}),
          // Clamped (again: the answer may come from the spool): a huge value would fail the file's schema and lose the rotation.
          ...(tokens.expires_in !== undefined ? { expiresAt: now + Math.round(clampExpiresIn(tokens.expires_in) * 1000) } : {}),
          ...(tokens.scope !== undefined ? { scopes: tokens.scope.split(/\s+/).filter(Boolean) } : {}),
        },
      };
    },
    // 90 minutes of jitter: 10 000 slots logged in or adopted together come due over 90 minutes,
    // fewer than 2 a second, which the default pace (2/s) drains before any nears expiry
    // (test/unit/pacing.test.ts). A refresh comes 45 minutes early on average.
    schedule: { beforeExpiryMs: 60 * MINUTE, jitterMs: 90 * MINUTE },
  },
  // As the pinned CLI's `claude auth logout` does, recorded through the provider stand-in (the
  // e2e test compares ours with it in every run): the refresh token only (it ends the grant),
  // JSON, at `<token endpoint>/revoke`, with its HTTP client's headers, as its refresh.
  revoke: {
    encoding: 'json',
    headers: REFRESH_HEADERS,
    endpoint: async (env) => `${env.CLAUDE_TOKEN_URL || TOKEN_URL}/revoke`,
    requests(credential) {
      const oauth = ClaudeCredentials.parse(credential).claudeAiOauth;
      const clientId = typeof oauth.clientId === 'string' && oauth.clientId !== '' ? oauth.clientId : CLIENT_ID;
      return [{ token: 'refresh_token', body: { token: oauth.refreshToken, token_type_hint: 'refresh_token', client_id: clientId } }];
    },
  },
  agent: {
    // The access token only, never the refresh token. A running `claude` re-reads
    // `.credentials.json` in its CLAUDE_CONFIG_DIR when the server answers 401
    // ("recovered from disk", 2.1.x), so the copy the slot rewrites after each refresh keeps it working.
    envFile: '.agent.env',
    env: (credential, slot, place) => ({
      CLAUDE_CODE_OAUTH_TOKEN: ClaudeCredentials.parse(credential).claudeAiOauth.accessToken,
      CLAUDE_CONFIG_DIR: `${agentDirOf(slot, place)}/${AGENT_CLAUDE_DIR}`,
    }),
    files(credential) {
      const oauth = ClaudeCredentials.parse(credential).claudeAiOauth;
      // No refreshToken key: the CLI then never tries to refresh by itself.
      const copy = {
        claudeAiOauth: {
          accessToken: oauth.accessToken,
          expiresAt: oauth.expiresAt,
          scopes: oauth.scopes,
          ...(oauth.subscriptionType ? { subscriptionType: oauth.subscriptionType } : {}),
        },
      };
      return [{ path: `${AGENT_CLAUDE_DIR}/.credentials.json`, text: `${JSON.stringify(copy, null, 2)}\n` }];
    },
    tokens(credential) {
      const oauth = ClaudeCredentials.parse(credential).claudeAiOauth;
      return { accessToken: oauth.accessToken, expiresAt: oauth.expiresAt };
    },
    plan: (place) => ({
      mechanism:
        `claude is started with a placeholder CLAUDE_CODE_OAUTH_TOKEN; on a 401 it re-reads ${place.agentDir}/${AGENT_CLAUDE_DIR}/.credentials.json, ` +
        'which the slot rewrites (access token only) after every refresh, and retries with the token it finds there',
      env: {
        CLAUDE_CONFIG_DIR: `${place.agentDir}/${AGENT_CLAUDE_DIR}`,
        CLAUDE_CODE_OAUTH_TOKEN: AGENT_PLACEHOLDER,
        DISABLE_AUTOUPDATER: '1',
      },
      placeholders: ['CLAUDE_CODE_OAUTH_TOKEN'],
      hiddenEnv: ['CLAUDE_CODE_OAUTH_TOKEN'],
      egress: [
        { host: 'api.anthropic.com', authScheme: 'bearer', tokenSource: 'agent-files', tlsPassThrough: true, purpose: 'the Messages API, with the access token from the agent directory' },
      ],
      needsTokenService: false,
    }),
  },
  probe: claudeMessagesProbe((credential) => ClaudeCredentials.parse(credential).claudeAiOauth.accessToken),
};
