// The URL reader on hand-made screens: the layouts a CLI can draw a URL in, and
// when a URL may still be arriving. test/unit/screen.test.ts reads real transcripts.
import { describe, expect, it } from 'vitest';
import type { ScreenSnapshot } from '../../providers/provider';
import { extractUrl } from '../../providers/screen-url';

describe('extractUrl', () => {
  const snap = (lines: string[], cols = 40, links: string[] = []): ScreenSnapshot => ({ lines, text: lines.join('\n'), links, cols });

  it('rejoins a URL hard-wrapped over several full rows', () => {
    const rows = ['see https://ex.com/'.padEnd(40, 'a'), 'b'.repeat(40), 'ccc', 'done'];
    expect(extractUrl(snap(rows), 'https://ex.com/')).toBe(`https://ex.com/${'a'.repeat(21)}${'b'.repeat(40)}ccc`);
  });

  it('waits while the last row is full: the rest of the URL may still be coming', () => {
    const rows = ['see https://ex.com/'.padEnd(40, 'a')];
    expect(extractUrl(snap(rows), 'https://ex.com/')).toBeUndefined();
    expect(extractUrl(snap([...rows, 'bbb']), 'https://ex.com/')).toBeUndefined();
    expect(extractUrl(snap([...rows, 'bbb', '>']), 'https://ex.com/')).toBe(`https://ex.com/${'a'.repeat(21)}bbb`);
    expect(extractUrl(snap(rows), 'https://ex.com/', { final: true })).toBe(`https://ex.com/${'a'.repeat(21)}`);
  });

  it('does not join a row that is not full, nor a next row starting with a space', () => {
    expect(extractUrl(snap(['https://ex.com/a', 'bcd', '>']), 'https://ex.com/')).toBe('https://ex.com/a');
    const full = `https://ex.com/${'a'.repeat(25)}`;
    expect(extractUrl(snap([full, ' Paste', '>']), 'https://ex.com/')).toBe(full);
  });

  it('stops at whitespace, quotes and angle brackets, and drops sentence punctuation', () => {
    const lines = ['a "https://ex.com/q?x=1" b', '<https://ex.com/angle>', 'go to https://ex.com/dot. Then', '(https://ex.com/p_(1)) x', 'end'];
    expect(extractUrl(snap(lines, 200), 'https://ex.com/q')).toBe('https://ex.com/q?x=1');
    expect(extractUrl(snap(lines, 200), 'https://ex.com/angle')).toBe('https://ex.com/angle');
    expect(extractUrl(snap(lines, 200), 'https://ex.com/dot')).toBe('https://ex.com/dot');
    expect(extractUrl(snap(lines, 200), 'https://ex.com/p_')).toBe('https://ex.com/p_(1)');
  });

  it('returns the first match; a regex is tested against each whole URL and keeps no state between calls', () => {
    const lines = ['https://a.example/x https://b.example/device https://c.example/device', 'end'];
    const pattern = /^https:\/\/[a-z.]+\/device/g;
    expect(extractUrl(snap(lines, 200), pattern)).toBe('https://b.example/device');
    expect(extractUrl(snap(lines, 200), pattern)).toBe('https://b.example/device');
    expect(extractUrl(snap(lines, 200), 'https://d.example')).toBeUndefined();
  });

  it('prefers an announced link over the screen, and falls back to the screen when none matches', () => {
    const lines = ['https://ex.com/on-screen', 'end'];
    expect(extractUrl(snap(lines, 200, ['https://ex.com/linked']), 'https://ex.com/')).toBe('https://ex.com/linked');
    expect(extractUrl(snap(lines, 200, ['https://other.com/x']), 'https://ex.com/')).toBe('https://ex.com/on-screen');
  });
});
