// The one JSON document each benchmark prints on stdout, and the numbers in it.
// Progress and diagnostics go to stderr, so stdout stays parseable.
import os from 'node:os';

export interface Machine {
  readonly cpus: number;
  readonly model: string;
  readonly memGiB: number;
  readonly node: string;
  readonly os: string;
}

export function machine(): Machine {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    model: cpus[0]?.model.trim() ?? 'unknown',
    memGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
  };
}

export interface Target {
  /** What the issue asks, in words with its unit (e.g. "p99 <= 100 ms"). */
  readonly target: string;
  readonly measured: number | string | null;
  readonly met: boolean | null;
}

export interface BenchmarkDocument {
  readonly benchmark: string;
  readonly machine: Machine;
  readonly date: string;
  /** `git rev-parse --short HEAD` when the benchmark started, and whether the work tree had changes. */
  readonly code?: string;
  readonly loadAverage?: { readonly atStart: readonly number[]; readonly atEnd: readonly number[] };
  readonly parameters: Record<string, unknown>;
  readonly results: Record<string, unknown>;
  readonly baseline: Record<string, unknown>;
  readonly targets: Record<string, Target>;
  /** Caps, contaminations, anything a reader must know to trust the numbers. */
  readonly notes?: readonly string[];
}

/** Prints the document as one line of JSON on stdout. */
export function emit(doc: BenchmarkDocument): void {
  process.stdout.write(`${JSON.stringify(doc)}\n`);
}

const started = Date.now();
/** A progress line on stderr, stamped with seconds since the benchmark started. */
export function note(benchmark: string, message: string): void {
  process.stderr.write(`[bench:${benchmark} +${((Date.now() - started) / 1000).toFixed(1)}s] ${message}\n`);
}

export interface Distribution {
  readonly n: number;
  readonly min: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

/** Nearest-rank percentile (the value below which p% of the samples fall, a real sample). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number;
}

export function distribution(values: readonly number[], digits = 1): Distribution {
  const sorted = [...values].sort((a, b) => a - b);
  const round = (x: number): number => (Number.isFinite(x) ? Math.round(x * 10 ** digits) / 10 ** digits : x);
  return {
    n: sorted.length,
    min: round(sorted[0] ?? NaN),
    p50: round(percentile(sorted, 50)),
    p95: round(percentile(sorted, 95)),
    p99: round(percentile(sorted, 99)),
    max: round(sorted[sorted.length - 1] ?? NaN),
    mean: round(sorted.reduce((a, b) => a + b, 0) / (sorted.length || 1)),
  };
}

export const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;
export const kib = (bytes: number): number => round(bytes / 1024, 1);
export const mib = (kibValue: number): number => round(kibValue / 1024, 1);
