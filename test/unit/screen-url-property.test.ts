// The login URL reader against layouts a CLI may draw: real authorize URLs (the shapes
// of the transcripts) hard-wrapped at any width 20–199, inside boxes or padded panels,
// with colours and cursor moves per row, rendered by the real headless terminal.
// What an operator must never get is a link that is not the one the CLI made.
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { TerminalScreen } from '../../activities/screen';
import { CLAUDE_AUTHORIZE_URL } from '../../providers/claude';
import { CODEX_DEVICE_URL } from '../../providers/codex';
import type { UrlShape } from '../../providers/provider';
import { readUrl } from '../../providers/screen-url';

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const b64url43 = fc.string({ unit: fc.constantFrom(...B64URL), minLength: 43, maxLength: 43 });
/** The state is the CLI's choice: any length (claude 2.1.197 makes 43 characters, a release may make 32). */
const freeState = fc.string({ unit: fc.constantFrom(...B64URL), minLength: 1, maxLength: 64 });

// The URLs of claude-auth-login and claude-setup-token (their scopes), with fresh PKCE and state; Codex's device page.
const claudeUrl = fc.record({ challenge: b64url43, state: freeState, setupToken: fc.boolean() }).map(({ challenge, state, setupToken }) => ({
  shape: CLAUDE_AUTHORIZE_URL,
  /** Characters at the URL's end whose length is free: a cut inside them looks like a shorter value. */
  freeTail: state.length,
  url:
    'https://claude.com/cai/oauth/authorize?code=true&client_id=9d1c250a-e61b-44d9-88ed-5944d1962f5e&response_type=code' +
    '&redirect_uri=https%3A%2F%2Fplatform.claude.com%2Foauth%2Fcode%2Fcallback' +
    (setupToken
      ? '&scope=user%3Ainference'
      : '&scope=org%3Acreate_api_key+user%3Aprofile+user%3Ainference+user%3Asessions%3Aclaude_code+user%3Amcp_servers+user%3Afile_upload') +
    `&code_challenge=${challenge}&code_challenge_method=S256&state=${state}`,
}));
const codexUrl = fc.constant({ shape: CODEX_DEVICE_URL, freeTail: 0, url: 'https://auth.openai.com/codex/device' });

const layout = fc.record({
  width: fc.integer({ min: 20, max: 199 }),
  border: fc.constantFrom('none', 'box', 'bar'),
  padLeft: fc.integer({ min: 0, max: 6 }),
  padRight: fc.integer({ min: 0, max: 6 }),
  extraCols: fc.integer({ min: 0, max: 30 }),
  // Spaces drawn as cursor moves (`ESC[nG`), as Claude's renderer does.
  cursorMoves: fc.boolean(),
  /** A word before the URL on its first row, as in "visit: https://…". */
  prefix: fc.constantFrom('', 'visit: ', 'Open: '),
  /** A one-word row right after the URL: a layout trap when the URL's last row is full. */
  decoy: fc.constantFrom(undefined, 'Done', 'ok', 'AAAA'),
  /** Colour runs cut into each URL row at these fractions of its length. */
  sgrCuts: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 4 }),
  sgr: fc.constantFrom('\x1b[38;2;153;153;153m', '\x1b[1m', '\x1b[4;34m', '\x1b[38;5;244m'),
});

type Layout = typeof layout extends fc.Arbitrary<infer T> ? T : never;

/** The bytes a CLI would write to draw `url` (cut to `shown` characters) as a hard-wrapped panel, and the terminal width. */
function draw(url: string, shown: number, l: Layout): { bytes: string; cols: number; lastRowFull: boolean; upToUrl: string } {
  const visible = url.slice(0, shown);
  const rows: string[] = [];
  const firstRoom = Math.max(l.width - l.prefix.length, 1);
  const prefix = l.prefix.length < l.width - 8 ? l.prefix : '';
  const room = prefix ? firstRoom : l.width;
  rows.push(prefix + visible.slice(0, room));
  for (let at = room; at < visible.length; at += l.width) rows.push(visible.slice(at, at + l.width));

  const side = l.border === 'none' ? 0 : 1;
  const inner = l.padLeft + l.width + l.padRight;
  const cols = inner + 2 * side + l.extraCols;
  const [left, right] = l.border === 'box' ? ['│', '│'] : l.border === 'bar' ? ['|', '|'] : ['', ''];
  const coloured = (text: string): string => {
    let out = '';
    let from = 0;
    for (const cut of [...l.sgrCuts].sort((a, b) => a - b)) {
      const at = Math.floor(cut * text.length);
      out += text.slice(from, at) + l.sgr;
      from = at;
    }
    return `${out}${text.slice(from)}\x1b[39m\x1b[22m\x1b[24m`;
  };
  const line = (content: string, colour: boolean): string => {
    const body = colour ? coloured(content) : content;
    const pad = (n: number, column: number): string => (n === 0 ? '' : l.cursorMoves ? `\x1b[${column + n + 1}G` : ' '.repeat(n));
    const fill = l.width - content.length;
    return left + pad(l.padLeft, side) + body + pad(fill + l.padRight, side + l.padLeft + content.length) + right + '\r\n';
  };
  // Words wrapped at the panel width, as the CLI's layout would.
  const words = (text: string): string => {
    const out: string[] = [''];
    for (const word of text.split(' ')) {
      const current = out[out.length - 1] as string;
      if (current && current.length + 1 + word.length > l.width) out.push(word);
      else out[out.length - 1] = current ? `${current} ${word}` : word;
    }
    return out.map((row) => line(row, false)).join('');
  };
  let bytes = '';
  if (l.border === 'box') bytes += `┌${'─'.repeat(inner)}┐\r\n`;
  bytes += words("Browser didn't open? Use the url below");
  bytes += line('', false);
  for (const row of rows.slice(0, -1)) bytes += line(row, true);
  // The bytes up to the URL's last character: what has arrived while the CLI is mid-URL.
  const upToUrl = bytes + left + (l.padLeft === 0 ? '' : l.cursorMoves ? `\x1b[${side + l.padLeft + 1}G` : ' '.repeat(l.padLeft)) + coloured(rows[rows.length - 1] as string);
  bytes += line(rows[rows.length - 1] as string, true);
  if (l.decoy) bytes += line(l.decoy, false);
  bytes += line('', false);
  bytes += words('Paste code here if prompted >');
  if (l.border === 'box') bytes += `└${'─'.repeat(inner)}┘\r\n`;
  const last = rows[rows.length - 1] as string;
  return { bytes, cols, lastRowFull: last.length === l.width, upToUrl };
}

const screens: TerminalScreen[] = [];
afterEach(() => {
  for (const screen of screens.splice(0)) screen.dispose();
});

async function readDrawn(bytes: string, cols: number, shape: UrlShape) {
  const screen = new TerminalScreen({ cols, rows: 60, respond: () => {} });
  screens.push(screen);
  await screen.write(bytes);
  return readUrl(screen.snapshot(), shape);
}

describe('readUrl on hard-wrapped, boxed, coloured URLs (property)', () => {
  it('reads the whole URL, at every width, border, padding and colouring', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(claudeUrl, codexUrl), layout, async ({ shape, url, freeTail }, l) => {
        const { bytes, cols, lastRowFull } = draw(url, url.length, l);
        // A lone word of URL characters right under a full last row continues a free-length
        // state as far as any reader can tell (the layout joins it): not a layout a CLI draws.
        fc.pre(!(freeTail > 0 && lastRowFull && l.decoy !== undefined));
        const read = await readDrawn(bytes, cols, shape);
        expect(read).toEqual({ kind: 'complete', url });
      }),
      { numRuns: 300 },
    );
  });

  it('never publishes a URL the CLI drew cut short: it is incomplete, or not seen at all', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(claudeUrl, codexUrl),
        layout,
        fc.integer({ min: 0, max: 60 }),
        async ({ shape, url, freeTail }, l, extra) => {
          // Cut where the specification's fixed forms show it: a cut inside the free-length
          // state looks exactly like a shorter state, to a person as to the reader (and the
          // CLI then refuses the code, so a fresh URL follows). No decoy row here: a cut URL
          // whose last row is full, followed by a lone word, looks like a longer URL.
          const cut = Math.max(freeTail, 1) + extra;
          const { bytes, cols } = draw(url, Math.max(url.length - cut, 1), { ...l, decoy: undefined });
          const read = await readDrawn(bytes, cols, shape);
          expect(read.kind).not.toBe('complete');
        },
      ),
      { numRuns: 300 },
    );
  });

  it('never publishes a URL still arriving (nothing drawn after it yet), cut anywhere', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(claudeUrl, codexUrl), layout, fc.double({ min: 0, max: 1, noNaN: true }), async ({ shape, url }, l, at) => {
        // The PTY hands output over in chunks cut anywhere: the reader sees the drawing up to
        // some character of the URL (its last one included), mid-colour or mid-cursor-move.
        const shown = Math.max(1, Math.ceil(at * url.length));
        const { upToUrl, cols } = draw(url.slice(0, shown), shown, { ...l, decoy: undefined });
        const read = await readDrawn(upToUrl, cols, shape);
        expect(read.kind).not.toBe('complete');
      }),
      { numRuns: 300 },
    );
  });

  it('names what a cut Claude URL lacks, so the failure tells the operator why', async () => {
    const url =
      'https://claude.com/cai/oauth/authorize?code=true&client_id=9d1c250a-e61b-44d9-88ed-5944d1962f5e&response_type=code' +
      '&redirect_uri=https%3A%2F%2Fplatform.claude.com%2Foauth%2Fcode%2Fcallback&scope=user%3Ainference' +
      '&code_challenge=_F74Bq99iqaeLmQM7ic7BkNPqunlWSihkIM-pOJPCsE&code_challenge_method=S256&state=iGeOSOH7_90fcthvdOMa1ppn_aW1WLVe5WECAdkm700';
    const l: Layout = { width: 60, border: 'box', padLeft: 2, padRight: 2, extraCols: 10, cursorMoves: true, prefix: '', decoy: undefined, sgrCuts: [0.5], sgr: '\x1b[1m' };
    // The first row only: what the old reader published.
    const { bytes, cols } = draw(url, 60, l);
    expect(await readDrawn(bytes, cols, CLAUDE_AUTHORIZE_URL)).toEqual({
      kind: 'incomplete',
      url: url.slice(0, 60),
      missing: ['client_id', 'redirect_uri', 'code_challenge', 'state'],
    });
  });
});
