// The screen reader against the real CLIs' bytes: if it reads a URL wrongly here,
// an operator gets a dead link. Bytes come from test/fixtures/transcripts.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { TerminalScreen } from '../../activities/screen';
import { extractUrl } from '../../providers/screen-url';

interface TranscriptEvent {
  readonly t: number;
  readonly type: string;
  readonly data: unknown;
}

/** The output chunks exactly as the PTY delivered them, and what the capturing terminal answered. */
function transcript(name: string): { chunks: string[]; bytes: Buffer; answers: string[] } {
  const file = fileURLToPath(new URL(`../fixtures/transcripts/${name}/events.jsonl`, import.meta.url));
  const events = readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as TranscriptEvent);
  const chunks = events.filter((e) => e.type === 'out').map((e) => e.data as string);
  const answers = events.filter((e) => e.type === 'auto-reply').map((e) => e.data as string);
  return { chunks, bytes: Buffer.from(chunks.join(''), 'utf8'), answers };
}

const CLAUDE_AUTHORIZE = 'https://claude.com/cai/oauth/authorize';

// Copied by hand from the transcripts (stripped.txt), one logical line each.
const CLAUDE_AUTH_LOGIN_URL =
  'https://claude.com/cai/oauth/authorize?code=true&client_id=9d1c250a-e61b-44d9-88ed-5944d1962f5e&response_type=code' +
  '&redirect_uri=https%3A%2F%2Fplatform.claude.com%2Foauth%2Fcode%2Fcallback' +
  '&scope=org%3Acreate_api_key+user%3Aprofile+user%3Ainference+user%3Asessions%3Aclaude_code+user%3Amcp_servers+user%3Afile_upload' +
  '&code_challenge=AzdhamwW1VeFKwnBfduWvJdg-_LoCBsoOSdGY0RhdaA&code_challenge_method=S256&state=5cYtrDZlxC1l2LdciRI5TK_Gv_QKxluKKlLbU7N-l4U';
// setup-token draws this URL as two rows of the screen, broken after `scope=user%3`.
const CLAUDE_SETUP_TOKEN_URL =
  'https://claude.com/cai/oauth/authorize?code=true&client_id=9d1c250a-e61b-44d9-88ed-5944d1962f5e&response_type=code' +
  '&redirect_uri=https%3A%2F%2Fplatform.claude.com%2Foauth%2Fcode%2Fcallback&scope=user%3Ainference' +
  '&code_challenge=_F74Bq99iqaeLmQM7ic7BkNPqunlWSihkIM-pOJPCsE&code_challenge_method=S256&state=iGeOSOH7_90fcthvdOMa1ppn_aW1WLVe5WECAdkm700';
const CODEX_LOGIN_URL =
  'https://auth.openai.com/oauth/authorize?response_type=code&client_id=app_EMoamEEZ73f0CkXaXp7hrann' +
  '&redirect_uri=http%3A%2F%2F127.0.0.1%3A1455%2Fauth%2Fcallback&code_challenge=noLEbBPAWxywe0458UwZeRCXjbDTJjcb5knYTsBQrcs' +
  '&code_challenge_method=S256&state=9hBryZyeI0__NGH7Lr7s2DZ-cecY70nHz5XgpRVZWUg' +
  '&scope=openid+profile+email+offline_access+api.connectors.read+api.connectors.invoke' +
  '&id_token_add_organizations=true&codex_cli_simplified_flow=true&originator=codex_cli_rs';

const CASES = [
  { name: 'claude-auth-login', start: CLAUDE_AUTHORIZE as string | RegExp, url: CLAUDE_AUTH_LOGIN_URL },
  { name: 'claude-setup-token', start: CLAUDE_AUTHORIZE as string | RegExp, url: CLAUDE_SETUP_TOKEN_URL },
  { name: 'codex-login', start: /^https:\/\/auth\.openai\.com\/oauth\/authorize\?/ as string | RegExp, url: CODEX_LOGIN_URL },
];

const screens: TerminalScreen[] = [];
function newScreen(options: { cols?: number; rows?: number; scrollback?: number; maxLinks?: number } = {}) {
  const answers: string[] = [];
  const screen = new TerminalScreen({ cols: 200, rows: 50, ...options, respond: (a) => answers.push(a) });
  screens.push(screen);
  return { screen, answers };
}
afterEach(() => {
  for (const screen of screens.splice(0)) screen.dispose();
});

async function render(chunks: readonly (string | Uint8Array)[], options?: Parameters<typeof newScreen>[0]) {
  const { screen, answers } = newScreen(options);
  for (const chunk of chunks) await screen.write(chunk);
  return { snapshot: screen.snapshot(), answers, screen };
}

/** Deterministic, so a failure can be replayed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function splitRandomly<T extends string | Buffer>(data: T, seed: number, maxChunk = 17): T[] {
  const next = random(seed);
  const pieces: T[] = [];
  for (let at = 0; at < data.length; ) {
    const size = 1 + Math.floor(next() * maxChunk);
    pieces.push(data.slice(at, at + size) as T);
    at += size;
  }
  return pieces;
}

describe('TerminalScreen on real transcripts', () => {
  it('reads the claude auth login URL, which the terminal soft-wrapped over three rows', async () => {
    const { snapshot } = await render(transcript('claude-auth-login').chunks);
    expect(snapshot.lines).toEqual([
      'Opening browser to sign in…',
      `If the browser didn't open, visit: ${CLAUDE_AUTH_LOGIN_URL}`,
      'Paste code here if prompted >',
    ]);
    expect(snapshot.text).toBe(snapshot.lines.join('\n'));
    expect(snapshot.cols).toBe(200);
    expect(extractUrl(snapshot, CLAUDE_AUTHORIZE)).toBe(CLAUDE_AUTH_LOGIN_URL);
    expect(new URL(extractUrl(snapshot, CLAUDE_AUTHORIZE) ?? '').searchParams.get('state')).toBe('5cYtrDZlxC1l2LdciRI5TK_Gv_QKxluKKlLbU7N-l4U');
  });

  it('rejoins the setup-token URL that the CLI itself broke at 200 columns, among cursor moves standing in for spaces', async () => {
    const { snapshot, answers } = await render(transcript('claude-setup-token').chunks);
    // Not soft-wrapped: the terminal sees two separate rows, the first exactly as wide as the terminal.
    const first = snapshot.lines.findIndex((line) => line.startsWith(CLAUDE_AUTHORIZE));
    expect(snapshot.lines[first]).toHaveLength(200);
    expect(snapshot.lines[first]?.endsWith('scope=user%3')).toBe(true);
    expect(snapshot.lines[first + 1]?.startsWith('Ainference&code_challenge=')).toBe(true);
    // ESC[nG moves render as spaces, so the prompt reads as words.
    expect(snapshot.lines).toContain(' Paste code here if prompted >');
    expect(snapshot.lines).toContain(' Browser didn\'t open? Use the url below to sign in (c to copy)');
    expect(snapshot.links).toEqual([]);
    expect(extractUrl(snapshot, CLAUDE_AUTHORIZE)).toBe(CLAUDE_SETUP_TOKEN_URL);
    expect(answers).toEqual(transcript('claude-setup-token').answers);
  });

  it('gives the same URL from the screen as from the OSC 52 copy the full-screen UI sends when `c` is pressed', async () => {
    const { chunks } = transcript('claude-setup-token');
    const fromScreen = extractUrl((await render(chunks)).snapshot, CLAUDE_AUTHORIZE);
    const copy = `\x1b]52;c;${Buffer.from(CLAUDE_SETUP_TOKEN_URL).toString('base64')}\x07`;
    const { snapshot } = await render([...chunks, copy]);
    expect(snapshot.links).toEqual([CLAUDE_SETUP_TOKEN_URL]);
    expect(extractUrl(snapshot, CLAUDE_AUTHORIZE)).toBe(fromScreen);
  });

  it('reads the codex login URL with a regex, and a URL ending a sentence without its full stop', async () => {
    const { snapshot } = await render(transcript('codex-login').chunks);
    expect(extractUrl(snapshot, /^https:\/\/auth\.openai\.com\/oauth\/authorize\?/)).toBe(CODEX_LOGIN_URL);
    expect(extractUrl(snapshot, 'http://localhost')).toBe('http://localhost:1455');
    expect(snapshot.lines.at(-1)).toBe('On a remote or headless machine? Use `codex login --device-auth` instead.');
  });

  it('renders \\r\\r\\n line endings as one line break and cursor moves as indentation (claude auth status)', async () => {
    const { snapshot } = await render(transcript('claude-auth-status').chunks);
    expect(snapshot.lines).toEqual(['{', '  "loggedIn": false,', '  "authMethod": "none",', '  "apiProvider": "firstParty"', '}']);
    expect(JSON.parse(snapshot.text)).toEqual({ loggedIn: false, authMethod: 'none', apiProvider: 'firstParty' });
  });

  it('shows the verdict on the prompt line, after the unechoed code (claude-auth-bogus, claude-auth-paste)', async () => {
    const bogus = (await render(transcript('claude-auth-bogus').chunks)).snapshot;
    expect(bogus.lines.at(-1)).toBe('Paste code here if prompted > Invalid code. Please make sure the full code was copied.');
    const paste = (await render(transcript('claude-auth-paste').chunks)).snapshot;
    expect(paste.lines.at(-1)).toBe('Paste code here if prompted > Login failed: Request failed with status code 503');
  });

  it('answers the DA1 query of the offline first run as the capturing terminal did, and reads the error', async () => {
    const { chunks, answers: recorded } = transcript('claude-first');
    expect(recorded).toEqual(['\x1b[?1;2c']);
    const { snapshot, answers } = await render(chunks);
    expect(answers).toEqual(recorded);
    expect(snapshot.lines).toContain(' Unable to connect to Anthropic services');
    expect(snapshot.lines.at(-1)).toBe(
      ' Note: Claude Code might not be available in your country. Check supported countries at https://anthropic.com/supported-countries',
    );
    // The last URL on the screen may still be arriving as far as the reader knows, until the CLI has exited.
    expect(extractUrl(snapshot, 'https://anthropic.com/')).toBeUndefined();
    expect(extractUrl(snapshot, 'https://anthropic.com/', { final: true })).toBe('https://anthropic.com/supported-countries');
  });

  it('reads the codex device-auth error, the URL in parentheses without the closing one', async () => {
    const { snapshot } = await render([...transcript('codex-device').chunks, 'next\r\n']);
    expect(snapshot.lines[0]).toBe('Error logging in: error sending request for url (https://auth.openai.com/api/accounts/deviceauth/usercode)');
    expect(extractUrl(snapshot, 'https://auth.openai.com/')).toBe('https://auth.openai.com/api/accounts/deviceauth/usercode');
  });

  describe.each(CASES)('$name split into random chunks', ({ name, start, url }) => {
    it.each([1, 2, 3, 4, 5])('never reads a partial URL, and ends with the whole one (bytes, seed %i)', async (seed) => {
      const { screen } = newScreen();
      for (const piece of splitRandomly(transcript(name).bytes, seed)) {
        await screen.write(new Uint8Array(piece));
        const seen = extractUrl(screen.snapshot(), start);
        if (seen !== undefined) expect(seen).toBe(url);
      }
      expect(extractUrl(screen.snapshot(), start)).toBe(url);
    });

    it('ends with the same URL from string chunks that split escapes and surrogates', async () => {
      const { snapshot } = await render(splitRandomly(transcript(name).chunks.join(''), 42, 5));
      expect(extractUrl(snapshot, start)).toBe(url);
    });
  });
});

describe('TerminalScreen terminal behaviour', () => {
  it('answers a cursor position query (DSR) with where the cursor is', async () => {
    const { answers } = await render(['abc\r\nde', '\x1b[6n']);
    expect(answers).toEqual(['\x1b[2;3R']);
  });

  it('keeps OSC 8 hyperlink targets, once each, and prefers them to the text drawn on screen', async () => {
    const target = 'https://claude.com/cai/oauth/authorize?code=true&state=fromlink';
    const { snapshot } = await render([
      `visit \x1b]8;;${target}\x1b\\https://claude.com/cai/oauth/authorize?code=true&st…\x1b]8;;\x1b\\ and `,
      `\x1b]8;id=1;${target}\x07again\x1b]8;;\x07\r\nPaste code here >`,
    ]);
    expect(snapshot.links).toEqual([target]);
    expect(snapshot.lines[0]).toBe('visit https://claude.com/cai/oauth/authorize?code=true&st… and again');
    expect(extractUrl(snapshot, CLAUDE_AUTHORIZE)).toBe(target);
  });

  it('decodes OSC 52 clipboard writes that hold a URL, and ignores clipboard reads and other text', async () => {
    const url = 'https://auth.openai.com/codex/device';
    const { snapshot, answers } = await render([
      `\x1b]52;c;${Buffer.from('not a url').toString('base64')}\x07`,
      '\x1b]52;c;?\x07',
      `\x1b]52;c;${Buffer.from(url).toString('base64')}\x1b\\`,
    ]);
    expect(snapshot.links).toEqual([url]);
    expect(answers).toEqual([]);
    expect(extractUrl(snapshot, /^https:\/\/auth\.openai\.com\/codex\//)).toBe(url);
  });

  it('keeps memory bounded under a flood of output and links', async () => {
    const { screen } = newScreen({ scrollback: 100, maxLinks: 4 });
    const row = 'x'.repeat(150);
    for (let i = 0; i < 50; i++) {
      await screen.write(Array.from({ length: 200 }, (_, j) => `${i}-${j} ${row}\r\n`).join(''));
      await screen.write(`\x1b]8;;https://example.com/${i}\x07link\x1b]8;;\x07\r\n`);
    }
    await screen.write('y'.repeat(1_000_000)); // one endless line, soft-wrapped
    const snapshot = screen.snapshot();
    expect(snapshot.text.length).toBeLessThanOrEqual((100 + 50) * (200 + 1));
    expect(snapshot.lines.length).toBeLessThanOrEqual(150);
    expect(snapshot.links).toEqual(['https://example.com/46', 'https://example.com/47', 'https://example.com/48', 'https://example.com/49']);
  });

  it('keeps 1000 rows of scrollback by default', async () => {
    const { snapshot } = await render([Array.from({ length: 3000 }, (_, i) => `line ${i}\r\n`).join('')]);
    expect(snapshot.lines).toHaveLength(1049);
    expect(snapshot.lines.at(-1)).toBe('line 2999');
  });

  it('rejects a nonsensical size, naming the option', () => {
    expect(() => new TerminalScreen({ cols: 0, rows: 50, respond: () => {} })).toThrow(/cols/);
    expect(() => new TerminalScreen({ cols: 80, rows: 50, scrollback: -1, respond: () => {} })).toThrow(/scrollback/);
  });

  it('lets nobody wait forever on a write once disposed', async () => {
    const { screen } = newScreen();
    const pending = screen.write('z'.repeat(5_000_000));
    screen.dispose();
    await expect(pending).resolves.toBeUndefined();
    await expect(screen.write('after')).resolves.toBeUndefined();
  });
});

describe('extractUrl on what TerminalScreen draws', () => {
  it('counts wide characters as two cells when deciding a row is full', async () => {
    // 日本 takes four cells, so this row is full at 18 characters.
    const { snapshot } = await render(['日本 https://ex.co/a\r\ncdef\r\nnext'], { cols: 20 });
    expect(snapshot.lines[0]).toBe('日本 https://ex.co/a');
    expect(extractUrl(snapshot, 'https://ex.co/')).toBe('https://ex.co/acdef');
  });
});
