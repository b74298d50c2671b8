// What `status`, `list` and `show` tell a person, in the JSON shapes of the contract and as plain
// text. Read-only over the ledger. Text output is for people at a station: a verdict line per
// route first, local times, control characters in names made visible.
import type { Config, Lang } from './config.js';
import { visible } from '../transports/common/text.js';
import { duration, localTime, quarantineLine, shortTime, utcOffset, verdictLine, words } from './texts.js';
import { routeVerdict, type RouteVerdict, type VerdictLevel } from './verdict.js';
import {
  PACKAGE_STATES,
  type Ledger,
  type ListFilter,
  type PackageEvent,
  type PackageRow,
  type PackageState,
} from '../store/ledger.js';

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
  verdict: VerdictLevel;
  /** When the verdict's oldest reason began (ISO), null when ok. */
  since: string | null;
  /** The verdict as one English sentence (the text output says it in the config's language). */
  summary: string;
  counts: Partial<Record<PackageState, number>>;
  lastRunAt: string | null;
  lastSuccessAt: string | null;
  lastError: string | null;
  /** A cycle of this route running right now (in this or another process). */
  running: { pid: number; since: string } | null;
}

export interface StatusView {
  station: string;
  routes: RouteStatus[];
  problems: PackageView[];
}

/** dataDir/quarantine against its budget (config `quarantine`), by the ledger's account. */
export interface QuarantineStatus {
  files: number;
  bytes: number;
  maxFiles: number;
  maxBytes: number;
  /** No room for one more file: the next rejected package's bytes will not be kept. */
  full: boolean;
  /** Quarantined packages whose bytes were not kept (over the budget), not acknowledged yet. */
  dropped: number;
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

/** Problem packages shown in `status` at most (the verdict lines count them all). */
const MAX_PROBLEMS = 200;

export function verdicts(config: Config, ledger: Ledger, now: number, names?: string[]): RouteVerdict[] {
  const routes = names?.length ? config.routes.filter((r) => names.includes(r.name)) : config.routes;
  return routes.map((r) => routeVerdict(ledger, r, now));
}

export interface StatusData {
  view: StatusView;
  verdicts: RouteVerdict[];
  /** The quarantine budget (text output; `status --json` keeps its pinned keys). */
  quarantine: QuarantineStatus;
  /** Per route: its receipts and heartbeats by state (text output; the counts above are packages only). */
  control: Record<string, ReturnType<Ledger['controlCounts']>>;
}

export function status(config: Config, ledger: Ledger, now = Date.now()): StatusData {
  const vs = verdicts(config, ledger, now);
  const problems: PackageRow[] = [];
  for (const r of config.routes) {
    problems.push(...ledger.problems(r.name, now - r.alertAfterMs, MAX_PROBLEMS - problems.length));
    // sent and not confirmed by the office's receipt within confirmWithin (out-routes that set it)
    if (r.direction === 'out' && r.confirmWithinMs !== undefined && problems.length < MAX_PROBLEMS)
      problems.push(...ledger.unconfirmed(r.name, now - r.confirmWithinMs, MAX_PROBLEMS - problems.length));
    if (problems.length >= MAX_PROBLEMS) break;
  }
  return {
    verdicts: vs,
    view: {
      station: config.station,
      routes: config.routes.map((r, i) => {
        const v = vs[i]!;
        return {
          name: r.name,
          direction: r.direction,
          profile: r.profileName,
          verdict: v.verdict,
          since: iso(v.since),
          summary: verdictLine(v, 'en', now),
          counts: v.counts,
          lastRunAt: iso(v.lastRunAt),
          lastSuccessAt: iso(v.lastSuccessAt),
          lastError: v.lastError,
          running: v.running ? { pid: v.running.pid, since: iso(v.running.since)! } : null,
        };
      }),
      problems: problems.map(packageView),
    },
    quarantine: quarantineStatus(config, ledger),
    control: Object.fromEntries(config.routes.map((r) => [r.name, ledger.controlCounts(r.name)])),
  };
}

function quarantineStatus(config: Config, ledger: Ledger): QuarantineStatus {
  const kept = ledger.quarantineKept();
  const budget = config.quarantine;
  return {
    files: kept.count,
    bytes: kept.bytes,
    maxFiles: budget.maxCount,
    maxBytes: budget.maxSize,
    full: kept.count >= budget.maxCount || kept.bytes >= budget.maxSize,
    dropped: config.routes.reduce((n, r) => n + (r.direction === 'in' ? ledger.quarantineDropped(r.name) : 0), 0),
  };
}

export function list(ledger: Ledger, filter: ListFilter): PackageView[] {
  return ledger.list(filter).map(packageView);
}

/** A state named by a person: any case (`DEAD`, `Failed`). */
export function parseState(s: string): PackageState | undefined {
  const lower = s.trim().toLowerCase();
  return (PACKAGE_STATES as readonly string[]).includes(lower) ? (lower as PackageState) : undefined;
}

export function isPackageState(s: string): s is PackageState {
  return (PACKAGE_STATES as readonly string[]).includes(s);
}

// ---- plain-text renderings for people ------------------------------------------------------------

export { visible };

export function statusText(data: StatusData, lang: Lang, now = Date.now()): string {
  const v = data.view;
  const w = words(lang);
  const lines = [`${v.station} — ${localTime(now, false)} (${w.localTimes(utcOffset(now))})`];
  for (const rv of data.verdicts) lines.push(visible(verdictLine(rv, lang, now)));
  const quarantine = quarantineLine(lang, data.quarantine);
  if (quarantine) lines.push(quarantine);
  lines.push('');
  for (const r of v.routes) {
    const counts = Object.entries(r.counts)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ');
    const t = (s: string | null) => (s ? shortTime(Date.parse(s), now) : 'never');
    lines.push(
      `route ${r.name} (${r.direction}, ${r.profile}): ${counts || 'no packages yet'}`,
      `  last run ${t(r.lastRunAt)}, last success ${t(r.lastSuccessAt)}`,
    );
    for (const [kind, byState] of Object.entries(data.control[r.name] ?? {})) {
      const text = Object.entries(byState)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ');
      if (text) lines.push(`  ${kind === 'receipt' ? 'receipts' : 'heartbeats'}: ${text}`);
    }
    if (r.lastError) lines.push(`  last error: ${visible(r.lastError)}`);
  }
  const all = data.verdicts.every((x) => x.verdict === 'ok');
  if (v.problems.length) {
    lines.push(w.problemsHeader(v.problems.length));
    for (const p of v.problems) {
      const age = duration(lang, now - Date.parse(p.createdAt));
      lines.push(
        `  #${p.id} ${p.route} ${p.state} "${visible(p.name)}" (${age}, attempts ${p.attempts})${p.lastError ? `: ${visible(p.lastError)}` : ''}`,
      );
    }
    lines.push(`  ${w.resendHint}`);
  }
  if (all && !quarantine) lines.push(w.noProblems);
  return lines.join('\n');
}

const COLUMNS = ['#', 'updated', 'age', 'route', 'dir', 'state', 'tries', 'next try', 'size', 'name', 'last error'];

export function listText(rows: PackageRow[], now = Date.now(), lang: Lang = 'en'): string {
  if (rows.length === 0) return 'no packages';
  const table = rows.map((p) => [
    `#${p.id}`,
    shortTime(p.updatedAt, now),
    duration(lang, now - p.createdAt),
    p.route,
    p.direction,
    p.state,
    String(p.attempts),
    p.nextAttemptAt !== null && (p.state === 'failed' || p.state === 'queued') ? shortTime(p.nextAttemptAt, now) : '',
    String(p.size),
    `"${visible(p.name)}"`,
    p.lastError ? visible(p.lastError) : '',
  ]);
  const header = COLUMNS.map((c) => (c === 'updated' ? `updated (${utcOffset(now)})` : c));
  const widths = header.map((c, i) => Math.max(c.length, ...table.map((r) => r[i]!.length)));
  const fmt = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [fmt(header), ...table.map(fmt)].join('\n');
}

// ---- one package's story (`show`) ----------------------------------------------------------------

export interface ShowView extends PackageView {
  nextAttemptAt: string | null;
  seenAt: string | null;
  duplicateOf: number | null;
  /** Where our copy of its bytes is, absolute, or null (sent and deleted, purged, or never held). */
  bytesAt: string | null;
  events: { at: string; event: string; detail: string | null }[];
}

export function showView(row: PackageRow, events: PackageEvent[], bytesAt: string | null): ShowView {
  return {
    ...packageView(row),
    nextAttemptAt: iso(row.nextAttemptAt),
    seenAt: iso(row.seenAt),
    duplicateOf: row.duplicateOf,
    bytesAt,
    events: events.map((e) => ({ at: iso(e.at)!, event: e.event, detail: e.detail })),
  };
}

export function showText(v: ShowView, now = Date.now()): string {
  const t = (s: string | null) => (s ? localTime(Date.parse(s)) : '—');
  const lines = [
    `#${v.id} "${visible(v.name)}"`,
    `  route ${v.route} (${v.direction}), state ${v.state}${v.seenAt ? ` (acknowledged ${t(v.seenAt)})` : ''}`,
    `  size ${v.size} bytes, sha256 ${v.sha256 ?? '—'}`,
    `  attempts ${v.attempts}, next attempt ${t(v.nextAttemptAt)}`,
    `  remote ${v.remoteRef ? visible(v.remoteRef) : '—'}`,
    `  our copy ${v.bytesAt ? visible(v.bytesAt) : '— (not kept)'}`,
  ];
  if (v.duplicateOf !== null) lines.push(`  same name and bytes as #${v.duplicateOf}`);
  if (v.lastError) lines.push(`  last error: ${visible(v.lastError)}`);
  lines.push(`  first seen ${t(v.createdAt)} (${duration('en', now - Date.parse(v.createdAt))} ago)`, '  history:');
  for (const e of v.events) lines.push(`    ${t(e.at)}  ${e.event}${e.detail ? ` — ${visible(e.detail)}` : ''}`);
  return lines.join('\n');
}
