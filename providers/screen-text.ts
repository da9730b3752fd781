// Small readers of screen text that several providers share.
import type { ScreenSnapshot } from './provider';

/** The first line at or after `since` that matches, with its capture groups. */
export function findLine(screen: ScreenSnapshot, pattern: RegExp, since = 0): RegExpMatchArray | undefined {
  for (const line of screen.lines.slice(since)) {
    const match = line.match(pattern);
    if (match) return match;
  }
  return undefined;
}

/** The last few non-empty lines, for error messages that quote the CLI. */
export function lastWords(screen: ScreenSnapshot, count = 3): string {
  return screen.lines
    .map((line) => line.trim())
    .filter((line) => line.length > 0)
    .slice(-count)
    .join(' / ');
}

export const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** `<NAME>_BIN` from the worker's environment, or the command on PATH. */
export const binary = (env: NodeJS.ProcessEnv, variable: string, fallback: string): string => env[variable] || fallback;
