// What every inbound path does with an entry it has decided on: its new ledger row, and the
// acknowledgement on the remote, which ends on an abort and on a stop request alike. RouteStop is
// the error that ends the route's cycle (its message goes to the route status).
import type { RouteContext } from '../route-context.js';
import { errorText } from '../secrets.js';
import { crashPoint } from '../crash-points.js';
import type { LedgerEvent, NewPackage, PackageRow } from '../../store/ledger.js';
import { TransportError } from '../../transports/errors.js';
import { isSafeStation } from '../control/names.js';
import type { RemoteEntry, Source } from '../../transports/types.js';

/** Stops the route for this cycle; the reason goes to the route status. */
export class RouteStop extends Error {}

/**
 * What one entry cost the cycle: `known` is a refusal already recorded with nothing left to do (one
 * index lookup; it does not count against maxPerCycle); anything else counts.
 */
export type Outcome = 'handled' | 'known';

/**
 * The station an inbound row belongs to: the folder's (an office route with a folder per station),
 * else the one the transport carries (e-mail's X-SPRelay-Station) when this agent answers with
 * receipts (config `receipts`), else none. The ledger's duplicate lookups use the same value.
 */
export function stationOf(ctx: RouteContext, entry: RemoteEntry): string | null {
  if (ctx.station !== undefined) return ctx.station;
  const claimed = ctx.config.receipts !== undefined ? entry.station : undefined;
  return claimed !== undefined && isSafeStation(claimed) ? claimed : null;
}

/** A new row for a remote entry: its route, direction, name, remote ref and origin come from `entry`. */
export function insertInbound(
  ctx: RouteContext,
  entry: RemoteEntry,
  fields: Omit<NewPackage, 'route' | 'direction' | 'name' | 'remoteRef' | 'origin'>,
  event: LedgerEvent,
  detail: string,
): PackageRow {
  return ctx.ledger.insert(
    {
      route: ctx.route.name,
      direction: 'in',
      name: entry.name,
      remoteRef: entry.ref,
      origin: entry.origin ?? null,
      station: stationOf(ctx, entry),
      ...fields,
    },
    event,
    detail,
  );
}

/**
 * `source.acknowledge(entry)`, ended by an abort (second Ctrl+C) or a stop request (SIGTERM,
 * Ctrl+C) alike: a stopped acknowledgement is safe, as the next cycle fetches the entry again,
 * finds it in the ledger and only acknowledges it. Resolves false when it was stopped (said in the
 * log; the caller leaves the row as it is), true when done; else throws what the transport threw.
 */
export async function acknowledgeRemote(
  ctx: RouteContext,
  source: Source,
  entry: RemoteEntry,
  /** ackSignal(ctx), made once for several acknowledgements. */
  signal: AbortSignal = ackSignal(ctx),
): Promise<boolean> {
  try {
    await source.acknowledge(entry, signal);
    return true;
  } catch (err) {
    if (!(ctx.stop.requested && err instanceof TransportError && err.code === 'aborted')) throw err;
    ctx.log.info(
      { route: ctx.route.name, file: entry.name },
      'stop requested: the remote entry was not acknowledged; the next cycle finds it again and only acknowledges it',
    );
    return false;
  }
}

/** What ends an acknowledgement: an abort (second Ctrl+C) or a stop request (SIGTERM, Ctrl+C). */
function ackSignal(ctx: RouteContext): AbortSignal {
  return AbortSignal.any([ctx.abort, ctx.stop.signal]);
}

/** An entry to acknowledge on the remote and the row that records it. */
export interface AckItem {
  entry: RemoteEntry;
  row: PackageRow;
}

/**
 * `acknowledge` for several entries, at most `width` at once on the remote, the rows of those done
 * recorded in ONE transaction. After a stop request each ends at once (acknowledgeRemote says so);
 * after a failure that ends the route no new one is started, and what was done by then is recorded
 * before the RouteStop is thrown.
 */
export async function acknowledgeAll(
  ctx: RouteContext,
  source: Source,
  items: readonly AckItem[],
  width: number,
): Promise<void> {
  const done: AckItem[] = [];
  let stop: RouteStop | null = null;
  let next = 0;
  const signal = ackSignal(ctx);
  const worker = async () => {
    while (stop === null && next < items.length) {
      const item = items[next++]!;
      try {
        if (!(await acknowledgeRemote(ctx, source, item.entry, signal))) continue;
      } catch (err) {
        if (err instanceof TransportError && err.scope === 'package') {
          ctx.log.warn(
            { route: ctx.route.name, id: item.row.id, file: item.entry.name },
            `could not acknowledge on the remote: ${ctx.scrub(err.message)}`,
          );
          continue;
        }
        stop ??= new RouteStop(`acknowledging ${JSON.stringify(item.entry.name)} failed: ${errorText(err)}`);
        continue;
      }
      crashPoint('in:after-ack');
      done.push(item);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(width, items.length)) }, worker));
  if (done.length > 0) {
    const detail = describeAck(ctx);
    const at = ctx.now();
    ctx.ledger.transaction(() => {
      for (const { row } of done) ctx.ledger.update(row.id, { ackedAt: at }, 'acknowledged', detail);
    });
  }
  if (stop) throw stop;
}

export async function acknowledge(
  ctx: RouteContext,
  source: Source,
  entry: RemoteEntry,
  row: PackageRow,
): Promise<void> {
  try {
    if (!(await acknowledgeRemote(ctx, source, entry))) return;
  } catch (err) {
    if (err instanceof TransportError && err.scope === 'package') {
      ctx.log.warn(
        { route: ctx.route.name, id: row.id, file: entry.name },
        `could not acknowledge on the remote: ${ctx.scrub(err.message)}`,
      );
      return;
    }
    throw new RouteStop(`acknowledging ${JSON.stringify(entry.name)} failed: ${errorText(err)}`);
  }
  crashPoint('in:after-ack');
  ctx.ledger.update(row.id, { ackedAt: ctx.now() }, 'acknowledged', describeAck(ctx));
}

function describeAck(ctx: RouteContext): string {
  const a = ctx.route.afterReceive;
  return a.kind === 'delete' ? 'removed from the remote' : `moved to ${a.to} on the remote`;
}
