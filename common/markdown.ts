// Text that is not ours (a provider's wording, an error message, a host's name) placed in
// the markdown of the Web UI's workflow page, so that it reads as written: placeholders
// such as `<code>#<state>` go into code spans (a renderer takes them for HTML tags and
// drops them otherwise), and every other character markdown would act on is escaped.

/** A code span holding `text` as is: fenced by more backticks than any run inside it (CommonMark). */
export function codeSpan(text: string): string {
  const t = text.replace(/[\r\n]+/g, ' ');
  const longest = Math.max(0, ...(t.match(/`+/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(longest + 1);
  const pad = t.startsWith('`') || t.endsWith('`') ? ' ' : '';
  return `${fence}${pad}${t}${pad}${fence}`;
}

/** A word holding a placeholder (`<state>`, `<code>#<state>`), up to the spaces, brackets or commas around it. */
const PLACEHOLDER_WORD = /[^\s()[\]{},;]*<[A-Za-z][\w.-]*>[^\s()[\]{},;]*/g;
/** What markdown (and the HTML inside it) would act on, escaped with a backslash (any ASCII punctuation may be). */
const ACTIVE = /[\\`*_[\]<>|~&#!]/g;

const escape = (text: string): string => text.replace(ACTIVE, (ch) => `\\${ch}`);

/** Untrusted text as inline markdown that renders as written, on one line. */
export function markdownText(text: string): string {
  const line = text.replace(/[\r\n]+/g, ' ');
  let out = '';
  let from = 0;
  for (const match of line.matchAll(PLACEHOLDER_WORD)) {
    // A sentence's full stop or colon stays outside the span.
    const word = match[0].replace(/[.:!?]+$/, '');
    out += escape(line.slice(from, match.index)) + codeSpan(word);
    from = match.index + word.length;
  }
  return out + escape(line.slice(from));
}
