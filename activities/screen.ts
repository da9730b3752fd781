// A login CLI's terminal, emulated so that its screen reads the way a person sees it:
// cursor moves drawn, soft wraps rejoined, OSC 8 / OSC 52 links kept, whatever chunks
// the PTY hands over. Finding the URL in a snapshot is providers/screen-url.ts.
import xtermHeadless from '@xterm/headless';
import type { ScreenSnapshot } from '../providers/provider';

// The package is CommonJS without static named exports, so Node's ESM loader only offers the default.
const { Terminal } = xtermHeadless;
type XTerm = InstanceType<typeof Terminal>;

export interface TerminalScreenOptions {
  readonly cols: number;
  readonly rows: number;
  /**
   * Rows kept above the viewport. A CLI that floods output cannot grow memory past this.
   * @default 1000
   */
  readonly scrollback?: number;
  /**
   * URLs kept from OSC 8 / OSC 52, newest win.
   * @default 32
   */
  readonly maxLinks?: number;
  /**
   * Receives the terminal's answers to the CLI's queries (DA1 `ESC[c`, DSR `ESC[6n`, …).
   * The caller writes them back into the PTY: some CLIs wait for them before drawing.
   */
  readonly respond: (answer: string) => void;
}

/** A clipboard write or hyperlink longer than this is not a login URL; dropping it bounds memory. */
const MAX_LINK_CHARS = 16_384;
const OSC_HYPERLINK = 8;
const OSC_CLIPBOARD = 52;
const LOOKS_LIKE_URL = /^[a-z][a-z0-9+.-]*:\/\/\S+$/i;

export class TerminalScreen {
  private readonly terminal: XTerm;
  private readonly links: string[] = [];
  private readonly maxLinks: number;
  private readonly unfinishedWrites = new Set<() => void>();
  private disposed = false;

  constructor(options: TerminalScreenOptions) {
    const { cols, rows, scrollback = 1000, maxLinks = 32, respond } = options;
    positiveInteger('cols', cols);
    positiveInteger('rows', rows);
    positiveInteger('scrollback', scrollback, 0);
    positiveInteger('maxLinks', maxLinks, 0);
    this.maxLinks = maxLinks;
    this.terminal = new Terminal({ cols, rows, scrollback, allowProposedApi: true });

    const answer = (data: string): void => {
      // The CLI may be gone by the time its query is parsed; its answer has nowhere to go.
      try {
        respond(data);
      } catch {
        /* the PTY is closed */
      }
    };
    this.terminal.onData(answer);
    this.terminal.onBinary(answer);

    this.terminal.parser.registerOscHandler(OSC_HYPERLINK, (data) => {
      // `params;uri`; an empty uri closes the link.
      const uri = data.slice(data.indexOf(';') + 1);
      if (uri) this.remember(uri);
      return false; // let xterm keep its own hyperlink bookkeeping
    });
    this.terminal.parser.registerOscHandler(OSC_CLIPBOARD, (data) => {
      // `selection;base64`, where `?` asks to read the clipboard: we never answer that.
      const payload = data.slice(data.indexOf(';') + 1);
      if (payload && payload !== '?' && payload.length <= (MAX_LINK_CHARS * 4) / 3 + 4) {
        const text = Buffer.from(payload, 'base64').toString('utf8').trim();
        if (LOOKS_LIKE_URL.test(text)) this.remember(text);
      }
      return true;
    });
  }

  /** Resolves once the terminal has parsed `data` (xterm parses asynchronously, in slices). */
  write(data: string | Uint8Array): Promise<void> {
    if (this.disposed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.unfinishedWrites.delete(done);
        resolve();
      };
      this.unfinishedWrites.add(done);
      this.terminal.write(data, done);
    });
  }

  snapshot(): ScreenSnapshot {
    const buffer = this.terminal.buffer.active;
    const lines: string[] = [];
    let current: string | undefined;
    for (let y = 0; y < buffer.length; y++) {
      const row = buffer.getLine(y);
      if (!row) continue;
      // A row the terminal wrapped into the next keeps its full width: its trailing spaces are real.
      const continues = buffer.getLine(y + 1)?.isWrapped ?? false;
      const text = row.translateToString(!continues);
      if (row.isWrapped && current !== undefined) current += text;
      else {
        if (current !== undefined) lines.push(current.trimEnd());
        current = text;
      }
    }
    if (current !== undefined) lines.push(current.trimEnd());
    while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    return { lines, text: lines.join('\n'), links: [...this.links], cols: this.terminal.cols };
  }

  /** Resets the terminal: screen, scrollback and links gone (a CLI printed a secret). */
  clear(): void {
    if (this.disposed) return;
    this.terminal.reset();
    this.terminal.clear();
    this.links.length = 0;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.terminal.dispose();
    // xterm drops queued writes on dispose; nobody should wait for them forever.
    for (const done of [...this.unfinishedWrites]) done();
  }

  private remember(url: string): void {
    if (url.length > MAX_LINK_CHARS || this.maxLinks === 0) return;
    // CLIs repeat a hyperlink for every segment they draw; once is enough.
    if (this.links.includes(url)) return;
    this.links.push(url);
    if (this.links.length > this.maxLinks) this.links.shift();
  }
}

function positiveInteger(name: string, value: number, min = 1): void {
  if (!Number.isInteger(value) || value < min) {
    throw new RangeError(`TerminalScreen option ${name} must be an integer >= ${min}, got ${String(value)}`);
  }
}
