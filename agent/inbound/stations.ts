// An office in-route that serves many stations (issue 12): `remote: from-stations/*` (lan, ftp,
// sftp). Each folder of `from-stations` is a station; its packages are taken exactly as a route of
// its own would take them (agent/inbound.ts, the same guarantees), into `local` with `{station}`
// replaced by the folder's name, and its rows carry the station. A folder whose name is not a
// station name (1-64 of A-Z a-z 0-9 . _ -) or could not be a Windows folder (CON, NUL, a trailing
// dot) is left alone, said in the log once per cycle.
//
// One settle for the whole route: every station folder is listed first (the listings are
// remembered, inbound/settled.ts), then the route sleeps `settle` once, and each station's own
// cycle finds its entries already seen unchanged `settle` ago and does not sleep again (only what
// appeared meanwhile waits for a second look). Stations are worked on `concurrency` at a time,
// each one package at a time.
//
// After the stations, the receipts owed for what was delivered (agent/control/receipts.ts).
import { promises as fsp } from 'node:fs';
import { STATION_MARK } from '../config/routes.js';
import { isSafeStation } from '../control/names.js';
import { issueReceipts } from '../control/receipts.js';
import { errorText } from '../secrets.js';
import { emptyResult, endpointOf, settle, type CycleResult, type RouteContext } from '../route-context.js';
import type { RouteConfig } from '../config.js';
import { inPool } from '../../store/at-once.js';
import { hasSettled, rememberListing, withRemoteTimes } from './settled.js';

/** Adds a station's counts to the route's: every number of a CycleResult is a count. */
function addCounts(into: CycleResult, from: CycleResult): void {
  const sum = into as unknown as Record<string, unknown>; // the numeric fields, by their names
  for (const [k, v] of Object.entries(from)) if (typeof v === 'number') sum[k] = (sum[k] as number) + v;
}

/** The remote folder of one station: parent/<station>/rest. */
export function stationRemote(ps: { parent: string; rest: string }, station: string): string {
  const base =
    ps.parent === '' ? station : ps.parent.endsWith('/') ? `${ps.parent}${station}` : `${ps.parent}/${station}`;
  return ps.rest ? `${base}/${ps.rest}` : base;
}

/** The route as one station's part of the cycle sees it. */
export function stationRoute(route: RouteConfig, station: string): RouteConfig {
  const { perStation, ...rest } = route;
  return {
    ...rest,
    remote: stationRemote(perStation!, station),
    local: route.local.split(STATION_MARK).join(station),
    concurrency: 1,
  };
}

export async function runStations(
  ctx: RouteContext,
  runOne: (ctx: RouteContext) => Promise<CycleResult>,
): Promise<CycleResult> {
  const { route, log } = ctx;
  const result = emptyResult(route);
  const stations = await stationFolders(ctx, result);
  if (stations === null) return result;
  const parts = stations.map((station) => ({ ...ctx, station, route: stationRoute(route, station) }));
  /** Errors of this module (each station's own cycle logs its own). */
  const errors: string[] = [];
  const fail = (text: string) => {
    errors.push(text);
    log.error({ route: route.name }, text);
  };

  // every station's first listing, then one settle for all (none when every entry of every folder
  // has settled already: by its time, or in this process's previous listing)
  let unsettled = 0;
  await inPool(
    parts,
    route.concurrency,
    async (part) => {
      try {
        const source = await part.transport.openSource(endpointOf(part.route), part.abort);
        try {
          const entries = await source.list(part.abort);
          // times the listing lacks (FTP without MLSD): the station's own cycle asks again, as its
          // listing has none either; what this spares is the sleep
          const timed = await withRemoteTimes(part, source, entries);
          const now = Date.now();
          unsettled += timed.filter((e) => !hasSettled(part, e, now)).length;
          rememberListing(part, entries);
        } finally {
          await source.close();
        }
      } catch {
        // said by the station's own cycle below, which meets the same failure
      }
    },
    () => ctx.stop.requested,
  );
  if (unsettled > 0 && !(await settle(route.settleMs, ctx.stop))) return { ...result, interrupted: true };

  await inPool(
    parts,
    route.concurrency,
    async (part) => {
      try {
        await fsp.mkdir(part.route.local, { recursive: true });
      } catch (err) {
        fail(ctx.scrub(`station ${part.station}: cannot make the inbox ${part.route.local}: ${errorText(err)}`));
        return;
      }
      const r = await runOne(part);
      addCounts(result, r);
      if (r.error) errors.push(`station ${part.station}: ${r.error}`);
    },
    () => ctx.stop.requested,
  );

  try {
    await issueReceipts(ctx);
  } catch (err) {
    fail(ctx.scrub(`cannot make the receipts: ${errorText(err)}`));
  }
  if (errors.length > 0)
    result.error = errors.length === 1 ? errors[0]! : `${errors[0]!} (and ${errors.length - 1} more error(s))`;
  return result;
}

/** The station folders under the route's parent folder; null when the remote cannot be listed. */
async function stationFolders(ctx: RouteContext, result: CycleResult): Promise<string[] | null> {
  const { route, log } = ctx;
  const parent = route.perStation!.parent;
  try {
    const source = await ctx.transport.openSource({ ...endpointOf(route), remote: parent }, ctx.abort);
    try {
      if (!source.folders) throw new Error(`a ${ctx.transport.kind} route cannot have one folder per station`);
      const names = await source.folders(ctx.abort);
      const bad = names.filter((n) => !isSafeStation(n));
      if (bad.length > 0)
        log.warn(
          { route: route.name },
          `folders in ${parent || 'the remote root'} that are not station names, left alone: ${bad
            .slice(0, 5)
            .map((n) => JSON.stringify(n))
            .join(', ')}${bad.length > 5 ? ` and ${bad.length - 5} more` : ''}`,
        );
      return names.filter(isSafeStation);
    } finally {
      await source.close();
    }
  } catch (err) {
    result.error = ctx.scrub(`cannot list the station folders in ${parent || 'the remote root'}: ${errorText(err)}`);
    log.error({ route: route.name }, result.error);
    return null;
  }
}
