import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ConfigError, ConfigSchema, loadConfig, temporalAddress, temporalConnectionOptions } from '../../host/config';
import { PROJECT_ROOT } from '../../workers/temporal-binaries';
import { DEFAULT_METRICS_PORT, metricsPlan } from '../../workers/metrics';
import { DEV_SERVER_DYNAMIC_CONFIG } from '../../workers/dev-server-config';

describe('configuration', () => {
  it('has the documented defaults', () => {
    const config = loadConfig({});
    expect(temporalAddress(config)).toBe('127.0.0.1:7233');
    expect(config.devServer.uiPort).toBe(8233);
    expect(config.slotsDir).toBe(`${PROJECT_ROOT}/.data/slots`);
    expect(config.devServer.dbFile).toBe(`${PROJECT_ROOT}/.data/temporal.sqlite`);
    expect(config.temporalAddress).toBeUndefined();
    // Sleeping slots beyond this are not kept in memory (the SDK's own default would keep thousands).
    expect(config.maxCachedWorkflows).toBe(500);
    expect(loadConfig({ WORKER_MAX_CACHED_WORKFLOWS: '50' }).maxCachedWorkflows).toBe(50);
    expect(() => loadConfig({ WORKER_MAX_CACHED_WORKFLOWS: 'many' })).toThrow(/WORKER_MAX_CACHED_WORKFLOWS/);
    // One process serves the slot workflows and this host's PTYs and files unless told otherwise.
    expect(config.roles).toEqual(['workflows', 'host']);
    expect(loadConfig({ WORKER_ROLES: ' host ' }).roles).toEqual(['host']);
    expect(() => loadConfig({ WORKER_ROLES: 'host,activities' })).toThrow(/WORKER_ROLES.*unknown: activities/);
    expect(() => loadConfig({ WORKER_ROLES: ',' })).toThrow(/WORKER_ROLES/);
  });

  it('names every bad variable and why', () => {
    let error: unknown;
    try {
      loadConfig({ TEMPORAL_PORT: 'seventy', TEMPORAL_UI_PORT: '99999', LOG_LEVEL: 'loud', SLOT_HOST: 'a/b', LOGIN_CLI_MEMORY_BUDGET_MB: 'lots', NOTIFY_USER_CODE: 'yes' });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join('\n');
    expect(problems).toMatch(/TEMPORAL_PORT="seventy"/);
    expect(problems).toMatch(/TEMPORAL_UI_PORT="99999"/);
    expect(problems).toMatch(/LOG_LEVEL="loud"/);
    expect(problems).toMatch(/SLOT_HOST="a\/b": must be letters/);
    expect(problems).toMatch(/LOGIN_CLI_MEMORY_BUDGET_MB="lots": must be a positive whole number of MiB/);
    expect(problems).toMatch(/NOTIFY_USER_CODE="yes": must be 0 or 1/);
  });

  it("names each bad entry of the host's OAuth server list, and takes good ones", () => {
    let error: unknown;
    try {
      loadConfig({ SLOTS_OIDC_SERVERS: 'https://idp.example.com, not a url, ftp://idp.example.com, https://u:p@idp.example.com, https://idp.example.com/x?q=1' });
    } catch (err) {
      error = err;
    }
    const problems = (error as ConfigError).problems.join('\n');
    expect(problems).toContain('"not a url" is not a URL');
    expect(problems).toContain('"ftp://idp.example.com": only https (or http on loopback) is allowed');
    expect(problems).toContain('"https://u:p@idp.example.com": it must not contain credentials');
    expect(problems).toContain('"https://idp.example.com/x?q=1": must have no query or fragment');
    expect(problems).not.toContain('"https://idp.example.com"');
    expect(() => loadConfig({ SLOTS_OIDC_SERVERS: 'https://idp.example.com/realms/a,http://127.0.0.1:*' })).not.toThrow();
  });

  it('rejects a TEMPORAL_ADDRESS without a port, and treats empty values as unset', () => {
    expect(() => loadConfig({ TEMPORAL_ADDRESS: 'temporal.example' })).toThrow(/TEMPORAL_ADDRESS="temporal.example": must be host:port/);
    expect(loadConfig({ TEMPORAL_ADDRESS: '' }).temporalAddress).toBeUndefined();
    expect(() => loadConfig({ TEMPORAL_PORT: '7000', TEMPORAL_UI_PORT: '7000' })).toThrow(/must differ/);
  });
});

describe('metrics and traces', () => {
  it('are off for the worker unless METRICS_PORT is set, on for `npm start` by default, and off with METRICS_PORT=off', () => {
    expect(metricsPlan(loadConfig({}).metrics)).toBeUndefined();
    expect(metricsPlan(loadConfig({}).metrics, DEFAULT_METRICS_PORT)).toEqual({ host: '127.0.0.1', port: 9464, coreBindAddress: '127.0.0.1:9465', coreUrl: 'http://127.0.0.1:9465/metrics' });
    expect(metricsPlan(loadConfig({ METRICS_PORT: 'off' }).metrics, DEFAULT_METRICS_PORT)).toBeUndefined();
    expect(metricsPlan(loadConfig({ METRICS_PORT: '9100', TEMPORAL_METRICS_PORT: '9200', METRICS_HOST: '0.0.0.0' }).metrics)).toMatchObject({ host: '0.0.0.0', port: 9100, coreBindAddress: '127.0.0.1:9200' });
    const tracing = loadConfig({ OTEL_EXPORTER_ZIPKIN_ENDPOINT: 'http://127.0.0.1:9411/api/v2/spans' }).tracing;
    expect(tracing).toEqual({ otlpEndpoint: undefined, zipkinEndpoint: 'http://127.0.0.1:9411/api/v2/spans', serviceName: 'slot-provisioner' });
  });

  it('names a bad metrics port, a core port equal to it, and an endpoint that is not a URL', () => {
    const problems = (env: NodeJS.ProcessEnv): string => {
      try {
        loadConfig(env);
      } catch (err) {
        return (err as ConfigError).problems.join('\n');
      }
      return '';
    };
    expect(problems({ METRICS_PORT: 'on' })).toMatch(/METRICS_PORT="on": must be a port \(1-65535\) or off/);
    expect(problems({ METRICS_SLOT_SERIES: 'no' })).toMatch(/METRICS_SLOT_SERIES="no": must be on or off/);
    expect(loadConfig({}).metrics.perSlotSeries).toBe(true);
    expect(loadConfig({ METRICS_SLOT_SERIES: 'off' }).metrics.perSlotSeries).toBe(false);
    expect(problems({ METRICS_PORT: '9464', TEMPORAL_METRICS_PORT: '9464' })).toMatch(/TEMPORAL_METRICS_PORT=9464: must differ from METRICS_PORT/);
    const endpoints = problems({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318', OTEL_EXPORTER_ZIPKIN_ENDPOINT: 'zipkin' });
    expect(endpoints).toMatch(/OTEL_EXPORTER_OTLP_ENDPOINT="collector:4318": must be an http\(s\) URL/);
    expect(endpoints).toMatch(/OTEL_EXPORTER_ZIPKIN_ENDPOINT="zipkin": must be an http\(s\) URL/);
  });
});

describe('Temporal transport (TLS, mTLS, API key)', () => {
  const address = { TEMPORAL_ADDRESS: 'temporal.example:7233' };
  let dir: string;
  const CERT = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
  const KEY = '-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'config-tls-'));
    await writeFile(join(dir, 'ca.pem'), CERT);
    await writeFile(join(dir, 'client.pem'), CERT);
    await writeFile(join(dir, 'client.key'), KEY);
    await writeFile(join(dir, 'api-key'), 'tmprl-key-from-file\n');
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));
  const problemsOf = (env: NodeJS.ProcessEnv): string => {
    try {
      loadConfig(env);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as ConfigError).problems.join('\n');
    }
    throw new Error('loadConfig accepted the environment');
  };

  it('is plain gRPC by default, and so is the embedded dev server', () => {
    expect(temporalConnectionOptions(loadConfig({}))).toEqual({ address: '127.0.0.1:7233' });
    expect(temporalConnectionOptions(loadConfig(address))).toEqual({ address: 'temporal.example:7233' });
    expect(problemsOf({ TEMPORAL_TLS: 'true' })).toMatch(/TEMPORAL_TLS: needs TEMPORAL_ADDRESS; the embedded dev server/);
    expect(problemsOf({ TEMPORAL_TLS: 'yes', ...address })).toMatch(/TEMPORAL_TLS="yes": must be true or false/);
  });

  it('reads the CA, the client certificate pair and the server name into the options of every connection', () => {
    const options = temporalConnectionOptions(
      loadConfig({
        ...address,
        TEMPORAL_TLS_CA_FILE: join(dir, 'ca.pem'),
        TEMPORAL_TLS_CERT_FILE: join(dir, 'client.pem'),
        TEMPORAL_TLS_KEY_FILE: join(dir, 'client.key'),
        TEMPORAL_TLS_SERVER_NAME: 'frontend.internal',
      }),
    );
    expect(options.tls).toEqual({
      serverRootCACertificate: Buffer.from(CERT),
      clientCertPair: { crt: Buffer.from(CERT), key: Buffer.from(KEY) },
      serverNameOverride: 'frontend.internal',
    });
    expect(temporalConnectionOptions(loadConfig({ ...address, TEMPORAL_TLS: 'true' })).tls).toBe(true);
  });

  it('wants a client certificate and its key both or neither', () => {
    expect(problemsOf({ ...address, TEMPORAL_TLS_CERT_FILE: join(dir, 'client.pem') })).toMatch(
      /TEMPORAL_TLS_CERT_FILE is set without TEMPORAL_TLS_KEY_FILE/,
    );
    expect(problemsOf({ ...address, TEMPORAL_TLS_KEY_FILE: join(dir, 'client.key') })).toMatch(
      /TEMPORAL_TLS_KEY_FILE is set without TEMPORAL_TLS_CERT_FILE/,
    );
  });

  it('names the variable and the path of a file it cannot read or that holds the wrong thing', () => {
    const missing = join(dir, 'nope.pem');
    const problems = problemsOf({ ...address, TEMPORAL_TLS_CA_FILE: missing, TEMPORAL_TLS_CERT_FILE: join(dir, 'client.key'), TEMPORAL_TLS_KEY_FILE: join(dir, 'client.pem') });
    expect(problems).toContain(`TEMPORAL_TLS_CA_FILE="${missing}": cannot read ${missing}: ENOENT`);
    expect(problems).toContain(`TEMPORAL_TLS_CERT_FILE="${join(dir, 'client.key')}": ${join(dir, 'client.key')} is not a PEM certificate`);
    expect(problems).toContain(`TEMPORAL_TLS_KEY_FILE="${join(dir, 'client.pem')}": ${join(dir, 'client.pem')} is not a PEM private key`);
    expect(problemsOf({ ...address, TEMPORAL_API_KEY_FILE: missing })).toContain(`TEMPORAL_API_KEY_FILE="${missing}": cannot read ${missing}: ENOENT`);
  });

  it('takes an API key from the variable or a file, not both, turns TLS on like the Temporal CLI, and never repeats it', () => {
    const fromFile = temporalConnectionOptions(loadConfig({ ...address, TEMPORAL_API_KEY_FILE: join(dir, 'api-key') }));
    expect(fromFile).toEqual({ address: 'temporal.example:7233', tls: true, apiKey: 'tmprl-key-from-file' });
    // Only an explicit TEMPORAL_TLS=false sends the key without TLS (a proxy terminating TLS on the same host).
    expect(temporalConnectionOptions(loadConfig({ ...address, TEMPORAL_API_KEY: 'tmprl-secret-1', TEMPORAL_TLS: 'false' }))).toEqual({
      address: 'temporal.example:7233',
      apiKey: 'tmprl-secret-1',
    });
    expect(problemsOf({ ...address, TEMPORAL_API_KEY: 'tmprl-secret-1', TEMPORAL_API_KEY_FILE: join(dir, 'api-key') })).toMatch(
      /TEMPORAL_API_KEY and TEMPORAL_API_KEY_FILE are both set: use one/,
    );
    const bad = problemsOf({ ...address, TEMPORAL_API_KEY: 'tmprl secret with spaces' });
    expect(bad).toMatch(/TEMPORAL_API_KEY=\(hidden\): must be printable ASCII/);
    expect(bad).not.toContain('secret with spaces');
    expect(problemsOf({ ...address, TEMPORAL_TLS: 'false', TEMPORAL_TLS_CA_FILE: join(dir, 'ca.pem') })).toMatch(/TEMPORAL_TLS=false contradicts/);
  });
});

describe('docker-compose.yml', () => {
  it('runs Temporal on PostgreSQL, the Web UI, a workflows process and a slot host configured with variables the worker reads', async () => {
    const compose = parse(await readFile(`${PROJECT_ROOT}/docker-compose.yml`, 'utf8')) as {
      services: Record<string, { image?: string; build?: string; environment?: Record<string, string>; depends_on?: unknown; ports?: string[]; volumes?: string[] }>;
      volumes: Record<string, unknown>;
    };
    const { postgresql, temporal, worker, workflows } = compose.services;
    const ui = compose.services['temporal-ui'];
    expect(postgresql?.image).toMatch(/^postgres:/);
    expect(temporal?.image).toMatch(/^temporalio\/auto-setup:/);
    expect(temporal?.environment?.DB).toBe('postgres12');
    expect(temporal?.environment?.POSTGRES_SEEDS).toBe('postgresql');
    // The dynamic configuration the cluster test runs with, mounted where DYNAMIC_CONFIG_FILE_PATH (relative to /etc/temporal) points.
    const mount = (temporal?.volumes ?? []).find((v) => v.startsWith('./temporal/dynamicconfig.yaml:'));
    expect(mount?.split(':')[1]).toBe(`/etc/temporal/${temporal?.environment?.DYNAMIC_CONFIG_FILE_PATH}`);
    const dynamic = parse(await readFile(`${PROJECT_ROOT}/temporal/dynamicconfig.yaml`, 'utf8')) as Record<string, Array<{ value: unknown }>>;
    expect(dynamic['matching.numTaskqueueReadPartitions']?.[0]?.value).toBe(1);
    expect(dynamic['system.forceSearchAttributesCacheRefreshOnRead']?.[0]?.value).toBe(true);
    // The embedded dev server matches as the cluster does.
    for (const key of ['matching.numTaskqueueReadPartitions', 'matching.numTaskqueueWritePartitions']) {
      expect(DEV_SERVER_DYNAMIC_CONFIG[key]).toBe(JSON.stringify(dynamic[key]?.[0]?.value));
    }
    expect(ui?.image).toMatch(/^temporalio\/ui:/);
    expect(ui?.environment?.TEMPORAL_ADDRESS).toBe('temporal:7233');
    // Published on this host only: a plain frontend on every interface hands the slots to the network.
    expect(temporal?.ports).toEqual(['127.0.0.1:7233:7233']);
    expect(ui?.ports).toEqual(['127.0.0.1:8233:8080']);
    expect(worker?.build).toBe('.');

    // Every variable given to the worker is one it reads, and the values parse.
    const known = Object.keys(ConfigSchema.shape);
    const env = worker?.environment ?? {};
    expect(Object.keys(env).filter((name) => !known.includes(name))).toEqual([]);
    const config = loadConfig(env);
    expect(config.temporalAddress).toBe('temporal:7233');
    expect(config.slotsDir).toBe('/var/lib/slot-provisioner/slots');
    // The slot directory is a named volume: credentials survive a container rebuild.
    expect(compose.volumes).toHaveProperty('slots');
    // The topology test/cluster proves: one process runs the workflows, the slot host only its PTYs and files.
    expect(config.roles).toEqual(['host']);
    expect(workflows?.build).toBe('.');
    const workflowsEnv = workflows?.environment ?? {};
    expect(Object.keys(workflowsEnv).filter((name) => !known.includes(name))).toEqual([]);
    expect(loadConfig(workflowsEnv).roles).toEqual(['workflows']);
    expect(loadConfig(workflowsEnv).temporalAddress).toBe('temporal:7233');
    // Metrics are on, reachable from this host only.
    expect(metricsPlan(config.metrics)).toMatchObject({ host: '0.0.0.0', port: 9464, coreBindAddress: '127.0.0.1:9465' });
    expect(worker?.ports).toEqual(['127.0.0.1:9464:9464']);

    const dockerfile = await readFile(`${PROJECT_ROOT}/Dockerfile`, 'utf8');
    expect(dockerfile).toMatch(/workers\/worker\.ts/);
    expect(dockerfile).toContain(`SLOTS_DIR=${config.slotsDir}`);
  });
});
