// What the bench records: per workload a row with sprelay's runs and each peer's, the target the
// issue set for it; medians, the best peer and the ratio are computed from these.

export interface Sample {
  seconds: number;
  /** sprelay only: its peak RSS in MB. */
  rssMB?: number;
}

export interface Tool {
  name: string;
  samples: Sample[];
  /** Shown beside the best peer but never the peer of the ratio (cp: a floor, not a courier). */
  floor: boolean;
}

export interface Target {
  /** sprelay's time / the peer's at most this. */
  ratio?: number;
  /** The peer the ratio target is judged against (default: the best peer). */
  vs?: string;
  /** sprelay's peak RSS at most this many MB. */
  rssMB?: number;
  /** sprelay's time below this many seconds (no peer). */
  seconds?: number;
}

export class Row {
  readonly sprelay: Sample[] = [];
  readonly peers: Tool[] = [];

  constructor(
    readonly family: string,
    readonly workload: string,
    readonly target: Target,
  ) {}

  peer(name: string, floor = false): Tool {
    let t = this.peers.find((p) => p.name === name);
    if (!t) {
      t = { name, samples: [], floor };
      this.peers.push(t);
    }
    return t;
  }

  get sprelayMedian(): number | null {
    return median(this.sprelay.map((s) => s.seconds));
  }

  get peakRssMB(): number | null {
    const rss = this.sprelay.flatMap((s) => (s.rssMB === undefined ? [] : [s.rssMB]));
    return rss.length ? Math.max(...rss) : null;
  }

  /** The fastest peer (by median) that is not a floor. */
  get best(): { name: string; seconds: number } | null {
    let best: { name: string; seconds: number } | null = null;
    for (const p of this.peers) {
      const m = median(p.samples.map((s) => s.seconds));
      if (p.floor || m === null) continue;
      if (!best || m < best.seconds) best = { name: p.name, seconds: m };
    }
    return best;
  }

  get ratio(): number | null {
    const s = this.sprelayMedian;
    const b = this.best;
    return s !== null && b ? s / b.seconds : null;
  }

  /** Whether the target is met: true / false, or null when there is none or no data. */
  get met(): boolean | null {
    const t = this.target;
    const s = this.sprelayMedian;
    if (s === null) return null;
    const checks: boolean[] = [];
    if (t.ratio !== undefined) {
      const vs = t.vs ? median(this.peers.find((p) => p.name === t.vs)?.samples.map((x) => x.seconds) ?? []) : null;
      const peer = t.vs ? vs : (this.best?.seconds ?? null);
      if (peer === null) return null;
      checks.push(s / peer <= t.ratio);
    }
    if (t.rssMB !== undefined) {
      const rss = this.peakRssMB;
      if (rss === null) return null;
      checks.push(rss <= t.rssMB);
    }
    if (t.seconds !== undefined) checks.push(s < t.seconds);
    return checks.length ? checks.every(Boolean) : null;
  }
}

export function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export class Results {
  readonly rows: Row[] = [];

  row(family: string, workload: string, target: Target): Row {
    const r = new Row(family, workload, target);
    this.rows.push(r);
    return r;
  }
}

/** Prints one measurement as it is taken. */
export function progress(row: Row, tool: string, run: number, runs: number, s: Sample): void {
  const rss = s.rssMB === undefined ? '' : `, peak RSS ${s.rssMB.toFixed(0)} MB`;
  process.stdout.write(`  ${row.workload} · ${tool} · run ${run}/${runs}: ${s.seconds.toFixed(2)} s${rss}\n`);
}

/** What every workload family gets from the runner. */
export interface BenchContext {
  build: import('./sprelay.js').SprelayBuild;
  defaults: import('./sprelay.js').RouteDefaults;
  /** A temp folder for this run's packages, configs and logs (removed at the end). */
  work: string;
  runs: number;
  results: Results;
  /** Lines for BENCH.md: what a workload had to set beyond sprelay's defaults, and why. */
  notes: Set<string>;
}
