// Untrusted text in the Web UI's markdown: placeholders in code spans, the rest escaped,
// nothing able to open a link, a tag or a new block. (test/integration/web-ui-page.test.ts
// reads the result in the real Web UI.)
import { describe, expect, it } from 'vitest';
import { codeSpan, markdownText } from '../../common/markdown';

describe('markdown for untrusted text', () => {
  it('puts placeholders in code spans and keeps the punctuation around them outside', () => {
    expect(markdownText('copy it (<code>#<state>, where <state> is in the URL).')).toBe('copy it (`<code>#<state>`, where `<state>` is in the URL).');
    expect(markdownText('run slotctl submit-code <slot>.')).toBe('run slotctl submit-code `<slot>`.');
  });

  it('escapes what would become a tag, a link, emphasis, a table cell or a heading', () => {
    expect(markdownText('<img src=x onerror=alert(1)> [a](javascript:x) *b* | c')).toBe('\\<img src=x onerror=alert(1)\\> \\[a\\](javascript:x) \\*b\\* \\| c');
    expect(markdownText('# not a heading\n- nor a list')).toBe('\\# not a heading - nor a list');
  });

  it('fences a code span by more backticks than it holds', () => {
    expect(codeSpan('a`b')).toBe('``a`b``');
    expect(codeSpan('`x')).toBe('`` `x ``');
    expect(codeSpan('line1\nline2')).toBe('`line1 line2`');
  });
});
