// Outbound: outbox -> (stable? well-formed?) -> spool + ledger -> sink -> sent / failed / dead.
//
// Order is what makes kill -9 harmless (guarantee 2): the bytes are in the spool (fsynced, renamed)
// before the ledger row exists, and the ledger row exists before the outbox copy is removed. So a
// package is always in the outbox, or in spool + ledger, or sent. A crash after the sink wrote but
// before the ledger said `sent` resends it; the sink then finds the identical file and writes
// nothing (PutResult.alreadyPresent), and an inbound sprelay would drop it as a duplicate anyway.
//
// Both halves work in batches (issue 11, group commit): outbound/take.ts takes a batch of outbox
// files with one spool folder fsync, one ledger transaction and one outbox folder fsync, reading
// each file once (copy, hash and XML check together); outbound/send.ts records a batch of completed
// puts in one transaction.
import { errorText } from './secrets.js';
import { emptyResult, type CycleResult, type RouteContext } from './route-context.js';
import { sendDue } from './outbound/send.js';
import { takeFromOutbox } from './outbound/take.js';
import { buildHeartbeat, heartbeatDue } from './control/heartbeat.js';
import { controlRand, insertControlRow, spoolControl } from './control/enqueue.js';
import { encodeHeartbeat } from './control/format.js';
import { heartbeatName } from './control/names.js';

export async function runOutbound(ctx: RouteContext): Promise<CycleResult> {
  const result = emptyResult(ctx.route);
  try {
    // the route's spool folders, once per cycle (never per package)
    await ctx.spool.prepare(ctx.route.name);
    // the office's receipts route carries receipts only: its outbox is not read (a file put there
    // stays there, and `{station}` in its remote would have no station to name)
    if (ctx.config.receipts !== ctx.route.name) await takeFromOutbox(ctx, result);
    if (ctx.config.heartbeat?.route === ctx.route.name && !ctx.stop.requested) await queueHeartbeat(ctx);
    if (!ctx.stop.requested) await sendDue(ctx, result);
  } catch (err) {
    // keep what this cycle did (counts) and say what stopped it
    const message = ctx.scrub(errorText(err));
    result.error = result.error ? `${result.error}; ${message}` : message;
    ctx.log.error({ route: ctx.route.name }, `cycle stopped: ${message}`);
  }
  return result;
}

/** The station's heartbeat, when one is due, as a queued package of this route (agent/control/). */
async function queueHeartbeat(ctx: RouteContext): Promise<void> {
  const { config, ledger, route, log } = ctx;
  const now = ctx.now();
  if (!heartbeatDue(ledger, route.name, config.heartbeat!.everyMs, now)) return;
  try {
    const data = await buildHeartbeat(config, ledger, { now, scrub: ctx.scrub });
    const file = {
      kind: 'heartbeat' as const,
      name: heartbeatName(config.station, now, controlRand()),
      bytes: encodeHeartbeat(data),
      station: null,
    };
    const stale = ledger.inState(route.name, ['queued', 'failed', 'dead']).filter((r) => r.kind === 'heartbeat');
    const stored = await spoolControl(ctx.spool, route, file);
    const row = insertControlRow(ledger, route, file, stored);
    log.info({ route: route.name, id: row.id, file: row.name }, 'heartbeat queued');
    // a heartbeat is a snapshot: one that could not be sent yet (the office unreachable) is replaced
    // by the newer one, so an outage of days sends one heartbeat when it ends, not one per hour
    if (stale.length > 0) {
      ledger.delete(stale.map((r) => r.id));
      for (const r of stale) if (r.storedPath) await ctx.spool.remove(r.storedPath);
      log.info({ route: route.name }, `${stale.length} older heartbeat(s) not sent yet replaced by this one`);
    }
  } catch (err) {
    // the packages matter more than the heartbeat: said, tried again next cycle
    log.warn({ route: route.name }, `could not make the heartbeat: ${ctx.scrub(errorText(err))}`);
  }
}
