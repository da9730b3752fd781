// Telling secrets from the text around them: token shapes (for files and notices
// anyone may read) and the scrubber a refresh builds its messages through.
// Node-free: plain string work, shared by activities and anything below them.

/**
 * Tokens by their look: JWTs (header.payload, both base64 JSON), Anthropic keys and
 * OAuth tokens, OpenAI refresh tokens. Tight enough that the random state and PKCE
 * challenge in a login URL in the status do not trip them.
 */
const TOKEN_LIKE = [/eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}/, /sk-ant-[A-Za-z0-9_-]{4,}/, /(?<![A-Za-z0-9_-])rt_[A-Za-z0-9_-]{16,}/];

/** The path of the first key or string value that looks like a token, or undefined. */
export function tokenLikeField(value: unknown, at: string, depth = 0): string | undefined {
  if (depth > 32) return undefined;
  if (typeof value === 'string') return TOKEN_LIKE.some((p) => p.test(value)) ? at : undefined;
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) {
      const found = tokenLikeField(item, `${at}[${i}]`, depth + 1);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (typeof value === 'object' && value !== null) {
    for (const [key, item] of Object.entries(value)) {
      if (TOKEN_LIKE.some((p) => p.test(key))) return `a key of ${at}`;
      const found = tokenLikeField(item, `${at}.${key}`, depth + 1);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

/**
 * Every string of the credential and the answer: whatever a message is built from,
 * none of them can reach a failure. Short strings (modes, names) are not secrets.
 */
export class Secrets {
  private readonly values = new Set<string>();

  addLeaves(value: unknown, depth = 0): void {
    if (depth > 32) return;
    if (typeof value === 'string') {
      if (value.length >= 12) this.values.add(value);
    } else if (Array.isArray(value)) {
      for (const item of value) this.addLeaves(item, depth + 1);
    } else if (typeof value === 'object' && value !== null) {
      for (const item of Object.values(value)) this.addLeaves(item, depth + 1);
    }
  }

  scrub(text: string): string {
    let out = text;
    for (const secret of this.values) out = out.split(secret).join('[redacted]');
    return out;
  }
}
