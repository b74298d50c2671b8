// Receipts and heartbeats met on an in-route (issue 12). They are taken out of a cycle's listing
// before any package is looked at (their names say what they are: agent/control/names.ts), so a
// control file never reaches the include filter, the inbox or SERVIO's import folder, whatever it
// holds. Each one is read into memory (at most 1 MB), decoded (agent/control/format.ts: nothing in
// it is trusted), applied, recorded in control_in, and then acknowledged on the remote like a
// delivered package (deleted or moved per afterReceive).
//
//   receipt    addressed to this station (`to`), its items matched by name + SHA-256 against
//              packages this agent sent (ledger.confirmOut): a match moves `sent` -> `confirmed`;
//              an unknown name, a wrong hash, a receipt for another station changes nothing
//              ("ignored"). The same receipt again changes nothing.
//   heartbeat  kept for the fleet view (ledger.upsertHeartbeat), by the time the station says it
//              was made (at most now), so an older one arriving late never replaces a newer.
// A control file whose writer is another station than the one its place says (an office route's
// station folder, or the X-SPRelay-Station of the message that carried it) is refused: a station
// cannot speak for another.
//
// A crash before the acknowledgement reads the file again next cycle: applying it again changes
// nothing. A control file over 1 MB is refused from its listed size without being read, recorded
// once and left on the remote.
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { decodeControl, MAX_CONTROL_BYTES } from '../control/format.js';
import { controlKind, type ControlKind } from '../control/names.js';
import { errorText } from '../secrets.js';
import type { CycleResult, RouteContext } from '../route-context.js';
import type { ControlInRow } from '../../store/ledger.js';
import { TransportError } from '../../transports/errors.js';
import type { RemoteEntry, Source } from '../../transports/types.js';
import { acknowledgeRemote, RouteStop } from './record.js';

/** Splits a listing into control files (refused entries stay with the packages) and the rest. */
export function splitControl(entries: RemoteEntry[]): { control: RemoteEntry[]; packages: RemoteEntry[] } {
  const control: RemoteEntry[] = [];
  const packages: RemoteEntry[] = [];
  for (const e of entries) (e.refusal === undefined && controlKind(e.name) ? control : packages).push(e);
  return { control, packages };
}

/** Takes in every control file of the listing, one at a time (they are few and small). */
export async function takeControlFiles(
  ctx: RouteContext,
  source: Source,
  entries: RemoteEntry[],
  result: CycleResult,
): Promise<void> {
  for (const entry of entries) {
    if (ctx.stop.requested) return;
    await takeOne(ctx, source, entry, controlKind(entry.name)!, result);
  }
}

async function takeOne(
  ctx: RouteContext,
  source: Source,
  entry: RemoteEntry,
  kind: ControlKind,
  result: CycleResult,
): Promise<void> {
  const { route, ledger, log } = ctx;
  const record = (row: Omit<ControlInRow, 'route' | 'kind' | 'name' | 'receivedAt'>) => {
    ledger.recordControl({ route: route.name, kind, name: entry.name, receivedAt: ctx.now(), ...row });
    result.control++;
    const line = `${kind} ${row.outcome}${row.reason ? `: ${row.reason}` : ''}`;
    if (row.outcome === 'refused') log.warn({ route: route.name, file: entry.name }, line);
    else log.info({ route: route.name, file: entry.name }, line);
  };
  if (entry.size > MAX_CONTROL_BYTES) {
    if (ledger.controlSeen(route.name, entry.name, null)) return;
    record({
      sha256: null,
      fromStation: null,
      v: null,
      outcome: 'refused',
      reason: `${kind}: file is ${entry.size} bytes, more than ${MAX_CONTROL_BYTES} (1 MB); left on the remote`,
    });
    return;
  }
  let bytes: Buffer;
  try {
    bytes = await readCapped(await source.open(entry, ctx.abort), MAX_CONTROL_BYTES);
  } catch (err) {
    if (err instanceof TransportError && err.scope === 'package') {
      log.warn({ route: route.name, file: entry.name }, `skipped this cycle: ${ctx.scrub(err.message)}`);
      return;
    }
    throw new RouteStop(`download of ${JSON.stringify(entry.name)} failed: ${errorText(err)}`);
  }
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  record({ sha256, ...apply(ctx, kind, bytes, claimedBy(ctx, entry)) });
  await acknowledgeRemote(ctx, source, entry);
}

type Applied = Pick<ControlInRow, 'fromStation' | 'v' | 'outcome' | 'reason'>;

/** Which station the place a control file came from says wrote it: its folder's, or its message's. */
function claimedBy(ctx: RouteContext, entry: RemoteEntry): { station: string; where: string } | undefined {
  if (ctx.station !== undefined) return { station: ctx.station, where: `the folder of ${ctx.station}` };
  if (entry.station !== undefined) return { station: entry.station, where: `a message from station ${entry.station}` };
  return undefined;
}

function apply(
  ctx: RouteContext,
  kind: ControlKind,
  bytes: Buffer,
  claimed: { station: string; where: string } | undefined,
): Applied {
  const { ledger, config } = ctx;
  const decoded = decodeControl(kind, bytes);
  if (!decoded.ok) return { fromStation: null, v: null, outcome: 'refused', reason: decoded.reason };
  const v = decoded.v;
  if (decoded.kind === 'receipt') {
    const r = decoded.value;
    if (claimed && !sameStation(r.from, claimed.station))
      return {
        fromStation: r.from,
        v,
        outcome: 'refused',
        reason: `station mismatch: the receipt says it is from ${r.from}, it came in ${claimed.where}`,
      };
    if (!sameStation(r.to, config.station))
      return { fromStation: r.from, v, outcome: 'ignored', reason: `addressed to station ${r.to}, not this one` };
    const outcomes = ledger.confirmOut(
      r.items.map((i) => ({ name: i.name, sha256: i.sha256 })),
      ctx.now(),
    );
    const n = (o: string) => outcomes.filter((x) => x === o).length;
    const parts = [
      n('confirmed') && `${n('confirmed')} confirmed`,
      n('already') && `${n('already')} already confirmed`,
      n('unknown') && `${n('unknown')} unknown (no package sent with that name and SHA-256; nothing changed)`,
    ].filter(Boolean);
    return { fromStation: r.from, v, outcome: n('confirmed') > 0 ? 'applied' : 'ignored', reason: parts.join(', ') };
  }
  const h = decoded.value;
  if (claimed && !sameStation(h.station, claimed.station))
    return {
      fromStation: h.station,
      v,
      outcome: 'refused',
      reason: `station mismatch: the heartbeat says ${h.station}, it came in ${claimed.where}`,
    };
  try {
    // kept by when the station says it was made (never later than now): heartbeats that waited out
    // an outage and arrive together, in any order, leave the newest in place
    ledger.upsertHeartbeat(h.station, Math.min(Date.parse(h.sentAt), ctx.now()), JSON.stringify(h));
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    return { fromStation: h.station, v, outcome: 'refused', reason: `heartbeat: ${err.message}` };
  }
  return { fromStation: h.station, v, outcome: 'applied', reason: null };
}

/** The whole stream, refused once it passes `max` bytes. */
async function readCapped(stream: Readable, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of stream) {
      const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
      size += b.length;
      if (size > max) throw new TransportError('too-large', `control file is more than ${max} bytes`);
      chunks.push(b);
    }
  } finally {
    stream.destroy();
  }
  return Buffer.concat(chunks, size);
}

/**
 * Station names compared as a Windows folder or a mail address would: regardless of case (a
 * station known by its sender address is known in lower case).
 */
function sameStation(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}
