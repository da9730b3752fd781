// Property-based checks of what operators and CLIs can throw at us: the code
// validator, the screen reader, token-shaped strings in logs, odd credentials.
import fc from 'fast-check';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { TerminalScreen } from '../../activities/screen';
import { extractUrl } from '../../providers/screen-url';
import { codeProblem, MAX_CODE_LENGTH } from '../../common/messages';
import { codex } from '../../providers/codex';
import { createLogger, redactText } from '../../workers/logger';

const prompt = {
  url: 'https://claude.com/cai/oauth/authorize?code=true&state=AbC_123-xyz',
  interaction: 'paste-code' as const,
  expiresAt: 0,
  instructions: '',
  codeFormat: { pattern: '^[^#\\s]+#AbC_123-xyz$', description: '<code>#<state>' },
};

describe('the code validator', () => {
  it('never throws, never repeats the code, and lets through only single-line printable codes of the right form', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 3000 }), (code) => {
        const problem = codeProblem({ code }, prompt);
        if (problem !== undefined && code.length >= 6) expect(problem).not.toContain(code);
        if (problem === undefined) {
          expect(code.length).toBeLessThanOrEqual(MAX_CODE_LENGTH);
          expect(code).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
          expect(code).toMatch(/#AbC_123-xyz$/);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('accepts real-looking codes and refuses each hostile shape with its reason', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9_-]{10,120}$/), (code) => {
        expect(codeProblem({ code: `${code}#AbC_123-xyz` }, prompt)).toBeUndefined();
        expect(codeProblem({ code: `${code}\r#AbC_123-xyz` }, prompt)).toMatch(/control characters/);
        expect(codeProblem({ code: `${code}\u001b[201~#AbC_123-xyz` }, prompt)).toMatch(/control characters/);
        expect(codeProblem({ code: `${code}#other-state` }, prompt)).toMatch(/expected form/);
      }),
    );
    expect(codeProblem('just a string', prompt)).toMatch(/must be an object like \{"code": "…"\}/);
    expect(codeProblem({ code: 42 }, prompt)).toMatch(/code must be a string/);
  });
});

describe('the screen reader', () => {
  it('survives arbitrary bytes in arbitrary chunks, stays bounded, and still finds a URL printed after them', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.string({ unit: 'binary', maxLength: 400 }), { maxLength: 30 }), async (garbage) => {
        const screen = new TerminalScreen({ cols: 80, rows: 24, scrollback: 200, respond: () => undefined });
        try {
          for (const chunk of garbage) await screen.write(chunk);
          // Whatever came before, a fresh line with a URL is read whole (once a line follows it:
          // a URL at the very end of the output may still be arriving).
          await screen.write('\u001b[0m\u001b]8;;\u0007\r\nvisit: https://example.com/device?x=1\r\nwaiting…\r\n');
          const snapshot = screen.snapshot();
          expect(snapshot.lines.length).toBeLessThanOrEqual(200 + 24);
          expect(extractUrl(snapshot, 'https://example.com/device')).toBe('https://example.com/device?x=1');
        } finally {
          screen.dispose();
        }
      }),
      { numRuns: 60 },
    );
  });
});

describe('logs', () => {
  const secrets = {
    jwt: 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEyMyJ9.c2lnbmF0dXJlLWJ5dGVzLWhlcmU',
    anthropic: 'sk-ant-oat01-AbCdEfGhIjKlMnOpQrStUvWx',
    openaiRefresh: 'rt_AbCdEfGhIjKlMnOpQrStUvWx.yz',
  };

  it('redacts token-shaped strings anywhere in a message or a field, and known secret fields whatever they hold', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const log = createLogger('trace', sink);
    log.info({ detail: `failed with ${secrets.jwt}`, nested: { list: [secrets.anthropic] }, code: 'abc#def', refresh_token: 'opaque' }, `token ${secrets.openaiRefresh} refused`);
    log.error(new Error(`boom ${secrets.anthropic}`));
    const out = lines.join('');
    for (const secret of [...Object.values(secrets), 'abc#def', 'opaque']) expect(out).not.toContain(secret);
    expect(out).toContain('[redacted]');
    expect(redactText(`Bearer ${secrets.jwt}`)).toBe('Bearer [redacted]');
  });
});

describe('credentials that are not what we expect', () => {
  it('reads a Codex credential whose access token is not a JWT without inventing an expiry', () => {
    const parsed = codex.credential.schema.parse({
      auth_mode: 'chatgpt',
      tokens: { id_token: 'opaque-id', access_token: 'opaque-access', refresh_token: 'opaque-refresh' },
      last_refresh: '2026-11-01T00:00:00Z',
    });
    expect(codex.credential.facts(parsed)).toEqual({ lastRefresh: Date.parse('2026-11-01T00:00:00Z'), account: 'chatgpt login' });
    const garbage = 'eyJub3QtanNvbg.@@@.x';
    const weird = codex.credential.schema.parse({ tokens: { id_token: 'a', access_token: garbage, refresh_token: 'b' } });
    expect(codex.credential.facts(weird)).toEqual({});
  });
});
