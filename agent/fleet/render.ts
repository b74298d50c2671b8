// `sprelay fleet --json` and `--html FILE`: the rows of ./model.ts as JSON and as one page.
//
// JSON: an array, one object per station, worst first:
//   {"station","verdict":"ok|attention|silent|failing","reason","silentForHours":n|null,
//    "lastHeardAt","lastHeartbeatAt","agentVersion",
//    "lastPackagePerRoute":[{"route","name","at"}],"unconfirmed":n|null,"failing":n|null,
//    "lastError":{"route","text"}|null,"perDayFrom":"YYYY-MM-DD","perDay":[30 numbers]}
// Times are ISO UTC strings or null. `reason` is one English line ("all routes ok" when ok).
// `unconfirmed`/`failing`/`agentVersion` come from the station's last heartbeat (null without
// one); `failing` = its packages not sent yet (failed, retrying, plus dead). `perDay` counts the
// packages the office received from the station per office-local day, oldest first, starting on
// `perDayFrom`, the last entry being today.
//
// HTML: one self-contained page (inline CSS and SVG, no script, no external asset; a
// Content-Security-Policy forbids both, so even a mistake here cannot load or run anything). Every
// text that comes from a station (names, versions, errors) is escaped: a station is hostile input.
import type { FleetRow, FleetVerdict } from './model.js';
import { FLEET_WORDS, type FleetLang, type FleetWords } from './texts.js';

export interface FleetRowJson {
  station: string;
  verdict: FleetVerdict;
  reason: string;
  silentForHours: number | null;
  lastHeardAt: string | null;
  lastHeartbeatAt: string | null;
  agentVersion: string | null;
  lastPackagePerRoute: { route: string; name: string; at: string }[];
  unconfirmed: number | null;
  failing: number | null;
  lastError: { route: string; text: string } | null;
  perDayFrom: string;
  perDay: number[];
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export function fleetJson(rows: FleetRow[]): FleetRowJson[] {
  return rows.map((r) => ({
    station: r.station,
    verdict: r.verdict,
    reason: r.reason,
    silentForHours: r.silentForHours,
    lastHeardAt: iso(r.lastHeardAt),
    lastHeartbeatAt: iso(r.lastHeartbeatAt),
    agentVersion: r.agentVersion,
    lastPackagePerRoute: r.lastPackagePerRoute.map((p) => ({ route: p.route, name: p.name, at: iso(p.at)! })),
    unconfirmed: r.unconfirmed,
    failing: r.failing,
    lastError: r.lastError,
    perDayFrom: r.perDayFrom,
    perDay: r.perDay,
  }));
}

// ---------------------------------------------------------------------------------------------
// HTML

export interface HtmlOptions {
  /** The office agent's station name, shown in the title. */
  office: string;
  generatedAt: number;
  lang: FleetLang;
  /** Office-local zone, minutes east of UTC (times on the page are shown in it); default 0. */
  utcOffsetMinutes?: number;
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const CSS = `
body{font:14px/1.4 "Segoe UI",Arial,sans-serif;margin:16px;color:#1a1a1a;background:#fff}
h1{font-size:20px;margin:0 0 4px}
.meta,.legend{color:#555;margin:2px 0}
.summary{font-weight:600;margin:8px 0}
table{border-collapse:collapse;width:100%}
th,td{border:1px solid #ccc;padding:4px 6px;vertical-align:top;text-align:left}
th{background:#f2f2f2;font-weight:600}
th.station{white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.verdict{font-weight:700;white-space:nowrap}
.v-ok{background:#e3f4e4;color:#1b5e20}
.v-attention{background:#ffe8a3;color:#5d4000}
.v-silent{background:#dcdcdc;color:#303030}
.v-failing{background:#c62828;color:#fff}
.err{font-family:Consolas,monospace;font-size:12px;word-break:break-word;max-width:28em}
.pkg{white-space:nowrap}
.muted{color:#777}
svg{display:block}
`;

export function fleetHtml(rows: FleetRow[], opts: HtmlOptions): string {
  const w = FLEET_WORDS[opts.lang];
  const off = opts.utcOffsetMinutes ?? 0;
  const by: Record<FleetVerdict, number> = { ok: 0, attention: 0, silent: 0, failing: 0 };
  for (const r of rows) by[r.verdict]++;
  const c = w.columns;
  const head = [
    c.station,
    c.verdict,
    c.reason,
    c.lastHeartbeat,
    c.lastPackage,
    c.unconfirmed,
    c.failing,
    c.lastError,
    c.perDay,
  ]
    .map((t) => `<th scope="col">${escapeHtml(t)}</th>`)
    .join('');
  const title = `${w.title} — ${opts.office}`;
  return [
    '<!DOCTYPE html>',
    `<html lang="${opts.lang}">`,
    '<head>',
    '<meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(title)}</title>`,
    `<style>${CSS}</style>`,
    '</head>',
    '<body>',
    `<h1>${escapeHtml(title)}</h1>`,
    `<p class="meta">${escapeHtml(`${w.generated}: ${localTime(opts.generatedAt, off)} (${w.times} ${zoneName(off)})`)}</p>`,
    `<p class="summary" id="summary">${escapeHtml(w.summary(rows.length, by))}</p>`,
    `<p class="legend">${escapeHtml(w.legend)}</p>`,
    '<table id="fleet">',
    `<thead><tr>${head}</tr></thead>`,
    '<tbody>',
    ...rows.map((r) => rowHtml(r, w, off)),
    '</tbody>',
    '</table>',
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

function rowHtml(r: FleetRow, w: FleetWords, off: number): string {
  const dash = `<span class="muted">${escapeHtml(w.none)}</span>`;
  const reason = r.reasons.length ? r.reasons.map((x) => w.reason(x)).join('; ') : w.allOk;
  const heartbeat =
    r.lastHeartbeatAt === null
      ? `<span class="muted">${escapeHtml(w.never)}</span>`
      : escapeHtml(localTime(r.lastHeartbeatAt, off)) +
        (r.agentVersion ? `<br><span class="muted">v${escapeHtml(r.agentVersion)}</span>` : '');
  const packages = r.lastPackagePerRoute.length
    ? r.lastPackagePerRoute
        .map(
          (p) =>
            `<div class="pkg">${escapeHtml(localTime(p.at, off))} <span class="muted">${escapeHtml(p.route)}</span><br>${escapeHtml(p.name)}</div>`,
        )
        .join('')
    : `<span class="muted">${escapeHtml(w.never)}</span>`;
  const num = (n: number | null) => (n === null ? dash : String(n));
  const error = r.lastError
    ? `<span class="muted">${escapeHtml(r.lastError.route)}:</span> ${escapeHtml(r.lastError.text)}`
    : dash;
  return [
    `<tr class="station-row" data-station="${escapeHtml(r.station)}" data-verdict="${r.verdict}">`,
    `<th scope="row" class="station">${escapeHtml(r.station)}</th>`,
    `<td class="verdict v-${r.verdict}">${escapeHtml(w.verdict(r.verdict, r.silentForHours))}</td>`,
    `<td class="reason">${escapeHtml(reason)}</td>`,
    `<td class="heartbeat">${heartbeat}</td>`,
    `<td class="last-package">${packages}</td>`,
    `<td class="num unconfirmed">${num(r.unconfirmed)}</td>`,
    `<td class="num failing">${num(r.failing)}</td>`,
    `<td class="err">${error}</td>`,
    `<td class="chart">${chartSvg(r.perDay, r.perDayFrom, w)}</td>`,
    '</tr>',
  ].join('');
}

/** Packages per day as bars, 120 x 24, today on the right; each bar names its day and count. */
function chartSvg(perDay: number[], from: string, w: FleetWords): string {
  const max = Math.max(0, ...perDay);
  const total = perDay.reduce((a, b) => a + b, 0);
  const label = w.chart(total, max);
  const first = Date.parse(`${from}T00:00:00Z`);
  const bars = perDay.map((n, i) => {
    const day = new Date(first + i * 86_400_000).toISOString().slice(0, 10);
    const h = n === 0 ? 1 : Math.max(2, Math.round((n / max) * 22));
    const fill = n === 0 ? '#d8d8d8' : '#3b6fb6';
    return `<rect x="${i * 4}" y="${24 - h}" width="3" height="${h}" fill="${fill}"><title>${day}: ${n}</title></rect>`;
  });
  return (
    `<svg class="per-day" xmlns="http://www.w3.org/2000/svg" width="120" height="24" viewBox="0 0 120 24" role="img" aria-label="${escapeHtml(label)}">` +
    `<title>${escapeHtml(label)}</title>${bars.join('')}</svg>`
  );
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

/** `YYYY-MM-DD HH:MM` in the office's zone. */
function localTime(ms: number, off: number): string {
  const d = new Date(ms + off * 60_000);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
}

function zoneName(off: number): string {
  if (off === 0) return 'UTC';
  const a = Math.abs(off);
  return `UTC${off < 0 ? '-' : '+'}${pad(Math.floor(a / 60))}:${pad(a % 60)}`;
}
