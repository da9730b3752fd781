// A PostgreSQL server of our own for tests (Debian's package, obtained by
// scripts/cluster/obtain.sh --postgres-only before the test run): initdb and pg_ctl
// under a temporary directory on a free loopback port, as the cluster test runs it.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { asPostgres, freePort, run } from './cluster/cluster';

const USER = 'slots';
const PASSWORD = 'slots-test-password';

/** The newest PostgreSQL's bin directory, or undefined when none is installed. */
export function findPostgresBin(): string | undefined {
  if (!existsSync('/usr/lib/postgresql')) return undefined;
  const versions = readdirSync('/usr/lib/postgresql')
    .filter((v) => existsSync(join('/usr/lib/postgresql', v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join('/usr/lib/postgresql', versions[0], 'bin') : undefined;
}

/** Skipped without PostgreSQL on a user's machine; with CI set the test fails instead. */
export function postgresOrSkip(what: string): { skip: boolean; missing?: string } {
  if (findPostgresBin()) return { skip: false };
  const missing = 'PostgreSQL (initdb under /usr/lib/postgresql/*/bin; scripts/cluster/obtain.sh --postgres-only installs it)';
  if (process.env.CI) return { skip: false, missing };
  console.warn(`[${what}] skipped: ${missing} is missing (with CI set this fails instead)`);
  return { skip: true, missing };
}

export interface Postgres {
  /** postgres://user:password@127.0.0.1:port/database */
  readonly url: string;
  readonly port: number;
  /** psql's unaligned rows for `sql`. */
  psql(sql: string): string[];
  /** Stops the server (the data stays); `start` brings it back on the same port. */
  stopServer(): void;
  startServer(): void;
  /** Stops it and removes its directory. */
  stop(): Promise<void>;
}

export async function startPostgres(database = 'slots'): Promise<Postgres> {
  const bin = findPostgresBin();
  if (!bin) throw new Error('PostgreSQL is not installed: run scripts/cluster/obtain.sh --postgres-only');
  const dir = await mkdtemp(join(tmpdir(), 'slots-pg-'));
  const data = join(dir, 'data');
  const sock = join(dir, 'sock');
  await mkdir(sock);
  if (process.getuid?.() === 0) {
    const uid = Number(run('id', ['-u', 'postgres']).trim());
    const gid = Number(run('id', ['-g', 'postgres']).trim());
    await chown(dir, uid, gid);
    await chown(sock, uid, gid);
  }
  const pwFile = join(dir, 'pwfile');
  await writeFile(pwFile, `${PASSWORD}\n`, { mode: 0o644 });
  const port = await freePort();
  const pg = (name: string): string => join(bin, name);
  const [cmd, args] = asPostgres(pg('initdb'), ['-D', data, '-U', USER, `--pwfile=${pwFile}`, '--auth=scram-sha-256', '-E', 'UTF8', '--locale=C', '--no-sync']);
  run(cmd, args);
  let running = false;
  const startServer = (): void => {
    const [c, a] = asPostgres(pg('pg_ctl'), ['-D', data, '-l', join(dir, 'postgresql.log'), '-w', '-t', '60', '-o', `-p ${port} -c listen_addresses=127.0.0.1 -k ${sock}`, 'start']);
    run(c, a);
    running = true;
  };
  const stopServer = (): void => {
    if (!running) return;
    const [c, a] = asPostgres(pg('pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop']);
    spawnSync(c, a, { stdio: 'ignore', timeout: 60_000 });
    running = false;
  };
  const psql = (sql: string, db = database): string[] =>
    run(pg('psql'), ['-h', '127.0.0.1', '-p', String(port), '-U', USER, '-d', db, '-v', 'ON_ERROR_STOP=1', '-Atc', sql], { env: { PGPASSWORD: PASSWORD } })
      .split('\n')
      .filter((line) => line !== '');
  try {
    startServer();
    psql(`CREATE DATABASE ${database}`, 'postgres');
  } catch (err) {
    stopServer();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${database}`,
    port,
    psql: (sql) => psql(sql),
    stopServer,
    startServer,
    async stop() {
      stopServer();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
