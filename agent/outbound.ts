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

export async function runOutbound(ctx: RouteContext): Promise<CycleResult> {
  const result = emptyResult(ctx.route);
  try {
    // the route's spool folders, once per cycle (never per package)
    await ctx.spool.prepare(ctx.route.name);
    await takeFromOutbox(ctx, result);
    if (!ctx.stop.requested) await sendDue(ctx, result);
  } catch (err) {
    // keep what this cycle did (counts) and say what stopped it
    const message = ctx.scrub(errorText(err));
    result.error = result.error ? `${result.error}; ${message}` : message;
    ctx.log.error({ route: ctx.route.name }, `cycle stopped: ${message}`);
  }
  return result;
}
