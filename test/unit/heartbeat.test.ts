// withHeartbeat: long work is heartbeated (how a dead worker is noticed and a
// cancellation arrives); short work is not, because the server persists every
// heartbeat to the workflow's state: a refresh of ~100 ms must cost it nothing.
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { withHeartbeat } from '../../activities/heartbeat';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function recording(): { env: MockActivityEnvironment; beats: Array<{ at: number; details: unknown }>; start: number } {
  const env = new MockActivityEnvironment({ heartbeatTimeoutMs: 30_000 }, { logger: new DefaultLogger('ERROR') });
  const beats: Array<{ at: number; details: unknown }> = [];
  const start = Date.now();
  env.on('heartbeat', (details: unknown) => beats.push({ at: Date.now() - start, details }));
  return { env, beats, start };
}

describe('withHeartbeat', () => {
  it('sends no heartbeat for work that ends before the first interval', async () => {
    const { env, beats } = recording();
    const result = await env.run(() => withHeartbeat(sleep(50).then(() => 'refreshed'), 1000));
    expect(result).toBe('refreshed');
    // Nothing late either: the loop ended with the work.
    await sleep(1100);
    expect(beats).toEqual([]);
  });

  it('heartbeats long work every interval, with its details, and stops when it ends', async () => {
    const { env, beats } = recording();
    let step = 0;
    await env.run(() =>
      withHeartbeat(
        sleep(560),
        100,
        () => ({ step: ++step }),
      ),
    );
    const ended = beats.length;
    expect(ended).toBeGreaterThanOrEqual(3);
    // The first beat waits one interval; each carries the details of its moment.
    expect(beats[0]!.at).toBeGreaterThanOrEqual(95);
    expect(beats.map((b) => b.details)).toEqual(beats.map((_, i) => ({ step: i + 1 })));
    await sleep(300);
    expect(beats.length).toBe(ended);
  });

  it('passes the work\'s failure through and stops heartbeating', async () => {
    const { env, beats } = recording();
    await expect(env.run(() => withHeartbeat(sleep(250).then(() => Promise.reject(new Error('token endpoint said 500'))), 100))).rejects.toThrow('token endpoint said 500');
    const ended = beats.length;
    expect(ended).toBeGreaterThanOrEqual(1);
    await sleep(300);
    expect(beats.length).toBe(ended);
  });
});
