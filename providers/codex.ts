// Codex CLI: `codex login --device-auth` shows a verification URL and a
// one-time code, then polls until the operator approves; success writes `auth.json`.
import { arch as osArch, release as osRelease, type as osType } from 'node:os';
import { z } from 'zod';
import { idTokenIdentity, oauthClassifier, plausibleExpiresAt } from './oauth';
import { agentDirOf } from './agent-dir';
import type { Provider, UrlShape } from './provider';
import PINNED_CLI_VERSIONS from './cli-versions.json';
import { binary, findLine, lastWords } from './screen-text';
import { readUrl } from './screen-url';

const HOME_DIR = '.codex';
/** The agent's CODEX_HOME, inside the agent directory: never the slot's own. */
const AGENT_CODEX_DIR = 'codex';
/** Codex device codes expire after 15 minutes; waiting longer would show the operator a dead code. */
const DEVICE_CODE_TTL_MS = 15 * 60_000;

export const CodexAuth = z
  .object({
    auth_mode: z.string().nullish(),
    tokens: z
      .object({
        id_token: z.string().min(1),
        access_token: z.string().min(1),
        refresh_token: z.string().min(1),
        account_id: z.string().nullish(),
      })
      .loose(),
    last_refresh: z.string().nullish(),
  })
  .loose();

/** The Codex CLI's own endpoint and public client id; `CODEX_TOKEN_URL` points tests and proxies elsewhere. */
const TOKEN_URL = 'https://auth.openai.com/oauth/token';
const CLIENT_ID = 'app_EMoamEEZ73f0CkXaXp7hrann';
/**
 * What the pinned CLI (0.169.0) sends when it refreshes a token about to expire, as recorded
 * through the provider stand-in (test/integration/real-cli-e2e.test.ts compares ours with it):
 * `refresh_reason` `proactive_expiry` (the CLI also sends `unauthorized_recovery` after a 401),
 * no `scope`, and the `originator` header with a User-Agent that starts with it.
 */
const REFRESH_ORIGINATOR = 'codex_exec';
const REFRESH_REASON = 'proactive_expiry';
/** The CLI's User-Agent form: `<originator>/<version> (<os> <os version>; <arch>) <terminal>`. */
const refreshUserAgent = (): string =>
  `${REFRESH_ORIGINATOR}/${CLI_VERSION} (${osType()} ${osRelease()}; ${osArch() === 'x64' ? 'x86_64' : osArch() === 'arm64' ? 'aarch64' : osArch()}) unknown`;
/** Codes auth.openai.com answers (as `error` or `error.code`) when the refresh token is dead. */
const DEAD_REFRESH_TOKEN_CODES = ['refresh_token_expired', 'refresh_token_reused', 'refresh_token_invalidated'];
const MINUTE = 60_000;
/** The Codex CLI refreshes by itself when `last_refresh` is older than this; we come first. */
const CLI_STALE_AFTER_MS = 8 * 24 * 60 * MINUTE;

/** The Codex backend (the CLI's `chatgpt_base_url`); `CODEX_PROBE_BASE_URL` points tests and proxies elsewhere. */
const BACKEND_URL = 'https://chatgpt.com/backend-api';
/** The CLI version whose requests the refresh and the probe copy: the pin (their User-Agents name it). */
const CLI_VERSION = PINNED_CLI_VERSIONS.codex;

const DEVICE_URL = /^https:\/\/[a-z0-9.-]+(?::\d+)?\/[^\s]*device/;
// Codex prints codes like `ABCD-12345`; it is shown to the operator, so it is no secret.
const USER_CODE = /\b([A-Z0-9]{4,5}-[A-Z0-9]{4,6})\b/;

/**
 * The verification page is whole when its path ends in `/device` (a row cut short or a
 * word run on changes the last segment); a `user_code` in the query must be a whole code.
 */
export const CODEX_DEVICE_URL: UrlShape = {
  start: DEVICE_URL,
  missing(url) {
    const lacking: string[] = [];
    if (!/\/device\/?$/.test(url.pathname)) lacking.push('the path ending in /device');
    const code = url.searchParams.get('user_code');
    if (code !== null && !/^[A-Z0-9]{4,5}-[A-Z0-9]{4,6}$/.test(code)) lacking.push('user_code');
    return lacking;
  },
};

/** JWT payloads are base64url JSON; we read only the expiry, never log the token. */
function jwtExpiry(token: string): number | undefined {
  const payload = token.split('.')[1];
  if (!payload) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof claims.exp === 'number' ? claims.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

export const codex: Provider = {
  name: 'codex',
  displayName: 'Codex CLI',
  // `codex-cli 0.169.0`
  cli: {
    command: (env) => binary(env, 'CODEX_BIN', 'codex'),
    versionArgs: ['--version'],
    versionEnv: (scratch) => ({ HOME: scratch, CODEX_HOME: scratch }),
    parseVersion: (output) => /^codex-cli (\d+\.\d+\.\d+\S*)/m.exec(output)?.[1],
    checked: PINNED_CLI_VERSIONS.codex,
    install: `npm install -g @openai/codex@${PINNED_CLI_VERSIONS.codex}`,
  },
  login: {
    kind: 'pty',
    interaction: 'device-approval',
    command: (slot, env) => ({
      command: binary(env, 'CODEX_BIN', 'codex'),
      args: ['login', '--device-auth'],
      // The CLI refuses a CODEX_HOME that does not exist.
      dirs: [HOME_DIR],
      env: { CODEX_HOME: `${slot.home}/${HOME_DIR}` },
    }),
    promptUrl: CODEX_DEVICE_URL,
    readPrompt(screen) {
      const read = readUrl(screen, CODEX_DEVICE_URL);
      const userCode = findLine(screen, USER_CODE)?.[1];
      return read.kind === 'complete' && userCode ? { url: read.url, userCode } : undefined;
    },
    readVerdict(screen, since) {
      const failed = findLine(screen, /(Error logging in:.*)/, since);
      if (failed) return { kind: 'failed', message: (failed[1] ?? failed[0]).trim() };
      const ok = findLine(screen, /(Successfully logged in.*)/i, since);
      if (ok) return { kind: 'succeeded', message: (ok[1] ?? ok[0]).trim() };
      return undefined;
    },
    explainEarlyExit(screen, exitCode) {
      // Codex prints warnings (PATH aliases …) before its error; the error is what matters.
      const said = findLine(screen, /(Error [a-z ]+:.*)/)?.[1] ?? (lastWords(screen) || '(no output)');
      if (/deviceauth\/usercode/.test(screen.text)) {
        return (
          `device-code login is unavailable: the Codex CLI could not get a device code from the server ` +
          `(offline, blocked by a proxy, or device login not enabled for this workspace). codex said: ${said}`
        );
      }
      return `codex exited with code ${exitCode} before showing a device code: ${said}`;
    },
    restartAfterRejection: false,
    instructions: (prompt) =>
      `Open ${prompt.url} in a browser, sign in and enter the one-time code ${prompt.userCode ?? ''}; the login completes by itself (the code expires in 15 minutes)`,
    // bench/login-cli-memory.ts: codex 0.169.0 `login` at its prompt, 85 MiB resident (the node launcher and the binary).
    cliMemoryMiB: 90,
    timeouts: { promptMs: 30_000, operatorMs: DEVICE_CODE_TTL_MS, verdictMs: 20_000 },
  },
  credential: {
    file: `${HOME_DIR}/auth.json`,
    schema: CodexAuth,
    facts: (parsed: z.infer<typeof CodexAuth>) => {
      const expiresAt = plausibleExpiresAt(jwtExpiry(parsed.tokens.access_token));
      const lastRefresh = parsed.last_refresh ? Date.parse(parsed.last_refresh) : NaN;
      return {
        ...(expiresAt !== undefined ? { expiresAt } : {}),
        ...(Number.isFinite(lastRefresh) ? { lastRefresh } : {}),
        ...(parsed.auth_mode ? { account: `${parsed.auth_mode} login` } : {}),
      };
    },
    identity: (parsed: z.infer<typeof CodexAuth>) => idTokenIdentity(parsed.tokens.id_token),
  },
  refresh: {
    endpoint: (env) => env.CODEX_TOKEN_URL || env.CODEX_REFRESH_TOKEN_URL_OVERRIDE || TOKEN_URL,
    request: (credential) => ({
      encoding: 'json',
      body: {
        client_id: CLIENT_ID,
        grant_type: 'refresh_token',
        refresh_reason: REFRESH_REASON,
        refresh_token: CodexAuth.parse(credential).tokens.refresh_token,
      },
      headers: { originator: REFRESH_ORIGINATOR, 'user-agent': refreshUserAgent(), accept: '*/*' },
    }),
    classify: oauthClassifier(DEAD_REFRESH_TOKEN_CODES),
    apply(current, tokens, now) {
      CodexAuth.parse(current);
      // The raw object, not zod's copy: every key the CLI keeps there stays, in place.
      const file = current as Record<string, unknown> & { tokens: Record<string, unknown> };
      return {
        ...file,
        tokens: {
          ...file.tokens,
          access_token: tokens.access_token,
          ...(tokens.refresh_token !== undefined ? { refresh_token: tokens.refresh_token } : {}),
          ...(tokens.id_token !== undefined ? { id_token: tokens.id_token } : {}),
        },
        last_refresh: new Date(now).toISOString(),
      };
    },
    schedule: { beforeExpiryMs: 60 * MINUTE, maxAgeMs: CLI_STALE_AFTER_MS, jitterMs: 5 * MINUTE },
  },
  agent: {
    // The agent's own CODEX_HOME holds the current access and id tokens and, as its
    // refresh token, the slot's agent secret. Codex re-reads auth.json on a 401, then
    // refreshes through CODEX_REFRESH_TOKEN_URL_OVERRIDE: the worker's token service
    // answers with the slot's current tokens. The real refresh token never leaves the slot.
    envFile: '.agent.env',
    env: (_credential, slot, place) => ({
      CODEX_HOME: `${agentDirOf(slot, place)}/${AGENT_CODEX_DIR}`,
      ...(place?.tokenServiceUrl ? { CODEX_REFRESH_TOKEN_URL_OVERRIDE: `${place.tokenServiceUrl}/oauth/token` } : {}),
    }),
    files(credential, place) {
      const auth = CodexAuth.parse(credential);
      const copy = {
        auth_mode: auth.auth_mode ?? 'chatgpt',
        OPENAI_API_KEY: null,
        tokens: {
          id_token: auth.tokens.id_token,
          access_token: auth.tokens.access_token,
          refresh_token: place.secret,
          ...(auth.tokens.account_id ? { account_id: auth.tokens.account_id } : {}),
        },
        last_refresh: auth.last_refresh ?? new Date().toISOString(),
      };
      return [{ path: `${AGENT_CODEX_DIR}/auth.json`, text: `${JSON.stringify(copy, null, 2)}\n` }];
    },
    tokens(credential) {
      const auth = CodexAuth.parse(credential);
      const expiresAt = jwtExpiry(auth.tokens.access_token);
      return { accessToken: auth.tokens.access_token, idToken: auth.tokens.id_token, ...(expiresAt !== undefined ? { expiresAt } : {}) };
    },
    plan: (place) => ({
      mechanism:
        `codex runs with CODEX_HOME=${place.agentDir}/${AGENT_CODEX_DIR}, whose auth.json the slot rewrites after every refresh with the current access token ` +
        "and the slot's agent secret in place of the refresh token; codex re-reads it on a 401 and refreshes through " +
        'CODEX_REFRESH_TOKEN_URL_OVERRIDE, which the worker answers with the slot\'s current tokens',
      env: {
        CODEX_HOME: `${place.agentDir}/${AGENT_CODEX_DIR}`,
        ...(place.tokenServiceUrl ? { CODEX_REFRESH_TOKEN_URL_OVERRIDE: `${place.tokenServiceUrl}/oauth/token` } : {}),
      },
      placeholders: [],
      hiddenEnv: [],
      egress: [
        { host: 'chatgpt.com', authScheme: 'bearer', tokenSource: 'agent-files', tlsPassThrough: true, purpose: 'the Codex backend, with the access token from auth.json' },
        ...(place.tokenServiceUrl
          ? [{ host: new URL(place.tokenServiceUrl).host, authScheme: 'oauth-refresh' as const, tokenSource: 'agent-secret' as const, tlsPassThrough: false, purpose: "codex's refresh, answered by the worker's token service" }]
          : []),
      ],
      needsTokenService: true,
    }),
  },
  // The lightest authenticated call the backend offers: the usage (rate-limit) read behind
  // codex's /status. A GET that spends no quota, unlike a Responses request.
  probe: {
    describe: 'GET /backend-api/wham/usage (the rate-limit read behind codex /status) with Authorization: Bearer, ChatGPT-Account-Id, originator codex_cli_rs',
    variables: ['CODEX_PROBE_BASE_URL'],
    request(credential, env) {
      const tokens = CodexAuth.parse(credential).tokens;
      return {
        url: `${(env.CODEX_PROBE_BASE_URL || BACKEND_URL).replace(/\/+$/, '')}/wham/usage`,
        method: 'GET',
        headers: {
          authorization: `Bearer ${tokens.access_token}`,
          ...(tokens.account_id ? { 'chatgpt-account-id': tokens.account_id } : {}),
          originator: 'codex_cli_rs',
          'user-agent': `codex_cli_rs/${CLI_VERSION}`,
        },
      };
    },
  },
};
