// What every benchmark under test/bench/ returns to the runner. A benchmark
// measures weft and a baseline in the same run and reports the ratio; the
// runner prints `lines` and collects `figures` (for the README table).

export interface BenchResult {
  readonly name: string;
  /** Human-readable lines, printed as they are. */
  readonly lines: string[];
  /** Named numbers (ms, Gbit/s, ratios) for the summary. */
  readonly figures: Record<string, number>;
}

export type Bench = () => Promise<BenchResult>;

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function median(xs: readonly number[]): number {
  return percentile([...xs].sort((a, b) => a - b), 50);
}
