// The environment a login CLI runs with: a minimal one, so worker secrets
// (encryption keys, cloud credentials) never reach a third-party CLI.
const ALWAYS = ['PATH', 'LANG', 'LC_ALL', 'LC_CTYPE', 'TZ', 'TMPDIR', 'NODE_EXTRA_CA_CERTS', 'SSL_CERT_FILE', 'SSL_CERT_DIR',
  'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'no_proxy'];

const matches = (name: string, pattern: string): boolean =>
  pattern.endsWith('*') ? name.startsWith(pattern.slice(0, -1)) : name === pattern;

export function loginEnvironment(
  workerEnv: NodeJS.ProcessEnv,
  passthrough: readonly string[],
  home: string,
  providerEnv: Readonly<Record<string, string>>,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(workerEnv)) {
    if (value !== undefined && [...ALWAYS, ...passthrough].some((p) => matches(name, p))) env[name] = value;
  }
  return { ...env, TERM: 'xterm-256color', COLORTERM: 'truecolor', HOME: home, USER: workerEnv.USER ?? 'slot', ...providerEnv };
}
