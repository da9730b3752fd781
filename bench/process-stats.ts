// What a process costs, read from /proc: resident and proportional memory, CPU
// time, and the processes below it. Linux only, like the slot hosts.
import { readdir, readFile } from 'node:fs/promises';

const PAGE_KIB = 4;
/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

export interface MemorySample {
  /** Resident set, KiB (VmRSS). */
  readonly rssKiB: number;
  /** Peak resident set since start, KiB (VmHWM). */
  readonly peakRssKiB: number;
  /** Proportional set, KiB: shared pages divided among their sharers (smaps_rollup). */
  readonly pssKiB: number | undefined;
}

/** VmRSS and VmHWM, plus Pss when smaps_rollup is readable; undefined when the process is gone. */
export async function memoryOf(pid: number): Promise<MemorySample | undefined> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => undefined);
  if (status === undefined) return undefined;
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8').catch(() => undefined);
  const pss = rollup === undefined ? undefined : Number(/^Pss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? NaN);
  return { rssKiB: field('VmRSS'), peakRssKiB: field('VmHWM'), pssKiB: pss !== undefined && Number.isFinite(pss) ? pss : undefined };
}

interface StatFields {
  readonly ppid: number;
  readonly pgid: number;
  /** user + system CPU seconds of the process itself (not of its reaped children). */
  readonly cpuSeconds: number;
  /** user + system CPU seconds of its children that have exited and been waited for. */
  readonly childrenCpuSeconds: number;
  readonly rssKiB: number;
  readonly state: string;
}

async function statOf(pid: number): Promise<StatFields | undefined> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  // The command name may hold spaces and parentheses: fields start after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const num = (i: number): number => Number(rest[i]);
  return {
    state: rest[0] ?? '?',
    ppid: num(1),
    pgid: num(2),
    cpuSeconds: (num(11) + num(12)) / TICKS_PER_SECOND,
    childrenCpuSeconds: (num(13) + num(14)) / TICKS_PER_SECOND,
    rssKiB: num(21) * PAGE_KIB,
  };
}

/** CPU seconds (user + system) the process has used so far; undefined when it is gone. */
export async function cpuSecondsOf(pid: number): Promise<number | undefined> {
  return (await statOf(pid))?.cpuSeconds;
}

/** CPU seconds of a process and of its children that have exited (e.g. the login CLIs a worker ran). */
export async function cpuWithChildrenOf(pid: number): Promise<{ self: number; children: number } | undefined> {
  const st = await statOf(pid);
  return st ? { self: st.cpuSeconds, children: st.childrenCpuSeconds } : undefined;
}

/** Live processes (no zombies) whose parent chain leads to `root`, root excluded. */
export async function descendantsOf(root: number): Promise<number[]> {
  const parents = new Map<number, number>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const st = await statOf(Number(entry));
    if (st && st.state !== 'Z') parents.set(Number(entry), st.ppid);
  }
  const found: number[] = [];
  const frontier = [root];
  while (frontier.length > 0) {
    const parent = frontier.pop() as number;
    for (const [pid, ppid] of parents) {
      if (ppid === parent) {
        found.push(pid);
        frontier.push(pid);
      }
    }
  }
  return found;
}

/** Children of `parent` whose command line contains `needle` (e.g. the Temporal dev server). */
export async function childrenMatching(parent: number, needle: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const st = await statOf(Number(entry));
    if (!st || st.ppid !== parent) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(needle)) pids.push(Number(entry));
  }
  return pids;
}

/** Live processes whose environment holds `NAME=value…` with the value starting with `prefix` (e.g. HOME under a slots dir). */
export async function processesWithEnv(name: string, prefix: string): Promise<number[]> {
  const pids: number[] = [];
  const needle = `\0${name}=${prefix}`;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const environ = await readFile(`/proc/${entry}/environ`, 'utf8').catch(() => '');
    if (!`\0${environ}`.includes(needle)) continue;
    const st = await statOf(Number(entry));
    if (st && st.state !== 'Z') pids.push(Number(entry));
  }
  return pids;
}

/** Samples a process's RSS at an interval; `stop()` returns the samples (KiB) and stops. */
export function sampleRss(pid: number, everyMs: number): { stop(): number[] } {
  const samples: number[] = [];
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void memoryOf(pid)
      .then((m) => {
        if (m) samples.push(m.rssKiB);
      })
      .finally(() => (busy = false));
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      return samples;
    },
  };
}

/** CPU seconds the whole machine has been busy (all cores, every process: /proc/stat), for "what else ran meanwhile". */
export async function machineBusySeconds(): Promise<number | undefined> {
  const text = await readFile('/proc/stat', 'utf8').catch(() => undefined);
  const fields = text?.split('\n')[0]?.trim().split(/\s+/).slice(1).map(Number);
  if (!fields || fields.length < 8 || fields.some((x) => !Number.isFinite(x))) return undefined;
  // user nice system idle iowait irq softirq steal …: everything but idle and iowait.
  const [user, nice, system, , , irq, softirq, steal] = fields as [number, number, number, number, number, number, number, number];
  return (user + nice + system + irq + softirq + steal) / TICKS_PER_SECOND;
}

/**
 * CPU seconds (user + system) of each thread of a process so far, keyed `main` for the main
 * thread and `<comm>#<tid>` for the others (`/proc/<pid>/task/<tid>/comm`: the Temporal core's
 * threads are `tokio-runtime-w`, the SDK's workflow thread `workflow-proces`; node's worker threads,
 * libuv's pool and V8's helpers are all `node`). Threads that exited in between are not counted.
 * Empty when the process is gone.
 */
export async function threadCpuSecondsOf(pid: number): Promise<Record<string, number>> {
  const tids = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
  const byName: Record<string, number> = {};
  for (const tid of tids) {
    const [comm, stat] = await Promise.all([readFile(`/proc/${pid}/task/${tid}/comm`, 'utf8').catch(() => undefined), readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => undefined)]);
    if (comm === undefined || stat === undefined) continue;
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const name = tid === String(pid) ? 'main' : `${comm.trim()}#${tid}`;
    byName[name] = (byName[name] ?? 0) + (Number(rest[11]) + Number(rest[12])) / TICKS_PER_SECOND;
  }
  return byName;
}

/** `after − before` per thread name, in seconds, largest first (names only in `after` count from 0). */
export function threadCpuDelta(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  return Object.fromEntries(
    Object.entries(after)
      .map(([name, s]) => [name, Math.round((s - (before[name] ?? 0)) * 100) / 100] as [string, number])
      .filter(([, s]) => s > 0)
      .sort((a, b) => b[1] - a[1]),
  );
}
