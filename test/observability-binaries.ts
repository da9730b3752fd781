// Finds or installs what the metrics and tracing tests run against: Prometheus and
// promtool (Debian's `prometheus` package, as scripts/cluster/obtain.sh installs
// PostgreSQL) and the Zipkin server (an executable jar from Maven Central, cached).
import { execFile, spawn } from 'node:child_process';
import { access, constants, mkdir, readdir, rename, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { onPath as onPathIn, PROJECT_ROOT } from '../workers/temporal-binaries';

/** Prometheus, promtool or the Zipkin server cannot be found or installed (tests of metrics and traces). The message says what to install. */
export class ObservabilitySetupError extends Error {
  override readonly name = 'ObservabilitySetupError';
}

/** Git-ignored cache of the Zipkin jar. */
export const ZIPKIN_DIR = join(PROJECT_ROOT, '.cache', 'zipkin');
const ZIPKIN_POM = join(dirname(fileURLToPath(import.meta.url)), 'zipkin-server.pom.xml');

type Log = (line: string) => void;
const defaultLog: Log = (line) => process.stderr.write(`[observability-setup] ${line}\n`);

/** Debian's prometheus lives in /usr/bin; /usr/sbin is not on every PATH. */
const onPath = (name: string, pathEnv?: string): Promise<string | undefined> => onPathIn(name, pathEnv, ['/usr/bin', '/usr/sbin']);

/** Runs a command to its end; the failure quotes the end of its output. */
function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let tail = '';
    const keep = (chunk: Buffer): void => void (tail = (tail + chunk.toString()).slice(-3000));
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new ObservabilitySetupError(`${command} ${args.join(' ')} exited with ${code}:\n${tail}`))));
  });
}

export interface PrometheusBinaries {
  readonly prometheus: string;
  readonly promtool: string;
  readonly version: string;
}

/**
 * `prometheus` and `promtool` from PATH, else installed now from apt (root only; the
 * package's own service is stopped: tests run their own instance on a free port).
 */
export async function obtainPrometheus(opts: { env?: NodeJS.ProcessEnv; install?: boolean; log?: Log } = {}): Promise<PrometheusBinaries> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? defaultLog;
  let prometheus = await onPath('prometheus', env.PATH);
  let promtool = await onPath('promtool', env.PATH);
  if (!prometheus || !promtool) {
    if (opts.install === false) throw new ObservabilitySetupError('prometheus and promtool are not installed: apt-get install prometheus');
    if (process.getuid?.() !== 0) {
      throw new ObservabilitySetupError('prometheus and promtool are not on PATH and this is not root: install them yourself (apt-get install prometheus)');
    }
    log('installing prometheus (and promtool) from apt…');
    const aptEnv = { ...env, DEBIAN_FRONTEND: 'noninteractive' };
    // Two test files may ask at once: the second waits for dpkg's lock instead of failing.
    const wait = ['-o', 'DPkg::Lock::Timeout=300'];
    const install = [...wait, 'install', '-y', '--no-install-recommends', 'prometheus'];
    await run('apt-get', install, aptEnv).catch(async (err: unknown) => {
      if ((await onPath('prometheus', env.PATH)) && (await onPath('promtool', env.PATH))) return;
      log(`apt-get install failed (${(err as Error).message.split('\n')[0]}); updating the package lists and trying again…`);
      await run('apt-get', [...wait, 'update'], aptEnv);
      await run('apt-get', install, aptEnv);
    });
    // The package starts a daemon of its own on :9090 where it can; ours runs elsewhere.
    await run('sh', ['-c', '(service prometheus stop || /etc/init.d/prometheus stop) >/dev/null 2>&1 || true'], aptEnv).catch(() => undefined);
    prometheus = await onPath('prometheus', env.PATH);
    promtool = await onPath('promtool', env.PATH);
    if (!prometheus || !promtool) throw new ObservabilitySetupError('apt-get install prometheus finished but prometheus or promtool is still missing');
  }
  const { stdout } = await promisify(execFile)(prometheus, ['--version']);
  return { prometheus, promtool, version: /version (\S+)/.exec(stdout)?.[1] ?? 'unknown' };
}

/** The Zipkin server's jar: `ZIPKIN_JAR`, else the cached copy, else fetched now with Maven (needs Java and Maven). */
export async function obtainZipkin(opts: { env?: NodeJS.ProcessEnv; fetch?: boolean; log?: Log } = {}): Promise<{ jar: string; java: string }> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? defaultLog;
  const java = await onPath('java', env.PATH);
  if (!java) throw new ObservabilitySetupError('no Java to run the Zipkin server: install a JDK (17+)');
  if (env.ZIPKIN_JAR) {
    await access(env.ZIPKIN_JAR, constants.R_OK).catch(() => {
      throw new ObservabilitySetupError(`ZIPKIN_JAR=${env.ZIPKIN_JAR} is not a readable file`);
    });
    return { jar: env.ZIPKIN_JAR, java };
  }
  const cached = async (): Promise<string | undefined> => {
    const jars = await readdir(ZIPKIN_DIR).catch(() => [] as string[]);
    const jar = jars.find((name) => /^zipkin-server-.*-exec\.jar$/.test(name));
    return jar ? join(ZIPKIN_DIR, jar) : undefined;
  };
  const found = await cached();
  if (found) return { jar: found, java };
  if (opts.fetch === false) throw new ObservabilitySetupError(`no Zipkin server jar in ${ZIPKIN_DIR}`);
  const mvn = await onPath('mvn', env.PATH);
  if (!mvn) throw new ObservabilitySetupError('no Maven to fetch the Zipkin server: install Maven, or set ZIPKIN_JAR to zipkin-server-3.4.2-exec.jar');
  log('fetching io.zipkin:zipkin-server:3.4.2:exec with Maven (first time only)…');
  const staging = `${ZIPKIN_DIR}.tmp-${process.pid}`;
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  try {
    await run(mvn, ['-B', '-q', '-f', ZIPKIN_POM, 'dependency:copy-dependencies', `-DoutputDirectory=${staging}`], env);
    await rm(ZIPKIN_DIR, { recursive: true, force: true });
    await rename(staging, ZIPKIN_DIR);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  const jar = await cached();
  if (!jar) throw new ObservabilitySetupError('Maven finished but no zipkin-server-*-exec.jar was copied');
  return { jar, java };
}

// `npm run setup:observability`: obtain both ahead of the tests and say where they are.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [prometheus, zipkin] = await Promise.all([obtainPrometheus(), obtainZipkin()]);
  defaultLog(`prometheus ${prometheus.version}: ${prometheus.prometheus}, promtool: ${prometheus.promtool}`);
  defaultLog(`zipkin: ${zipkin.jar} (run with ${zipkin.java} -jar)`);
}
