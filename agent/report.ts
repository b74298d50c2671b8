// What `status` and `list` show, in the JSON shapes of the contract. Read-only over the ledger.
import type { Config } from './config.js';
import { PACKAGE_STATES, type Ledger, type ListFilter, type PackageRow, type PackageState } from '../store/ledger.js';

export interface PackageView {
  id: number;
  route: string;
  direction: 'in' | 'out';
  name: string;
  size: number;
  sha256: string | null;
  state: PackageState;
  attempts: number;
  lastError: string | null;
  createdAt: string;
  updatedAt: string;
  remoteRef: string | null;
}

export interface RouteStatus {
  name: string;
  direction: 'in' | 'out';
  profile: string;
  counts: Partial<Record<PackageState, number>>;
  lastRunAt: string | null;
  lastSuccessAt: string | null;
  lastError: string | null;
}

export interface StatusView {
  station: string;
  routes: RouteStatus[];
  problems: PackageView[];
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function packageView(r: PackageRow): PackageView {
  return {
    id: r.id,
    route: r.route,
    direction: r.direction,
    name: r.name,
    size: r.size,
    sha256: r.sha256,
    state: r.state,
    attempts: r.attempts,
    lastError: r.lastError,
    createdAt: iso(r.createdAt)!,
    updatedAt: iso(r.updatedAt)!,
    remoteRef: r.remoteRef,
  };
}

/** Packages that need a person: failed (still retrying), dead, quarantined. */
export const PROBLEM_STATES: PackageState[] = ['failed', 'dead', 'quarantined'];

export function status(config: Config, ledger: Ledger): StatusView {
  return {
    station: config.station,
    routes: config.routes.map((r) => {
      const run = ledger.routeRun(r.name);
      return {
        name: r.name,
        direction: r.direction,
        profile: r.profileName,
        counts: ledger.countsByState(r.name),
        lastRunAt: iso(run.lastRunAt),
        lastSuccessAt: iso(run.lastSuccessAt),
        lastError: run.lastError,
      };
    }),
    problems: ledger.list({ states: PROBLEM_STATES }).map(packageView),
  };
}

export function list(ledger: Ledger, filter: ListFilter): PackageView[] {
  return ledger.list(filter).map(packageView);
}

export function isPackageState(s: string): s is PackageState {
  return (PACKAGE_STATES as readonly string[]).includes(s);
}

// ---- plain-text renderings for people ------------------------------------------------------------

export function statusText(v: StatusView): string {
  const lines = [`station ${v.station}`];
  for (const r of v.routes) {
    const counts = Object.entries(r.counts)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ');
    lines.push(
      `route ${r.name} (${r.direction}, ${r.profile}): ${counts || 'no packages yet'}`,
      `  last run ${r.lastRunAt ?? 'never'}, last success ${r.lastSuccessAt ?? 'never'}${r.lastError ? `\n  last error: ${r.lastError}` : ''}`,
    );
  }
  if (v.problems.length) {
    lines.push(`problems (${v.problems.length}):`);
    for (const p of v.problems)
      lines.push(`  #${p.id} ${p.route} ${p.state} "${p.name}" attempts ${p.attempts}: ${p.lastError ?? ''}`);
    lines.push('  (resend failed/dead ones with: sprelay resend --failed)');
  } else {
    lines.push('no problems');
  }
  return lines.join('\n');
}

export function listText(rows: PackageView[]): string {
  if (rows.length === 0) return 'no packages';
  return rows
    .map(
      (p) =>
        `#${p.id}\t${p.updatedAt}\t${p.route}\t${p.direction}\t${p.state}\t${p.size}\t${p.name}${p.lastError ? `\t${p.lastError}` : ''}`,
    )
    .join('\n');
}
