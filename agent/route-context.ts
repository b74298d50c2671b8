// What a pipeline gets for one cycle of one route, and what it reports back. Shared by outbound.ts
// and inbound.ts so that the scheduler and the CLI treat both directions alike.
import type { Config, RouteConfig } from './config.js';
import type { Logger } from './log.js';
import type { Scrub } from './secrets.js';
import type { Ledger } from '../store/ledger.js';
import type { Spool } from '../store/spool.js';
import { minRateRule } from '../transports/deadline.js';
import { CONTROL_PATTERNS } from './control/names.js';
import type { Endpoint, MailEndpoint, Transport } from '../transports/types.js';

/**
 * Graceful stop: `requested` turns true on SIGINT/SIGTERM; pipelines finish the file in hand and
 * take no new one. `signal` fires at the same moment, for waits that take no file (settle sleeps).
 */
export interface StopToken {
  readonly requested: boolean;
  readonly signal: AbortSignal;
}

export interface RouteContext {
  config: Config;
  route: RouteConfig;
  ledger: Ledger;
  spool: Spool;
  transport: Transport;
  log: Logger;
  scrub: Scrub;
  stop: StopToken;
  /** Aborts transfers in flight (second Ctrl+C, or tests). */
  abort: AbortSignal;
  now: () => number;
  /**
   * Office in-routes with one folder per station (route.perStation): the station whose folder this
   * part of the cycle works on (`route` then has that folder as remote and its local folder). Its
   * rows carry it, and its deliveries are answered by receipts.
   */
  station?: string;
}

export interface CycleResult {
  route: string;
  direction: 'in' | 'out';
  /** out: taken from the outbox into the spool */
  taken: number;
  sent: number;
  delivered: number;
  duplicates: number;
  waiting: number;
  failed: number;
  dead: number;
  quarantined: number;
  /** Files left in the outbox because they are wrong (not well-formed XML, too large, bad name). */
  refused: number;
  /** Receipts and heartbeats taken in (agent/inbound/control.ts), whatever became of them. */
  control: number;
  /** The route could not do its work (connection, disk, lock): the reason, scrubbed. */
  error: string | null;
  /** Not run: another process works this route right now (not a problem of the route). */
  skipped: string | null;
  /** A person stopped the cycle (Ctrl+C, SIGTERM) before it finished. */
  interrupted: boolean;
}

export function emptyResult(route: RouteConfig): CycleResult {
  return {
    route: route.name,
    direction: route.direction,
    taken: 0,
    sent: 0,
    delivered: 0,
    duplicates: 0,
    waiting: 0,
    failed: 0,
    dead: 0,
    quarantined: 0,
    refused: 0,
    control: 0,
    error: null,
    skipped: null,
    interrupted: false,
  };
}

/** One line per cycle: `route export (out): taken 2, sent 2` (the console and the log file). */
export function cycleSummary(r: CycleResult): string {
  if (r.skipped) return `route ${r.route} (${r.direction}): skipped — ${r.skipped}`;
  const parts = Object.entries({
    taken: r.taken,
    sent: r.sent,
    delivered: r.delivered,
    duplicates: r.duplicates,
    waiting: r.waiting,
    failed: r.failed,
    dead: r.dead,
    quarantined: r.quarantined,
    'refused in outbox': r.refused,
    'receipts/heartbeats taken in': r.control,
  })
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`);
  const tail = r.error ? ` — ERROR: ${r.error}` : r.interrupted ? ' — interrupted' : '';
  return `route ${r.route} (${r.direction}): ${parts.join(', ') || 'nothing to do'}${tail}`;
}

export function endpointOf(route: RouteConfig): Endpoint {
  const minRate = minRateRule(route.minRate, route.timeoutMs);
  return {
    route: route.name,
    remote: route.remote,
    overwrite: route.overwrite,
    timeoutMs: route.timeoutMs,
    ...(minRate ? { minRate } : {}),
    afterReceive: route.afterReceive,
    // an in-route also lists sprelay's control files (receipts, heartbeats), whatever its include:
    // the pipeline takes them out before any package is looked at (agent/inbound/control.ts)
    include: route.direction === 'in' ? [...route.include, ...CONTROL_PATTERNS] : route.include,
    maxSize: route.maxSize,
    ...(route.direction === 'in' ? { maxPerCycle: route.maxPerCycle } : {}),
    ...(route.to || route.allowFrom || route.afterRefuse || route.requireAuth ? { mail: mailPart(route) } : {}),
  };
}

function mailPart(route: RouteConfig): MailEndpoint {
  return {
    ...(route.to ? { to: route.to } : {}),
    ...(route.allowFrom ? { allowFrom: route.allowFrom } : {}),
    ...(route.afterRefuse ? { afterRefuse: route.afterRefuse } : {}),
    ...(route.requireAuth ? { requireAuth: route.requireAuth } : {}),
  };
}

/** Sleeps `ms`, returning early (false) when the stop token fires. */
export function settle(ms: number, stop: StopToken): Promise<boolean> {
  if (stop.requested) return Promise.resolve(false);
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      stop.signal.removeEventListener('abort', onStop);
      resolve(true);
    }, ms);
    const onStop = () => {
      clearTimeout(t);
      resolve(false);
    };
    stop.signal.addEventListener('abort', onStop, { once: true });
  });
}
