// The office's view of its stations (`sprelay fleet`): pure functions from plain data the office
// ledger holds (each station's last heartbeat, the packages delivered from it in the last 30 days)
// to one row per station with a verdict. No I/O, no clock: `now` is an argument.
//
// Verdict rules, first match wins:
//   failing    the last heartbeat has a route whose verdict is `failing`, or counts `dead`
//              packages (given up; they wait for a person at the station);
//   silent     nothing heard from the station (no heartbeat and no package) for longer than
//              silentAfter, or never anything at all; `silentForHours` says how long (null: never);
//   attention  the last heartbeat reports unconfirmed packages (sent, not confirmed within the
//              route's confirmWithin), or a route whose verdict is `attention`, or an agent
//              version older than the office's own; or heartbeats are expected (heartbeatEveryMs
//              set) and none came for longer than silentAfter although packages still arrive;
//   ok         otherwise.
// A failing station that is also silent stays failing (its reason says both): what it last said
// is the worst we know. silentAfter: the station's own setting, else the fleet's, else 2 x the
// heartbeat interval when heartbeats are configured, else 25 h (a station that exports at least
// daily).
// Rows are sorted worst first: failing, silent (longest silence first, never heard before all),
// attention, ok; within a verdict by station name.
//
// Row fields: see FleetRow. `failing` counts the station's packages that could not be sent yet
// (`failed`, retrying, plus `dead`) from the last heartbeat; `perDay` counts packages delivered at
// the office from the station per office-local day, oldest first, the last entry being the day of
// `now`.
import type { Heartbeat } from '../control/format.js';

export type FleetVerdict = 'ok' | 'attention' | 'silent' | 'failing';

export const FLEET_DAYS = 30;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
export const DEFAULT_SILENT_AFTER_MS = 25 * HOUR;

export interface StationInput {
  station: string;
  /** The last heartbeat the office took from this station (decoded), with the office's clock. */
  heartbeat: { data: Heartbeat; receivedAt: number } | null;
  /** Packages delivered at the office from this station, at least the last 30 days (ms times). */
  deliveries: { route: string; name: string; deliveredAt: number }[];
  /** Overrides the fleet's silentAfter for this station (ms). */
  silentAfterMs?: number;
}

export interface FleetSettings {
  now: number;
  /** The office agent's own version: a station behind it needs attention. */
  officeVersion: string;
  /** Fleet-wide silentAfter (ms); default 2 x heartbeatEveryMs, or 25 h. */
  silentAfterMs?: number;
  /** The heartbeat interval stations are configured with (ms), null/absent when none. */
  heartbeatEveryMs?: number | null;
  /** Office-local time zone as minutes east of UTC (what -getTimezoneOffset() gives); default 0. */
  utcOffsetMinutes?: number;
}

export interface FleetRow {
  station: string;
  verdict: FleetVerdict;
  /** One line: why this verdict (English; the HTML says it in the page's language from `reasons`). */
  reason: string;
  reasons: FleetReason[];
  /** Hours since anything was heard, when silent (rounded down); null when not silent or never heard. */
  silentForHours: number | null;
  lastHeardAt: number | null;
  lastHeartbeatAt: number | null;
  agentVersion: string | null;
  lastPackagePerRoute: { route: string; name: string; at: number }[];
  /** From the last heartbeat; null without one. */
  unconfirmed: number | null;
  failing: number | null;
  lastError: { route: string; text: string } | null;
  /** The office-local day of perDay[0], `YYYY-MM-DD`. */
  perDayFrom: string;
  perDay: number[];
}

export type FleetReason =
  | { kind: 'route-failing'; route: string }
  | { kind: 'dead'; n: number }
  | { kind: 'never-heard' }
  | { kind: 'silent'; hours: number }
  | { kind: 'unconfirmed'; n: number }
  | { kind: 'route-attention'; route: string }
  | { kind: 'old-version'; version: string; office: string }
  | { kind: 'no-heartbeat'; hours: number | null };

const RANK: Record<FleetVerdict, number> = { failing: 0, silent: 1, attention: 2, ok: 3 };

export function silentAfterFor(input: StationInput, s: FleetSettings): number {
  if (input.silentAfterMs !== undefined) return input.silentAfterMs;
  if (s.silentAfterMs !== undefined) return s.silentAfterMs;
  if (s.heartbeatEveryMs) return 2 * s.heartbeatEveryMs;
  return DEFAULT_SILENT_AFTER_MS;
}

export function stationRow(input: StationInput, s: FleetSettings): FleetRow {
  const hb = input.heartbeat;
  const silentAfter = silentAfterFor(input, s);
  const lastDelivery = input.deliveries.reduce<number | null>(
    (m, d) => (m === null || d.deliveredAt > m ? d.deliveredAt : m),
    null,
  );
  const lastHeardAt = maxOf(hb?.receivedAt ?? null, lastDelivery);
  const silentFor = lastHeardAt === null ? null : s.now - lastHeardAt;
  const silent = lastHeardAt === null || (silentFor !== null && silentFor > silentAfter);

  const failingR: FleetReason[] = [];
  const attentionR: FleetReason[] = [];
  let dead = 0;
  let failed = 0;
  for (const r of hb?.data.routes ?? []) {
    dead += r.counts.dead ?? 0;
    failed += r.counts.failed ?? 0;
    if (r.verdict === 'failing') failingR.push({ kind: 'route-failing', route: r.name });
    else if (r.verdict === 'attention') attentionR.push({ kind: 'route-attention', route: r.name });
  }
  if (dead > 0) failingR.push({ kind: 'dead', n: dead });
  const silentR: FleetReason[] = silent
    ? [lastHeardAt === null ? { kind: 'never-heard' } : { kind: 'silent', hours: Math.floor((silentFor ?? 0) / HOUR) }]
    : [];
  if (hb && hb.data.unconfirmed > 0) attentionR.unshift({ kind: 'unconfirmed', n: hb.data.unconfirmed });
  if (hb && olderVersion(hb.data.agent.version, s.officeVersion))
    attentionR.push({ kind: 'old-version', version: hb.data.agent.version, office: s.officeVersion });
  if (s.heartbeatEveryMs && !silent && (hb === null || s.now - hb.receivedAt > silentAfter))
    attentionR.push({ kind: 'no-heartbeat', hours: hb ? Math.floor((s.now - hb.receivedAt) / HOUR) : null });

  let verdict: FleetVerdict;
  let reasons: FleetReason[];
  if (failingR.length) [verdict, reasons] = ['failing', [...failingR, ...silentR]];
  else if (silentR.length) [verdict, reasons] = ['silent', silentR];
  else if (attentionR.length) [verdict, reasons] = ['attention', attentionR];
  else [verdict, reasons] = ['ok', []];

  return {
    station: input.station,
    verdict,
    reason: reasons.length ? reasons.map(reasonEn).join('; ') : 'all routes ok',
    reasons,
    silentForHours: silent && silentFor !== null ? Math.floor(silentFor / HOUR) : null,
    lastHeardAt,
    lastHeartbeatAt: hb?.receivedAt ?? null,
    agentVersion: hb?.data.agent.version ?? null,
    lastPackagePerRoute: lastPerRoute(input.deliveries),
    unconfirmed: hb ? hb.data.unconfirmed : null,
    failing: hb ? dead + failed : null,
    lastError: lastError(hb?.data ?? null),
    perDayFrom: perDayFrom(s.now, s.utcOffsetMinutes ?? 0),
    perDay: perDay(input.deliveries, s.now, s.utcOffsetMinutes ?? 0),
  };
}

/** One row per station, worst first (see the header). */
export function fleetRows(inputs: StationInput[], s: FleetSettings): FleetRow[] {
  return inputs.map((i) => stationRow(i, s)).sort(compareRows);
}

export function compareRows(a: FleetRow, b: FleetRow): number {
  const r = RANK[a.verdict] - RANK[b.verdict];
  if (r !== 0) return r;
  if (a.verdict === 'silent') {
    // never heard (lastHeardAt null) first, then the longest silence
    const la = a.lastHeardAt ?? -Infinity;
    const lb = b.lastHeardAt ?? -Infinity;
    if (la !== lb) return la < lb ? -1 : 1;
  }
  return a.station < b.station ? -1 : a.station > b.station ? 1 : 0;
}

/** 2 when any station needs a person (not ok), else 0: for monitoring. */
export function fleetExitCode(rows: FleetRow[]): 0 | 2 {
  return rows.some((r) => r.verdict !== 'ok') ? 2 : 0;
}

/** The reason in English, for `reason`, the JSON and the log. */
export function reasonEn(r: FleetReason): string {
  switch (r.kind) {
    case 'route-failing':
      return `route ${r.route} is failing`;
    case 'dead':
      return `${r.n} package(s) given up (dead)`;
    case 'never-heard':
      return 'nothing ever heard from this station';
    case 'silent':
      return `silent for ${r.hours} h`;
    case 'unconfirmed':
      return `${r.n} package(s) sent but not confirmed in time`;
    case 'route-attention':
      return `route ${r.route} needs attention`;
    case 'old-version':
      return `agent ${r.version} is older than the office's ${r.office}`;
    case 'no-heartbeat':
      return r.hours === null ? 'no heartbeat received yet' : `no heartbeat for ${r.hours} h`;
  }
}

// ---------------------------------------------------------------------------------------------

function maxOf(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.max(a, b);
}

function lastPerRoute(deliveries: StationInput['deliveries']): FleetRow['lastPackagePerRoute'] {
  const byRoute = new Map<string, { route: string; name: string; at: number }>();
  for (const d of deliveries) {
    const cur = byRoute.get(d.route);
    if (!cur || d.deliveredAt > cur.at) byRoute.set(d.route, { route: d.route, name: d.name, at: d.deliveredAt });
  }
  return [...byRoute.values()].sort((a, b) => (a.route < b.route ? -1 : a.route > b.route ? 1 : 0));
}

/** The error of the worst route that has one: failing before attention before ok. */
function lastError(hb: Heartbeat | null): FleetRow['lastError'] {
  if (!hb) return null;
  const order = { failing: 0, attention: 1, ok: 2 } as const;
  const withError = hb.routes.filter((r) => r.lastError);
  withError.sort((a, b) => order[a.verdict] - order[b.verdict]);
  const r = withError[0];
  return r && r.lastError ? { route: r.name, text: r.lastError } : null;
}

/** The office-local day number of `ms` (days since the epoch in that zone). */
export function localDay(ms: number, utcOffsetMinutes: number): number {
  return Math.floor((ms + utcOffsetMinutes * 60_000) / DAY);
}

function perDay(deliveries: StationInput['deliveries'], now: number, offset: number): number[] {
  const days = new Array<number>(FLEET_DAYS).fill(0);
  const today = localDay(now, offset);
  for (const d of deliveries) {
    const i = FLEET_DAYS - 1 - (today - localDay(d.deliveredAt, offset));
    if (i >= 0 && i < FLEET_DAYS) days[i]! += 1;
  }
  return days;
}

/** The first day of perDay as `YYYY-MM-DD` (office-local). */
export function perDayFrom(now: number, utcOffsetMinutes = 0): string {
  const first = localDay(now, utcOffsetMinutes) - (FLEET_DAYS - 1);
  return new Date(first * DAY).toISOString().slice(0, 10);
}

/**
 * Whether `version` is older than `office` by their numeric dotted parts (1.2.10 > 1.2.9); a
 * pre-release (`1.3.0-rc.1`) counts as its release; anything unparsable is not called older.
 */
export function olderVersion(version: string, office: string): boolean {
  const parse = (v: string): number[] | null => {
    const m = /^v?(\d+(?:\.\d+){0,3})(?:[-+].*)?$/.exec(v.trim());
    return m ? m[1]!.split('.').map(Number) : null;
  };
  const a = parse(version);
  const b = parse(office);
  if (!a || !b) return false;
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x !== y) return x < y;
  }
  return false;
}
