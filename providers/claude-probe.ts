// Claude's live probe: the request Claude Code itself makes to check its quota (its
// `quota_check`: one user message "quota", max_tokens 1, the small fast model), with
// the headers the pinned CLI sends for an OAuth token. Costs one output token.
import type { ProbeSpec } from './provider';
import PINNED_CLI_VERSIONS from './cli-versions.json';

/** The CLI version whose requests these are: the pin (its User-Agent names it). */
const CLI_VERSION = PINNED_CLI_VERSIONS.claude;
const DEFAULT_BASE_URL = 'https://api.anthropic.com';
/** Claude Code's small fast model (first party): what its own quota check asks. */
const DEFAULT_MODEL = 'claude-haiku-4-5';
/** The betas an OAuth token needs: Claude Code's own and the OAuth one; the CLI adds feature betas a probe does not use. */
const BETAS = 'claude-code-20250219,oauth-2025-04-20';

const trimSlash = (url: string): string => url.replace(/\/+$/, '');

/**
 * The probe for a credential whose access token `tokenOf` reads. The base URL is the
 * worker's `CLAUDE_PROBE_BASE_URL`, else `ANTHROPIC_BASE_URL` (the CLI's own variable),
 * else the API; `CLAUDE_PROBE_MODEL` names another model.
 */
export function claudeMessagesProbe(tokenOf: (credential: unknown) => string): ProbeSpec {
  return {
    describe: `POST /v1/messages?beta=true with max_tokens 1 (Claude Code's own quota check), Authorization: Bearer, anthropic-version 2023-06-01, anthropic-beta ${BETAS}`,
    variables: ['CLAUDE_PROBE_BASE_URL', 'ANTHROPIC_BASE_URL'],
    request: (credential, env) => ({
      url: `${trimSlash(env.CLAUDE_PROBE_BASE_URL || env.ANTHROPIC_BASE_URL || DEFAULT_BASE_URL)}/v1/messages?beta=true`,
      method: 'POST',
      headers: {
        authorization: `Bearer ${tokenOf(credential)}`,
        'anthropic-version': '2023-06-01',
        'anthropic-beta': BETAS,
        'anthropic-dangerous-direct-browser-access': 'true',
        'x-app': 'cli',
        'user-agent': `claude-cli/${CLI_VERSION} (external, cli)`,
      },
      body: { model: env.CLAUDE_PROBE_MODEL || DEFAULT_MODEL, max_tokens: 1, messages: [{ role: 'user', content: 'quota' }] },
    }),
    // Unix seconds, as Claude Code reads it (`anthropic-ratelimit-unified-reset`).
    resetAt(headers) {
      const seconds = Number(headers['anthropic-ratelimit-unified-reset'] ?? NaN);
      return Number.isFinite(seconds) && seconds > 1e9 && seconds < 1e11 ? Math.round(seconds * 1000) : undefined;
    },
  };
}
