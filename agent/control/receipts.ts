// The office's receipts (issue 12): every package an office in-route delivered from a station (or
// took as a duplicate of one it has) is answered by a receipt that goes back to that station over
// the route the config names (`receipts:`). One receipt per station per call, up to 1000 items.
//
// Exactly once: the receipt's bytes go to the receipts route's spool first; then ONE ledger
// transaction inserts its `queued` row and marks the deliveries it answers (receipt_id). A kill -9
// before that transaction leaves the deliveries unmarked (and an orphan spool file): the next call
// makes the receipt. After it, the deliveries are marked and the receipt is an ordinary queued
// package: sent, retried, never made again.
import type { RouteContext } from '../route-context.js';
import { crashPoint } from '../crash-points.js';
import { encodeReceipt, MAX_RECEIPT_ITEMS, type ReceiptItem } from './format.js';
import { controlRand, insertControlRow, spoolControl } from './enqueue.js';
import { receiptName } from './names.js';
import type { PackageRow } from '../../store/ledger.js';

/** Makes the receipts owed for the deliveries of ctx.route; returns how many receipts were made. */
export async function issueReceipts(ctx: RouteContext): Promise<number> {
  const { config, ledger, spool, log } = ctx;
  const route = config.routes.find((r) => r.name === config.receipts && r.direction === 'out');
  if (!route) return 0;
  let made = 0;
  for (;;) {
    const owed = ledger.unreceipted(ctx.route.name, MAX_RECEIPT_ITEMS);
    if (owed.length === 0) return made;
    const byStation = new Map<string, PackageRow[]>();
    for (const row of owed) {
      const list = byStation.get(row.station!) ?? [];
      list.push(row);
      byStation.set(row.station!, list);
    }
    for (const [station, rows] of byStation) {
      if (ctx.stop.requested) return made;
      const items: ReceiptItem[] = rows.map((r) => ({
        name: r.name,
        sha256: r.sha256!,
        size: r.size,
        deliveredAt: new Date(r.createdAt).toISOString(),
      }));
      const bytes = encodeReceipt({ from: config.station, to: station, items });
      const file = {
        kind: 'receipt' as const,
        name: receiptName(config.station, ctx.now(), controlRand()),
        bytes,
        station,
      };
      const stored = await spoolControl(spool, route, file);
      crashPoint('office:before-receipt');
      const row = ledger.transaction(() => {
        const r = insertControlRow(ledger, route, file, stored);
        ledger.markReceipted(
          rows.map((x) => x.id),
          r.id,
        );
        return r;
      });
      made++;
      log.info(
        { route: route.name, id: row.id, file: row.name, station },
        `receipt for ${rows.length} package(s) from ${station} queued`,
      );
    }
    if (owed.length < MAX_RECEIPT_ITEMS) return made;
  }
}
