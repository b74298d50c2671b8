// A station's heartbeat (issue 12): what it tells the office about itself, and when the next one
// is due. The content is `sprelay status --json`'s per-route data (agent/report.ts verdicts(), the
// same verdict, since, counts, last run/success/error), plus the agent's build, the station's
// unconfirmed packages and the data folder's disk. The wire format is ./format.ts; the outbound
// cycle writes the encoded bytes to the heartbeat route's spool with a ledger row of kind
// 'heartbeat' and sends it like any package.
//
// Read-only over the ledger and the config; the only other thing it asks is the OS (statfs of the
// data folder, null when it would not say).
import * as fsp from 'node:fs/promises';
import type { Config } from '../config.js';
import { verdicts } from '../report.js';
import { appVersion, ledgerDriverText } from '../version.js';
import type { Ledger } from '../../store/ledger.js';
import { flatLine } from '../../transports/common/text.js';
import { cutError, MAX_HEARTBEAT_ROUTES, type Heartbeat, type HeartbeatRoute } from './format.js';

/** A statfs that has not answered in this long is "the OS would not say" (disk: null). */
const STATFS_DEADLINE_MS = 5_000;

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** One line of at most `max` characters (the wire format refuses longer agent texts). */
function short(text: string, max: number): string {
  const flat = flatLine(text);
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}…`;
}

/**
 * The ledger driver as one short line: `better-sqlite3 12.4.1, SQLite 3.50.4`, or with why the
 * other was passed over (`node:sqlite ..., SQLite ... (better-sqlite3: ...)`), at most 200
 * characters. ledgerDriverText speaks for the process's driver, which is the one this ledger
 * opened with; should they ever differ, the ledger's own driver name leads.
 */
function driverText(ledger: Ledger): string {
  const text = ledgerDriverText().replace(/^ledger driver:\s*/, '');
  return short(text.startsWith(ledger.driver) ? text : `${ledger.driver} (${text})`, 200);
}

/** The data folder's volume in bytes, or null when statfs is missing, fails or does not answer. */
async function diskOf(dir: string): Promise<Heartbeat['disk']> {
  // `statfs` came in Node 18.15 (read off the namespace: a missing named import would fail to
  // load); a runtime without it says nothing rather than failing the heartbeat
  const statfs = (fsp as Partial<typeof fsp>).statfs;
  if (typeof statfs !== 'function') return null;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), STATFS_DEADLINE_MS);
    timer.unref();
  });
  const asked = statfs(dir, { bigint: true }).then(
    (s) => {
      const bytes = (n: bigint) => {
        const v = n < 0n ? 0n : n;
        return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
      };
      return { free: bytes(s.bavail * s.bsize), total: bytes(s.blocks * s.bsize) };
    },
    () => null,
  );
  try {
    return await Promise.race([asked, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The heartbeat this station sends now. Routes are the config's, in its order, at most
 * MAX_HEARTBEAT_ROUTES (the wire format's limit; a config with more sends the first ones, and
 * `unconfirmed` still counts every out-route with confirmWithin). encodeHeartbeat accepts what this returns.
 */
export async function buildHeartbeat(
  config: Config,
  ledger: Ledger,
  opts: { now: number; scrub: (s: string) => string },
): Promise<Heartbeat> {
  const { now, scrub } = opts;
  // cut to the wire format's limit: the first MAX_HEARTBEAT_ROUTES routes of the config travel
  const shown = config.routes.slice(0, MAX_HEARTBEAT_ROUTES);
  const vs = verdicts(
    config,
    ledger,
    now,
    shown.map((r) => r.name),
  );
  const routes: HeartbeatRoute[] = shown.map((r, i) => {
    const v = vs[i]!;
    // lastError came scrubbed by the transports' redaction; scrubbed again against this config's
    // secrets (all of them, deferred ones the caller resolved included) before it leaves the station
    const lastError = v.lastError === null ? null : cutError(scrub(v.lastError));
    return {
      name: r.name,
      direction: r.direction,
      profile: r.profileName,
      verdict: v.verdict,
      since: iso(v.since),
      counts: { ...v.counts },
      // what waits to be sent, control rows included (the verdict's "oldest" says the same)
      oldestUnsentAt: r.direction === 'out' ? iso(ledger.oldestIn(r.name, ['queued', 'failed'])) : null,
      lastRunAt: iso(v.lastRunAt),
      lastSuccessAt: iso(v.lastSuccessAt),
      lastError,
    };
  });
  let unconfirmed = 0;
  for (const r of config.routes) {
    if (r.direction === 'out' && r.confirmWithinMs !== undefined)
      unconfirmed += ledger.unconfirmedCount(r.name, now - r.confirmWithinMs).n;
  }
  return {
    station: config.station,
    sentAt: new Date(now).toISOString(),
    agent: {
      version: short(appVersion(), 64),
      node: short(process.version, 64),
      os: short(`${process.platform}-${process.arch}`, 64),
      ledgerDriver: driverText(ledger),
    },
    routes,
    unconfirmed,
    disk: await diskOf(config.dataDir),
  };
}

/**
 * Is a heartbeat due on `route`: none sent yet, or the newest heartbeat row is `everyMs` old or
 * older. A newest row more than `everyMs` in the future means the clock went back (or was wrong
 * when it was made): due, or the station would be silent until the clock caught up.
 */
export function heartbeatDue(ledger: Ledger, route: string, everyMs: number, now: number): boolean {
  const last = ledger.lastControlAt(route, 'heartbeat');
  if (last === null) return true;
  if (last > now + everyMs) return true;
  return last <= now - everyMs;
}
