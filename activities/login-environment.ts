// The environment a login CLI runs with: a minimal one, so worker secrets
// (encryption keys, cloud credentials) never reach a third-party CLI.
const ALWAYS = ['PATH', 'LANG', 'LC_ALL', 'LC_CTYPE', 'TZ', 'TMPDIR', 'NODE_EXTRA_CA_CERTS', 'SSL_CERT_FILE', 'SSL_CERT_DIR',
  'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'no_proxy'];

/**
 * The project's own settings (payload keys, the backup store's URL and key, Temporal's API
 * key, the codec server's token …): never handed to a CLI, whatever LOGIN_ENV_PASSTHROUGH
 * says (`*` included). Prefixes, so settings added later are covered too.
 */
const PROJECT_OWN = /^(SLOTS_|SLOT_|TEMPORAL_|CODEC_|NOTIFY_|AGENT_TOKEN_|OTEL_|METRICS_|WORKER_|SUPERVISOR_|LOGIN_ENV_PASSTHROUGH$|LOGIN_CLI_|PROVIDER_PACE$|INCIDENT_|DATA_DIR$|LOG_LEVEL$)/;

/** Whether `name` is one of the project's own settings, which no login CLI gets. */
export const isProjectSetting = (name: string): boolean => PROJECT_OWN.test(name);

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
    if (value !== undefined && !isProjectSetting(name) && [...ALWAYS, ...passthrough].some((p) => matches(name, p))) env[name] = value;
  }
  return { ...env, TERM: 'xterm-256color', COLORTERM: 'truecolor', HOME: home, USER: workerEnv.USER ?? 'slot', ...providerEnv };
}
