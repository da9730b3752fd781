import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ConfigError, ConfigSchema, loadConfig, temporalAddress } from '../../workers/config';
import { PROJECT_ROOT } from '../../workers/temporal-binaries';

describe('configuration', () => {
  it('has the documented defaults', () => {
    const config = loadConfig({});
    expect(temporalAddress(config)).toBe('127.0.0.1:7233');
    expect(config.devServer.uiPort).toBe(8233);
    expect(config.slotsDir).toBe(`${PROJECT_ROOT}/.data/slots`);
    expect(config.devServer.dbFile).toBe(`${PROJECT_ROOT}/.data/temporal.sqlite`);
    expect(config.temporalAddress).toBeUndefined();
  });

  it('names every bad variable and why', () => {
    let error: unknown;
    try {
      loadConfig({ TEMPORAL_PORT: 'seventy', TEMPORAL_UI_PORT: '99999', LOG_LEVEL: 'loud', SLOT_HOST: 'a/b' });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join('\n');
    expect(problems).toMatch(/TEMPORAL_PORT="seventy"/);
    expect(problems).toMatch(/TEMPORAL_UI_PORT="99999"/);
    expect(problems).toMatch(/LOG_LEVEL="loud"/);
    expect(problems).toMatch(/SLOT_HOST="a\/b": must be letters/);
  });

  it('rejects a TEMPORAL_ADDRESS without a port, and treats empty values as unset', () => {
    expect(() => loadConfig({ TEMPORAL_ADDRESS: 'temporal.example' })).toThrow(/TEMPORAL_ADDRESS="temporal.example": must be host:port/);
    expect(loadConfig({ TEMPORAL_ADDRESS: '' }).temporalAddress).toBeUndefined();
    expect(() => loadConfig({ TEMPORAL_PORT: '7000', TEMPORAL_UI_PORT: '7000' })).toThrow(/must differ/);
  });
});

describe('docker-compose.yml', () => {
  it('runs Temporal on PostgreSQL, the Web UI and a worker configured with variables the worker reads', async () => {
    const compose = parse(await readFile(`${PROJECT_ROOT}/docker-compose.yml`, 'utf8')) as {
      services: Record<string, { image?: string; build?: string; environment?: Record<string, string>; depends_on?: unknown; ports?: string[] }>;
      volumes: Record<string, unknown>;
    };
    const { postgresql, temporal, worker } = compose.services;
    const ui = compose.services['temporal-ui'];
    expect(postgresql?.image).toMatch(/^postgres:/);
    expect(temporal?.image).toMatch(/^temporalio\/auto-setup:/);
    expect(temporal?.environment?.DB).toBe('postgres12');
    expect(temporal?.environment?.POSTGRES_SEEDS).toBe('postgresql');
    expect(ui?.image).toMatch(/^temporalio\/ui:/);
    expect(ui?.environment?.TEMPORAL_ADDRESS).toBe('temporal:7233');
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

    const dockerfile = await readFile(`${PROJECT_ROOT}/Dockerfile`, 'utf8');
    expect(dockerfile).toMatch(/workers\/worker\.ts/);
    expect(dockerfile).toContain(`SLOTS_DIR=${config.slotsDir}`);
  });
});
