// The env-file format the agents read (sh, systemd and `docker --env-file` alike),
// written once for the slot's env file (activities) and the agent plan (providers).
import { EnvFileError } from './failures';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Values of these characters need no quotes in sh, systemd or `docker --env-file` (which takes quotes literally). */
const BARE_VALUE = /^[A-Za-z0-9_.,:/@%+=-]+$/;

/**
 * `# header` then `KEY=value` lines; a value with other characters is single-quoted the
 * POSIX-shell way. Throws EnvFileError for a name or value the format cannot hold.
 */
export function formatEnvFile(header: string, vars: Readonly<Record<string, string>>): string {
  const lines = Object.entries(vars).map(([name, value]) => {
    if (!ENV_NAME.test(name)) throw new EnvFileError(`${JSON.stringify(name)} is not a valid variable name`);
    if (typeof value !== 'string' || /[\0\r\n]/.test(value)) throw new EnvFileError(`the value of ${name} is not a single line`);
    return `${name}=${BARE_VALUE.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`}`;
  });
  return `# ${header}\n${lines.join('\n')}\n`;
}
