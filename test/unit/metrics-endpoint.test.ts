// The /metrics endpoint on its own: what it answers besides GET /metrics, and how it
// says that the SDK core's part is missing (its exporter not up) instead of failing the scrape.
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlotMetrics, startMetricsServer, type MetricsServer } from '../../workers/metrics';
import { providerNames } from '../../providers';
import { devServerClient, uniqueName } from '../harness';
import { freePort } from '../peers/observability';

describe('the metrics endpoint', () => {
  let close: (() => Promise<void>) | undefined;
  let endpoint: MetricsServer;
  let core: Server;
  let coreUrl: string;
  let temporal: Awaited<ReturnType<typeof devServerClient>>['client'];

  beforeAll(async () => {
    const { client, connection } = await devServerClient();
    temporal = client;
    close = () => connection.close();
    // A stand-in for the SDK core's exporter, started and stopped by the test.
    const corePort = await freePort();
    coreUrl = `http://127.0.0.1:${corePort}/metrics`;
    core = createServer((_req, res) => res.end('# TYPE temporal_request_total counter\ntemporal_request_total{operation="Poll"} 7\n'));
    await new Promise<void>((resolve) => core.listen(corePort, '127.0.0.1', resolve));
    const metrics = new SlotMetrics({ client, taskQueue: uniqueName('empty-queue'), processMetrics: false });
    endpoint = await startMetricsServer({ metrics, host: '127.0.0.1', port: 0, coreMetricsUrl: coreUrl });
  });

  afterAll(async () => {
    await endpoint?.close();
    core?.close();
    await close?.();
  });

  it('serves ours followed by the core\'s, and says when the core\'s part is missing', async () => {
    const up = await fetch(endpoint.url);
    expect(up.status).toBe(200);
    expect(up.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await up.text();
    expect(text).toMatch(/^# HELP slot_provisioner_slots /m);
    expect(text).toContain('slot_provisioner_refreshes_total{provider="claude",outcome="transient"} 0');
    expect(text).toContain('slot_provisioner_sdk_core_metrics_up 1');
    expect(text).toContain('temporal_request_total{operation="Poll"} 7');
    // No slot runs on this queue: no per-slot series.
    expect(text).not.toMatch(/^slot_provisioner_slot_phase\{/m);

    await new Promise<void>((resolve) => core.close(() => resolve()));
    const down = await (await fetch(endpoint.url)).text();
    expect(down).toContain('slot_provisioner_sdk_core_metrics_up 0');
    expect(down).not.toContain('temporal_request_total');
    expect(down).toContain('slot_provisioner_slots');
  });

  it("a provider name from workflow input is a label only when the registry knows it, else 'other': no series per invented name (issue 23)", async () => {
    const metrics = new SlotMetrics({ client: temporal, taskQueue: uniqueName('empty-queue'), processMetrics: false });
    for (let i = 0; i < 500; i++) metrics.observe('refreshCredential', { provider: `invented-${i}` }, { ok: { kind: 'refreshed' } });
    metrics.observe('refreshCredential', { provider: 'claude' }, { ok: { kind: 'refreshed' } });
    const values = (await metrics.refreshes.get()).values;
    const providers = new Set(values.map((v) => v.labels.provider));
    expect([...providers].sort()).toEqual([...providerNames(), 'other'].sort());
    expect(values.find((v) => v.labels.provider === 'other' && v.labels.outcome === 'success')?.value).toBe(500);
    expect(values.find((v) => v.labels.provider === 'claude' && v.labels.outcome === 'success')?.value).toBe(1);
  });

  it('answers 404 elsewhere and 405 to anything but GET', async () => {
    const elsewhere = await fetch(endpoint.url.replace('/metrics', '/'));
    expect(elsewhere.status).toBe(404);
    expect(await elsewhere.text()).toContain('/metrics');
    expect((await fetch(endpoint.url, { method: 'POST' })).status).toBe(405);
  });
});
