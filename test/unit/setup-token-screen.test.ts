// `claude setup-token`'s real success screen (2.1.197, recorded through the provider
// stand-in by test/record-transcript.ts): the reader says success with the CLI's own
// words and takes the whole token, never a part of it while the screen is being drawn.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { TerminalScreen } from '../../activities/screen';
import { claudeSetupToken, OAUTH_TOKEN } from '../../providers/claude-setup-token';
import type { PtyLoginSpec } from '../../providers/provider';

const events = readFileSync(fileURLToPath(new URL('../fixtures/transcripts/claude-setup-token-success/events.jsonl', import.meta.url)), 'utf8')
  .trim()
  .split('\n')
  .map((line) => JSON.parse(line) as { type: string; data: unknown });
const chunks = events.filter((e) => e.type === 'out').map((e) => e.data as string);
const login = claudeSetupToken.login as PtyLoginSpec;

describe("claude setup-token's real success screen", () => {
  it('reads success in the CLI’s words and the whole printed token, and nothing before the screen is whole', async () => {
    const printed = /sk-ant-oat01-[A-Za-z0-9_-]+/.exec(chunks.join('').replace(/\x1b\[[0-9;?]*[A-Za-z]/g, ''))?.[0] ?? '';
    expect(printed).toMatch(OAUTH_TOKEN);
    const screen = new TerminalScreen({ cols: 200, rows: 50, respond: () => undefined });
    try {
      for (const chunk of chunks) {
        await screen.write(chunk);
        const snapshot = screen.snapshot();
        const verdict = login.readVerdict(snapshot, 0);
        if (!verdict) continue;
        // Once success is read, the token read is the one printed, whole.
        expect(verdict).toEqual({ kind: 'succeeded', message: 'Long-lived authentication token created successfully!' });
        expect(login.credentialFromScreen?.(snapshot, Date.now())).toMatchObject({ oauthToken: printed, source: 'setup-token' });
      }
      expect(login.readVerdict(screen.snapshot(), 0)?.kind).toBe('succeeded');
      // "valid for 1 year" is on the screen: a year from issue.
      expect(login.credentialFromScreen?.(screen.snapshot(), 1000)).toMatchObject({ issuedAt: 1000, expiresAt: 1000 + 365 * 24 * 3600_000 });
    } finally {
      screen.dispose();
    }
  });
});
