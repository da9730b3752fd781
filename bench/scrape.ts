// What one Prometheus scrape of the slot metrics costs at fleet size (workers/metrics.ts):
// the time to answer, the series sent, and the RPCs the Temporal server serves for it,
// with per-slot series on (a listing of every slot, cached, redone in the background)
// and off (counts only). Counted with a gRPC interceptor on the scraper's own connection.
import { Client, Connection } from '@temporalio/client';
import { InterceptingCall, type Interceptor } from '@grpc/grpc-js';
import { SlotMetrics } from '../workers/metrics';
import { listExecutions } from '../client/visibility';
import { distribution, round } from './report';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** RPCs by method name, counted as they are sent. */
function countingInterceptor(counts: Map<string, number>): Interceptor {
  return (options, nextCall) => {
    const method = String(options.method_definition.path).split('/').pop() ?? '?';
    counts.set(method, (counts.get(method) ?? 0) + 1);
    return new InterceptingCall(nextCall(options));
  };
}

async function timed<T>(f: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await f();
  return { ms: round(performance.now() - started, 1), value };
}

export interface ScrapeCost {
  readonly perSlotSeries: boolean;
  /** The first scrape of an exporter nobody primed: waits for the first listing (or counts), at most 5 s. */
  readonly coldMs: number;
  /** Scrapes answered from the cached listing. */
  readonly warmMs: ReturnType<typeof distribution>;
  /** Per-slot: a scrape that finds the listing too old, answers with it and starts a new one in the background. */
  readonly staleMs?: number;
  /** Per-slot: how long the background listing took (one per max age, however many scrapes). */
  readonly backgroundListingMs?: number;
  readonly series: number;
  readonly bytes: number;
  /** RPCs the server served for the cold scrape, by method. */
  readonly rpcsCold: Record<string, number>;
  /** RPCs for the warm scrapes, all of them (a new listing each 15 s or 5 times what the last took; counts each 5 s; pools each 5 s). */
  readonly rpcsWarm: Record<string, number>;
  /** What the scrape reported as slot_provisioner_slots (the sum). */
  readonly slotsCounted: number;
}

/** Measures scrapes of the slots of `taskQueue` on the server at `address`. */
export async function scrapeCost(address: string, namespace: string, taskQueue: string, perSlotSeries: boolean, warmScrapes = 5): Promise<ScrapeCost> {
  const counts = new Map<string, number>();
  const connection = await Connection.connect({ address, interceptors: [countingInterceptor(counts)] });
  try {
    const client = new Client({ connection, namespace });
    const maxAge = 60_000;
    const metrics = new SlotMetrics({ client, taskQueue, processMetrics: false, perSlotSeries, slotListingMaxAgeMs: maxAge });
    counts.clear();
    const cold = await timed(() => metrics.registry.metrics());
    const rpcsCold = Object.fromEntries(counts);
    counts.clear();
    // A first scrape that gave up (5 s) left the listing running: the warm scrapes start once it is done.
    for (let i = 0; i < 600 && !/^slot_provisioner_slots\{/m.test(await metrics.registry.metrics()); i++) await sleep(100);
    counts.clear();
    const warm: number[] = [];
    let text = '';
    for (let i = 0; i < warmScrapes; i++) {
      // Prometheus' usual interval is 15 s or more; a second apart is enough for the cache to be what is measured.
      await sleep(1000);
      const scrape = await timed(() => metrics.registry.metrics());
      warm.push(scrape.ms);
      text = scrape.value;
    }
    const rpcsWarm = Object.fromEntries(counts);
    const lines = text.split('\n').filter((l) => l.startsWith('slot_provisioner_'));
    const slotsCounted = lines.filter((l) => l.startsWith('slot_provisioner_slots{')).reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
    let stale: { staleMs: number; backgroundListingMs: number } | undefined;
    if (perSlotSeries) {
      // The same exporter once its listing is older than the max age: the scrape answers at once.
      let skewMs = 0;
      const aged = new SlotMetrics({ client, taskQueue, processMetrics: false, perSlotSeries, now: () => Date.now() + skewMs });
      for (let i = 0; i < 600 && !/^slot_provisioner_slots\{/m.test(await aged.registry.metrics()); i++) await sleep(100);
      // An hour later by its clock: its listing is too old whatever it took.
      skewMs = 3600_000;
      const staleScrape = await timed(() => aged.registry.metrics());
      // What that background listing costs: every running slot's row, read raw, as the exporter reads them.
      const listing = await timed(async () => {
        let rows = 0;
        for await (const _ of listExecutions(client, `WorkflowType = 'slotWorkflow' AND ExecutionStatus = 'Running' AND TaskQueue = '${taskQueue}'`)) rows += 1;
        return rows;
      });
      stale = { staleMs: staleScrape.ms, backgroundListingMs: listing.ms };
    }
    return {
      perSlotSeries,
      coldMs: cold.ms,
      warmMs: distribution(warm, 1),
      ...(stale ?? {}),
      series: lines.length,
      bytes: Buffer.byteLength(text),
      rpcsCold,
      rpcsWarm,
      slotsCounted,
    };
  } finally {
    await connection.close();
  }
}
