// Finds a login URL in what the terminal shows, the way a person would: soft-wrapped
// by the terminal, hard-wrapped by the CLI, or announced out of band (OSC 8 / OSC 52).
// Pure text reading, so providers can use it; the terminal itself is activities/screen.ts.
import type { ScreenSnapshot, UrlShape } from './provider';

/**
 * The first URL on the screen that begins with `start` (a prefix, or a regex
 * tested against each whole URL: anchor it with `^`), returned whole.
 *
 * Prefers URLs announced out of band (OSC 8 / OSC 52): they cannot be mangled by
 * layout. On screen, it rejoins rows the CLI itself broke at the terminal width.
 * Returns undefined while the URL may still be arriving: when it runs to the very
 * end of what has been printed (the PTY splits output anywhere), unless `final`
 * says the CLI is done (it exited).
 */
export function extractUrl(snapshot: ScreenSnapshot, start: string | RegExp, options: { final?: boolean } = {}): string | undefined {
  const matches = typeof start === 'string' ? (url: string) => url.startsWith(start) : anchoredTester(start);

  const announced = snapshot.links.find(matches);
  if (announced) return announced;

  const text = rejoinHardWraps(snapshot);
  for (const begin of candidateStarts(text, start)) {
    let end = begin;
    while (end < text.length && isUrlChar(text.charCodeAt(end))) end++;
    if (end === begin) continue;
    // Running into the end of the output, it may still be arriving; a truncated URL would send the operator astray.
    if (end === text.length && !options.final) return undefined;
    const url = trimTrailingPunctuation(text.slice(begin, end));
    if (matches(url)) return url;
  }
  return undefined;
}

/** A login URL as read off the screen: whole, seen but not readable whole, or not there. */
export type UrlReading =
  | { readonly kind: 'complete'; readonly url: string }
  | { readonly kind: 'incomplete'; readonly url: string; readonly missing: readonly string[] }
  | { readonly kind: 'absent' };

/**
 * Reads the login URL the way a person would, and only when it is whole.
 *
 * A CLI may break the URL into rows itself, at the terminal width or narrower (a box,
 * a padded panel), with colours and cursor moves per row: the terminal renders those,
 * and rows are then joined when the URL's run on one row ends at the same right edge
 * as the first row's, followed by nothing but padding or a border, and the next row
 * holds nothing but URL characters at a left edge no further right than the URL began.
 * Every reading the layout allows (each number of rows joined) is checked against the
 * provider's `shape`, which asks only for what the specification fixes (parameters
 * present, an S256 challenge's 43 characters), never a length the CLI may change;
 * the longest whole reading is the URL: the layout joined its rows, and a shorter one
 * would cut a value whose length is free. A URL that runs into the end of the output
 * (it may still be arriving) is incomplete unless `final`.
 */
export function readUrl(snapshot: ScreenSnapshot, shape: UrlShape, options: { final?: boolean } = {}): UrlReading {
  const matches = anchoredTester(shape.start);
  for (const link of snapshot.links) {
    const parsed = parseUrl(link);
    if (matches(link) && parsed && shape.missing(parsed).length === 0) return { kind: 'complete', url: link };
  }

  let seen: UrlReading = { kind: 'absent' };
  const lines = snapshot.lines;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    for (const m of line.matchAll(/[A-Za-z][A-Za-z0-9+.-]*:\/\//g)) {
      const readings = layoutReadings(lines, i, m.index);
      const candidates = readings.texts.map(trimTrailingPunctuation).filter(matches);
      if (candidates.length === 0) continue;
      const longest = candidates[candidates.length - 1] as string;
      if (readings.reachesEnd && !options.final) return { kind: 'incomplete', url: longest, missing: ['the rest of the URL (it may still be arriving)'] };
      const whole = candidates.filter((url) => {
        const parsed = parseUrl(url);
        return parsed !== undefined && shape.missing(parsed).length === 0;
      });
      if (whole.length > 0) return { kind: 'complete', url: whole[whole.length - 1] as string };
      if (seen.kind === 'absent') {
        const parsed = parseUrl(longest);
        seen = { kind: 'incomplete', url: longest, missing: parsed ? shape.missing(parsed) : ['a URL that parses'] };
      }
    }
  }
  return seen;
}

/**
 * The run of URL characters that begins where `start` matches (first match on the
 * screen), joined over the rows the layout says it continues on (the longest reading):
 * for printed values with no structure to check, such as a token.
 */
export function readHardWrapped(snapshot: ScreenSnapshot, start: RegExp): string | undefined {
  const pattern = new RegExp(start.source, start.flags.replace(/[gy]/g, ''));
  for (let i = 0; i < snapshot.lines.length; i++) {
    const at = (snapshot.lines[i] as string).search(pattern);
    if (at !== -1) return layoutReadings(snapshot.lines, i, at).texts.at(-1);
  }
  return undefined;
}

const parseUrl = (text: string): URL | undefined => {
  try {
    return new URL(text);
  } catch {
    return undefined;
  }
};

/**
 * The URL beginning at `begin` on line `first`, joined over 0, 1, 2 … following rows
 * as the layout allows, shortest first; `reachesEnd` when the last reading runs into
 * the last line of the output.
 */
function layoutReadings(lines: readonly string[], first: number, begin: number): { texts: string[]; reachesEnd: boolean } {
  const line = lines[first] as string;
  let end = begin;
  while (end < line.length && isUrlChar(line.charCodeAt(end))) end++;
  let text = line.slice(begin, end);
  const texts = [text];
  // Only padding or a border may follow a row the URL continues from.
  if (!onlyDecoration(line.slice(end))) return { texts, reachesEnd: false };
  const startColumn = cellWidth(line.slice(0, begin));
  const rightEdge = cellWidth(line.slice(0, end));
  let leftEdge: number | undefined;
  let last = first;
  for (let j = first + 1; j < lines.length; j++) {
    const row = lines[j] as string;
    let from = 0;
    while (from < row.length && isDecoration(row.charCodeAt(from))) from++;
    let to = from;
    while (to < row.length && isUrlChar(row.charCodeAt(to))) to++;
    if (to === from || !onlyDecoration(row.slice(to))) break;
    const column = cellWidth(row.slice(0, from));
    const rowEnd = cellWidth(row.slice(0, to));
    if (column > startColumn || (leftEdge !== undefined && column !== leftEdge) || rowEnd > rightEdge) break;
    leftEdge = column;
    text += row.slice(from, to);
    texts.push(text);
    last = j;
    // A row that stops short of the edge is the URL's last.
    if (rowEnd < rightEdge) break;
  }
  return { texts, reachesEnd: last === lines.length - 1 };
}

/** Padding and borders around a panel: spaces, box drawing, block elements, `|`. */
const isDecoration = (code: number): boolean => code === 0x20 || code === 0x09 || code === 0x7c || (code >= 0x2500 && code <= 0x259f);
const onlyDecoration = (text: string): boolean => {
  for (let k = 0; k < text.length; k++) if (!isDecoration(text.charCodeAt(k))) return false;
  return true;
};

function anchoredTester(pattern: RegExp): (url: string) => boolean {
  // A global or sticky regex carries state between calls; a fresh copy without them does not.
  const regex = new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, ''));
  return (url) => regex.test(url);
}

function* candidateStarts(text: string, start: string | RegExp): Generator<number> {
  if (typeof start === 'string') {
    if (!start) return;
    for (let at = text.indexOf(start); at !== -1; at = text.indexOf(start, at + 1)) yield at;
    return;
  }
  for (const m of text.matchAll(/[A-Za-z][A-Za-z0-9+.-]*:\/\//g)) yield m.index;
}

/**
 * Joins a line that fills the terminal width and ends in URL characters with the
 * next line when that one begins with URL characters: the CLI broke a long URL
 * into rows itself (Claude's full-screen UI does), so the terminal never marked it wrapped.
 */
function rejoinHardWraps(snapshot: ScreenSnapshot): string {
  let text = '';
  let previous: string | undefined;
  for (const line of snapshot.lines) {
    if (previous !== undefined) {
      const brokenUrl =
        fillsLastRow(previous, snapshot.cols) &&
        isUrlChar(previous.charCodeAt(previous.length - 1)) &&
        isUrlChar(line.charCodeAt(0));
      if (!brokenUrl) text += '\n';
    }
    text += line;
    previous = line;
  }
  return text;
}

function fillsLastRow(line: string, cols: number): boolean {
  const width = cellWidth(line);
  return width > 0 && width % cols === 0;
}

// RFC 3986 unreserved, reserved and '%'.
const URL_CHARS = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&'()*+,;=%") {
  URL_CHARS[c.charCodeAt(0)] = 1;
}
const isUrlChar = (code: number): boolean => code < 128 && URL_CHARS[code] === 1;

/** Sentence punctuation after a URL ("… at https://x.com/a.") is not part of it; an unbalanced bracket neither. */
function trimTrailingPunctuation(url: string): string {
  let end = url.length;
  for (;;) {
    const last = url[end - 1];
    const body = url.slice(0, end);
    if (last && ".,;:!?'".includes(last)) end--;
    else if (last === ')' && count(body, '(') < count(body, ')')) end--;
    else if (last === ']' && count(body, '[') < count(body, ']')) end--;
    else break;
  }
  return url.slice(0, end);
}

const count = (text: string, char: string): number => text.split(char).length - 1;

/** Terminal cells a line occupies: wide (CJK, emoji) characters take two, combining marks none. */
function cellWidth(line: string): number {
  let width = 0;
  for (const char of line) {
    const code = char.codePointAt(0) ?? 0;
    if (code < 0x300) width += 1;
    else if (isZeroWidth(code)) continue;
    else width += isWide(code) ? 2 : 1;
  }
  return width;
}

const isZeroWidth = (code: number): boolean =>
  (code >= 0x300 && code <= 0x36f) || code === 0x200b || code === 0x200d || (code >= 0xfe00 && code <= 0xfe0f);

const WIDE_RANGES: ReadonlyArray<readonly [number, number]> = [
  [0x1100, 0x115f],
  [0x2e80, 0x303e],
  [0x3041, 0x33ff],
  [0x3400, 0x4dbf],
  [0x4e00, 0x9fff],
  [0xa000, 0xa4cf],
  [0xac00, 0xd7a3],
  [0xf900, 0xfaff],
  [0xfe30, 0xfe4f],
  [0xff00, 0xff60],
  [0xffe0, 0xffe6],
  [0x1f300, 0x1f64f],
  [0x1f900, 0x1f9ff],
  [0x20000, 0x3fffd],
];
const isWide = (code: number): boolean => WIDE_RANGES.some(([from, to]) => code >= from && code <= to);
