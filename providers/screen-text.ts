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

/** Token shapes a screen must not carry into a failure: Claude keys and OAuth tokens, JWTs, Codex refresh tokens. */
const TOKEN_SHAPES = [/\bsk-ant-[\w-]{8,}/g, /\beyJ[\w-]{8,}\.[\w-]{8,}(?:\.[\w-]*)?/g, /\brt_[\w.-]{16,}/g];

/**
 * The screen as an operator may see it in a failure: the last `maxLines` non-empty
 * lines, token-shaped strings replaced. Only for screens read before any code was
 * typed (a prompt screen holds no secret; this is the second lock).
 */
export function screenForOperator(screen: ScreenSnapshot, maxLines = 30): string {
  let text = screen.lines.filter((line) => line.trim().length > 0).slice(-maxLines).join('\n');
  for (const shape of TOKEN_SHAPES) text = text.replace(shape, '[redacted]');
  return text;
}
