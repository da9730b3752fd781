// Claude Code long-lived tokens: `claude setup-token` logs in like `auth login` but
// prints a non-rotating `sk-ant-oat01-…` token (inference only, about a year) instead
// of writing a file. Nothing refreshes it; the slot warns before it expires.
import { z } from 'zod';
import { ProviderEndpointError } from '../common/failures';
import { claude, CLAUDE_CLI, claudeCommand } from './claude';
import type { Provider, PtyLoginSpec } from './provider';
import { findLine, lastWords } from './screen-text';
import { readHardWrapped } from './screen-url';
import { claudeMessagesProbe } from './claude-probe';

const CONFIG_DIR = '.claude';
const DAY = 24 * 60 * 60_000;
/** What the CLI promises when it does not say: "valid for 1 year". */
const DEFAULT_LIFETIME_MS = 365 * DAY;

export const OAUTH_TOKEN = /^sk-ant-oat01-[A-Za-z0-9_-]{32,}$/;

export const ClaudeSetupToken = z
  .object({
    /** What agents get as CLAUDE_CODE_OAUTH_TOKEN. */
    oauthToken: z.string().regex(OAUTH_TOKEN, 'must be an sk-ant-oat01- token'),
    /** Epoch ms the token was printed (or adopted). */
    issuedAt: z.number().int().positive(),
    /** Epoch ms it stops working: a year from issue unless the CLI said otherwise. */
    expiresAt: z.number().int().positive(),
    source: z.enum(['setup-token', 'adopted']),
  })
  .loose();

export type ClaudeSetupTokenFile = z.infer<typeof ClaudeSetupToken>;

/** The file content for a token printed (or handed over) at `now`, living `lifetimeMs`. */
export function setupTokenFile(token: string, now: number, source: ClaudeSetupTokenFile['source'], lifetimeMs = DEFAULT_LIFETIME_MS): ClaudeSetupTokenFile {
  return ClaudeSetupToken.parse({ oauthToken: token, issuedAt: now, expiresAt: now + lifetimeMs, source });
}

const UNITS: Record<string, number> = { day: DAY, week: 7 * DAY, month: 30 * DAY, year: 365 * DAY };

/** "valid for 1 year", "valid for 90 days" …, when the CLI says how long. */
function lifetimeOnScreen(text: string): number | undefined {
  const said = /valid for (\d{1,4}) (day|week|month|year)s?\b/i.exec(text);
  if (!said) return undefined;
  const ms = Number(said[1]) * (UNITS[(said[2] as string).toLowerCase()] as number);
  return ms > 0 && ms <= 5 * 365 * DAY ? ms : undefined;
}

const noEndpoint = (): never => {
  throw new ProviderEndpointError('a Claude setup-token is never refreshed: it has no token endpoint', false);
};

const login: PtyLoginSpec = {
  ...(claude.login as PtyLoginSpec),
  // The same URL shape and paste prompt as `claude auth login` (its readPrompt): only the command differs.
  command: claudeCommand(['setup-token']),
  // The full-screen UI redraws above the prompt line: its answers are read anywhere on the screen,
  // which held none of them when the code was typed.
  readVerdict(screen) {
    const invalid = findLine(screen, /(OAuth error:[^\n]*|Invalid code[^\n]*)/);
    if (invalid) return { kind: 'rejected', message: (invalid[1] ?? invalid[0]).trim() };
    const failed = findLine(screen, /((?:Login failed|Couldn't log in|Error creating token)[^\n]*)/);
    if (failed) return { kind: 'failed', message: (failed[1] ?? failed[0]).trim() };
    // 2.1.197's success screen (test/fixtures/transcripts/claude-setup-token-success): a check mark and
    // "Long-lived authentication token created successfully!", the token, then "Store this token securely…".
    // Succeeded once that line after the token is drawn: the token above it is whole.
    const created = findLine(screen, /(Long-lived authentication token created successfully!?)/);
    if (created && findLine(screen, /sk-ant-oat01-/) && findLine(screen, /Store this token securely/)) {
      return { kind: 'succeeded', message: (created[1] ?? created[0]).trim() };
    }
    return undefined;
  },
  explainEarlyExit: (screen, exitCode) =>
    `claude setup-token exited with code ${exitCode} before showing a login URL: ${lastWords(screen) || '(no output)'}`,
  restartAfterRejection: false,
  retryKeys: (screen) => (findLine(screen, /Press Enter to retry/) ? '\r' : undefined),
  credentialFromScreen(screen, now) {
    const token = readHardWrapped(screen, /sk-ant-oat01-/);
    if (!token || !OAUTH_TOKEN.test(token)) return undefined;
    return setupTokenFile(token, now, 'setup-token', lifetimeOnScreen(screen.text));
  },
  instructions: (prompt) =>
    `Open ${prompt.url} in a browser, sign in, copy the code it shows (<code>#<state>) and submit it with: slotctl submit-code <slot>; ` +
    'the long-lived token is stored on the slot host, never shown',
};

export const claudeSetupToken: Provider = {
  name: 'claude-setup-token',
  displayName: 'Claude Code (setup-token)',
  cli: CLAUDE_CLI,
  login,
  credential: {
    file: `${CONFIG_DIR}/setup-token.json`,
    schema: ClaudeSetupToken,
    facts: (parsed: ClaudeSetupTokenFile) => ({
      expiresAt: parsed.expiresAt,
      account: parsed.source === 'adopted' ? 'long-lived token (adopted)' : 'long-lived token',
    }),
    // An adopted token's issue date is unknown: it is taken as issued now (a year, unless it fails sooner).
    fromOperatorInput(text, now) {
      const token = text.trim();
      if (!OAUTH_TOKEN.test(token)) {
        throw new Error(`expected one Claude long-lived token (sk-ant-oat01-…, as \`claude setup-token\` prints it) on stdin; got ${token.length} characters that are not one`);
      }
      return setupTokenFile(token, now, 'adopted');
    },
  },
  refresh: {
    endpoint: noEndpoint,
    request: noEndpoint,
    classify: noEndpoint,
    apply: noEndpoint,
    // Unused by the checks (fixedLifetime wakes at each notice and at expiry); kept for the schedule's shape.
    schedule: { beforeExpiryMs: 0, jitterMs: 0 },
    fixedLifetime: { noticesBeforeExpiryMs: [30 * DAY, 7 * DAY, DAY] },
  },
  agent: {
    envFile: '.agent.env',
    env: (credential) => ({ CLAUDE_CODE_OAUTH_TOKEN: ClaudeSetupToken.parse(credential).oauthToken }),
  },
  probe: claudeMessagesProbe((credential) => ClaudeSetupToken.parse(credential).oauthToken),
};
