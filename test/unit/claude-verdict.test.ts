// How `claude auth login` (2.1.197) answers a pasted code, as recorded through the provider
// stand-in: a code the token endpoint refuses (400) is a rejected code (a fresh login shows
// a fresh URL); any other failed exchange is a failed login.
import { describe, expect, it } from 'vitest';
import { claude } from '../../providers/claude';
import type { PtyLoginSpec, ScreenSnapshot } from '../../providers/provider';

const login = claude.login as PtyLoginSpec;
const screen = (...lines: string[]): ScreenSnapshot => ({ lines, text: lines.join('\n'), links: [], cols: 200 });
const PROMPT = 'Paste code here if prompted > ';

describe("claude auth login's answers", () => {
  it.each([
    ['Login failed: Request failed with status code 400', 'rejected'],
    ['Login failed: Request failed with status code 503', 'failed'],
    ['Login failed: Request failed with status code 429', 'failed'],
    ['Login failed: Request failed with status code 4000', 'failed'],
    ['Login successful.', 'succeeded'],
  ])('%s → %s', (answer, kind) => {
    expect(login.readVerdict(screen('Opening browser to sign in…', `${PROMPT}${answer}`), 1)).toEqual({ kind, message: answer });
  });
});
