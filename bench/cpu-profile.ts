// Where a worker's JavaScript time goes: the V8 CPU profiles `--cpu-prof` writes
// (one per thread), reduced to self time by function and by area of code.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { round } from './report';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples?: readonly number[];
  readonly timeDeltas?: readonly number[];
}

export interface ThreadProfile {
  readonly file: string;
  readonly wallMs: number;
  /** Sampled time not idle, ms. */
  readonly busyMs: number;
  readonly byArea: Record<string, number>;
  readonly topFunctions: ReadonlyArray<{ readonly name: string; readonly where: string; readonly selfMs: number }>;
  /** Time in a function and everything it called (each function counted once per sample). */
  readonly topInclusive: ReadonlyArray<{ readonly name: string; readonly where: string; readonly inclusiveMs: number }>;
}

/** Which part of the stack a frame belongs to, by its script URL. */
function areaOf(frame: ProfileNode['callFrame']): string {
  const { url, functionName } = frame;
  if (functionName === '(idle)' || functionName === '(program)' || functionName === '(garbage collector)') return functionName;
  if (url === '') return '(native / V8 builtins)';
  if (url.includes('workflow-bundle') || url.includes('/workflows/')) return 'workflow code (bundle)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1] as string;
  if (url.startsWith('node:')) return 'node core';
  const project = /\/(activities|providers|workers|common|cli|bench)\//.exec(url);
  if (project) return `project ${project[1]}/`;
  return 'other';
}

const whereOf = (frame: ProfileNode['callFrame']): string =>
  frame.url ? `${frame.url.replace(/^.*node_modules\//, '').replace(/^.*\/(?=[^/]+$)/, '')}:${frame.lineNumber + 1}` : '';

function inclusive(profile: CpuProfile, selfUs: ReadonlyMap<number, number>, top: number): ThreadProfile['topInclusive'] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const totals = new Map<string, { name: string; where: string; us: number }>();
  for (const [id, us] of selfUs) {
    if (byId.get(id)?.callFrame.functionName === '(idle)') continue;
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const frame = (byId.get(cur) as ProfileNode).callFrame;
      if (frame.functionName === '(root)') continue;
      const where = whereOf(frame);
      const key = `${frame.functionName}@${where}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const entry = totals.get(key) ?? { name: frame.functionName || '(anonymous)', where, us: 0 };
      entry.us += us;
      totals.set(key, entry);
    }
  }
  return [...totals.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map((f) => ({ name: f.name, where: f.where, inclusiveMs: round(f.us / 1000, 0) }));
}

/** A span of the monotonic clock, µs (`process.hrtime.bigint() / 1000n`: the clock V8's profiles use). */
export interface ProfileWindow {
  readonly fromUs: number;
  readonly toUs: number;
}

/** The monotonic clock in µs, comparable with a V8 CPU profile's sample times (any process on this machine). */
export const monotonicUs = (): number => Number(process.hrtime.bigint() / 1000n);

function summarize(file: string, profile: CpuProfile, top: number, window?: ProfileWindow): ThreadProfile {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  let at = profile.startTime;
  for (let i = 0; i < samples.length; i++) {
    const id = samples[i] as number;
    at += deltas[i] ?? 0;
    if (window && (at < window.fromUs || at > window.toUs)) continue;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (deltas[i] ?? 0));
  }
  const byArea: Record<string, number> = {};
  const byFunction = new Map<string, { name: string; where: string; us: number }>();
  let busyUs = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    const area = areaOf(node.callFrame);
    byArea[area] = (byArea[area] ?? 0) + us;
    if (area === '(idle)') continue;
    busyUs += us;
    const where = whereOf(node.callFrame);
    const key = `${node.callFrame.functionName}@${where}`;
    const entry = byFunction.get(key) ?? { name: node.callFrame.functionName || '(anonymous)', where, us: 0 };
    entry.us += us;
    byFunction.set(key, entry);
  }
  return {
    file,
    wallMs: round((window ? Math.min(window.toUs, profile.endTime) - Math.max(window.fromUs, profile.startTime) : profile.endTime - profile.startTime) / 1000, 0),
    busyMs: round(busyUs / 1000, 0),
    byArea: Object.fromEntries(Object.entries(byArea).sort((a, b) => b[1] - a[1]).map(([k, us]) => [k, round(us / 1000, 0)])),
    topFunctions: [...byFunction.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((f) => ({ name: f.name, where: f.where, selfMs: round(f.us / 1000, 0) })),
    topInclusive: inclusive(profile, selfUs, top * 2),
  };
}

/** Every profile in `dir`, busiest thread first; only the samples inside `window` when given. */
export async function summarizeProfiles(dir: string, top = 15, window?: ProfileWindow): Promise<ThreadProfile[]> {
  const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.cpuprofile'));
  const threads: ThreadProfile[] = [];
  for (const file of files) {
    const profile = JSON.parse(await readFile(join(dir, file), 'utf8')) as CpuProfile;
    threads.push(summarize(file, profile, top, window));
  }
  return threads.sort((a, b) => b.busyMs - a.busyMs);
}
